import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { complete, completionScript, type IdKind } from '../../../cli/completion.ts';
import { Context, type Io } from '../../../cli/context.ts';
import { buildProgram } from '../../../cli/program.ts';

const io = { env: { DIRECTOR_CONFIG_DIR: '/nonexistent' } } as unknown as Io;
const program = buildProgram(new Context(io));
const asked: IdKind[] = [];
const ids = async (kind: IdKind) => {
  asked.push(kind);
  return kind === 'sandbox' ? ['sbx_aaaaaaaaaaaaaaaa', 'sbx_bbbbbbbbbbbbbbbb'] : ['net_cccccccccccccccc'];
};
const c = (...words: string[]) => complete(program, words, ids);

test('top-level commands, then subcommands by prefix; hidden ones never', async () => {
  const top = await c('');
  for (const name of ['login', 'whoami', 'sandbox', 'network', 'events', 'audit', 'completion']) assert.ok(top.includes(name), name);
  assert.not.ok(top.includes('__complete'));
  assert.equal(await c('sandbox', 'e'), ['exec']);
  assert.equal(await c('network', 'policy', ''), ['apply', 'get', 'test']);
  assert.equal(await c('sandboxes', 'r'), ['rm'], 'aliases lead to the same commands');
});

test("options of the command and the program's global ones", async () => {
  const opts = await c('sandbox', 'exec', '--');
  assert.ok(opts.includes('--timeout') && opts.includes('--env') && opts.includes('--output') && opts.includes('--url'), opts.join(' '));
  assert.equal(await c('sandbox', 'ls', '--st'), ['--status']);
});

test('option values: formats, shells, and ids from the server', async () => {
  assert.equal(await c('sandbox', 'ls', '-o', ''), ['table', 'json', 'yaml']);
  assert.equal(await c('sandbox', 'shell', 'x', '--shell', 'b'), ['bash']);
  assert.equal(await c('events', 'tail', '--network', ''), ['net_cccccccccccccccc']);
});

test('ids where a command takes them: sandboxes under sandbox, networks under network, ID: for cp', async () => {
  assert.equal(await c('sandbox', 'get', 'sbx_a'), ['sbx_aaaaaaaaaaaaaaaa']);
  assert.equal(await c('sandbox', 'rm', 'sbx_aaaaaaaaaaaaaaaa', ''), ['sbx_aaaaaaaaaaaaaaaa', 'sbx_bbbbbbbbbbbbbbbb']);
  assert.equal(await c('network', 'policy', 'apply', ''), ['net_cccccccccccccccc']);
  assert.equal(await c('network', 'policy', 'test', ''), ['net_cccccccccccccccc']);
  assert.equal(await c('sandbox', 'cp', 'sbx_b'), ['sbx_bbbbbbbbbbbbbbbb:']);
  assert.equal(await c('sandbox', 'cp', './local', 'sbx_a'), ['sbx_aaaaaaaaaaaaaaaa:']);
  assert.equal(await c('sandbox', 'cp', './lo'), [], 'local paths are left to the shell');
  assert.equal(await c('sandbox', 'exec', 'sbx_aaaaaaaaaaaaaaaa', '--', 'l'), [], "nothing of ours after --: the sandbox command's words");
  asked.length = 0;
  assert.equal(await c('sandbox', 'create', ''), []);
  assert.equal(asked, [], 'no server round trip where no id is taken');
});

test('the shell scripts call back into the CLI', () => {
  assert.match(completionScript('bash'), /complete -o default -F _director_complete director/);
  assert.match(completionScript('bash'), /director __complete -- /);
  assert.match(completionScript('zsh'), /bashcompinit/);
  assert.match(completionScript('fish'), /complete -c director/);
});

test.run();
