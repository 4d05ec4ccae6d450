/**
 * Schemas compiled once for hot paths (every execute, chat request and tool call) accept and
 * refuse exactly what the plain schemas do, with the same error naming the field.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkSchema, compileSchema, firstIssue } from '../../../core/validate.ts';
import { DirectorError } from '../../../core/errors.ts';
import { ChatRequestSchema } from '../../../orchestration/chat/schemas.ts';
import { TOOL_SCHEMAS, validateToolInput } from '../../../orchestration/chat/tools.ts';
import { ExecuteSchema } from '../../../runtime/sandbox/execute.ts';

const compiled = compileSchema(ChatRequestSchema);
const chatBodies: unknown[] = [
  { agent: 'coder', message: 'hi' },
  { agent: 'coder', message: 'hi', sessionId: 'ses_0123456789abcdef' },
  { agent: 'coder', message: 'hi', sessionId: 'ses_bad' },
  { agent: '', message: 'hi' },
  { agent: 'coder' },
  { agent: 'coder', message: 'hi', extra: 1 },
  { agent: 'coder', message: 'x'.repeat(65_537) },
  { agent: 7, message: 'hi' },
  null,
  'text',
  [],
];

test('a compiled schema answers as the schema does: fits or not, and the same first issue', () => {
  for (const body of chatBodies) {
    assert.equal(firstIssue(compiled, body), firstIssue(ChatRequestSchema, body), JSON.stringify(body)?.slice(0, 80));
  }
  assert.is(firstIssue(compiled, chatBodies[0]), undefined);
  assert.ok(firstIssue(compiled, chatBodies[2]));
});

test('checkSchema with a compiled schema: the same VALIDATION_ERROR naming the field', () => {
  const errorOf = (schema: Parameters<typeof checkSchema>[0], v: unknown) => {
    try {
      checkSchema(schema, v);
      return null;
    } catch (err) {
      assert.instance(err, DirectorError);
      return { message: (err as DirectorError).message, details: (err as DirectorError).details };
    }
  };
  for (const body of chatBodies) assert.equal(errorOf(compiled, body), errorOf(ChatRequestSchema, body));
  assert.match(JSON.stringify(errorOf(compiled, { agent: 'coder', message: 'hi', extra: 1 })), 'extra');
});

test('tool inputs: checked by the compiled schemas with the messages of the plain ones', () => {
  const inputs: [keyof typeof TOOL_SCHEMAS, unknown][] = [
    ['execute', { command: 'echo hi' }],
    ['execute', { command: '' }],
    ['execute', { command: 'x', timeoutMs: 0 }],
    ['execute', { command: 'x', timeoutMs: 1.5 }],
    ['execute', { cmd: 'x' }],
    ['read_file', { path: 'a' }],
    ['read_file', {}],
    ['write_file', { path: 'a', content: 1 }],
    ['list_files', {}],
    ['list_files', { path: '' }],
  ];
  for (const [name, input] of inputs) {
    const plain = firstIssue(TOOL_SCHEMAS[name], input);
    const got = validateToolInput(name, input);
    assert.is(got === null, plain === undefined, `${name} ${JSON.stringify(input)}`);
  }
  assert.is(validateToolInput('execute', { command: 'echo hi' }), null);
  assert.match(validateToolInput('execute', { cmd: 'x' }) ?? '', /command|cmd/);
});

const EXECUTE_BODIES: unknown[] = [
  { command: ['echo', 'hi'] },
  { command: 'echo hi', timeout: 5, environment: { A_1: 'x' }, workdir: '/tmp/x', stdin: 'in' },
  { command: [] },
  { command: '' },
  { command: ['echo'], bogus: 1 },
  { command: ['echo'], environment: { '1A': 'x' } },
  { command: ['echo'], environment: { A: 1 } },
  { command: ['echo'], workdir: 'relative' },
  { command: ['echo'], timeout: 0 },
  { command: ['echo'], timeout: 1.5 },
  { command: [1] },
  {},
  null,
  'echo hi',
];

test('execute bodies: the compiled check refuses what the plain one does, with the same error', () => {
  const errorOf = (schema: Parameters<typeof checkSchema>[0], v: unknown) => {
    try {
      checkSchema(schema, v);
      return null;
    } catch (err) {
      const e = err as DirectorError;
      return { code: e.code, message: e.message, details: e.details };
    }
  };
  const compiledExecute = compileSchema(ExecuteSchema);
  for (const body of EXECUTE_BODIES) assert.equal(errorOf(compiledExecute, body), errorOf(ExecuteSchema, body), JSON.stringify(body));
  assert.is(errorOf(compiledExecute, EXECUTE_BODIES[0]), null);
  assert.is((errorOf(compiledExecute, EXECUTE_BODIES[4]) as { code: string }).code, 'VALIDATION_ERROR');
});

test.run();
