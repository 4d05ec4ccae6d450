import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { capText, sandboxPath, toolSet, validateToolInput } from '../../../orchestration/chat/tools.ts';

test('execute needs a command string and nothing else it does not know', () => {
  assert.is(validateToolInput('execute', { command: 'ls' }), null);
  assert.is(validateToolInput('execute', { command: 'ls', timeoutMs: 1000 }), null);
  assert.match(validateToolInput('execute', {}) ?? '', /command/);
  assert.match(validateToolInput('execute', { command: 7 }) ?? '', /command/);
  assert.match(validateToolInput('execute', { command: '' }) ?? '', /command/);
  assert.match(validateToolInput('execute', { command: 'ls', sudo: true }) ?? '', /sudo.*unknown field/);
  assert.match(validateToolInput('execute', { command: 'ls', timeoutMs: 0 }) ?? '', /timeoutMs/);
  assert.match(validateToolInput('execute', 'ls') ?? '', /Invalid/);
});

test('file tools need their path (and content for write_file)', () => {
  assert.is(validateToolInput('read_file', { path: 'notes.txt' }), null);
  assert.match(validateToolInput('read_file', {}) ?? '', /path/);
  assert.is(validateToolInput('write_file', { path: 'a', content: '' }), null);
  assert.match(validateToolInput('write_file', { path: 'a' }) ?? '', /content/);
  assert.is(validateToolInput('list_files', {}), null);
  assert.match(validateToolInput('list_files', { path: 3 }) ?? '', /path/);
});

test('paths are absolute as given, or relative to /workspace; .. is resolved before the sandbox checks it', () => {
  assert.is(sandboxPath('a/b.txt', '/workspace'), '/workspace/a/b.txt');
  assert.is(sandboxPath('/tmp/x', '/workspace'), '/tmp/x');
  assert.is(sandboxPath('../etc/passwd', '/workspace'), '/etc/passwd');
});

test('capping cuts on a UTF-8 character boundary and says so', () => {
  assert.equal(capText('hello', 10), { text: 'hello', cut: false });
  assert.equal(capText('hello world', 5), { text: 'hello', cut: true });
  const r = capText('ééé', 5); // 6 bytes: the third é would be cut in half
  assert.equal(r, { text: 'éé', cut: true });
});

test('the tool set declares each tool with its JSON schema and refuses invalid input before running it', async () => {
  let ran = 0;
  const set = toolSet(['execute', 'read_file'], async () => {
    ran++;
    return {};
  });
  assert.equal(Object.keys(set), ['execute', 'read_file']);
  const schema = set.execute!.inputSchema as unknown as {
    validate: (v: unknown) => Promise<{ success: boolean }> | { success: boolean };
    jsonSchema: unknown;
  };
  const bad = await schema.validate({ cmd: 1 });
  assert.is(bad.success, false);
  const good = await schema.validate({ command: 'ls' });
  assert.is(good.success, true);
  assert.is(ran, 0);
  const json = JSON.stringify(await schema.jsonSchema);
  assert.match(json, /"required":\["command"\]/);
  assert.match(json, /"additionalProperties":false/);
});

test.run();
