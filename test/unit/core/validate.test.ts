/**
 * The compiled checker used on hot paths (every execute) accepts and refuses exactly what the
 * interpreted `checkSchema` does, with the same error, on the execute body's schema.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { checkSchema, schemaChecker, type Checker } from '../../../core/validate.ts';
import { ExecuteSchema } from '../../../runtime/sandbox/execute.ts';

const test = suite('validate');

const check: Checker<typeof ExecuteSchema> = schemaChecker(ExecuteSchema);

/** What a check threw: code, field and message, or null when it accepted the value. */
function outcome(fn: () => void): unknown {
  try {
    fn();
    return null;
  } catch (err) {
    const e = err as { code?: string; message: string; details?: unknown };
    return { code: e.code, message: e.message, details: e.details };
  }
}

const BODIES: unknown[] = [
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

test('a compiled checker accepts and refuses what checkSchema does, with the same error', () => {
  for (const body of BODIES) {
    const want = outcome(() => checkSchema(ExecuteSchema, body));
    assert.equal(
      outcome(() => check(body)),
      want,
      JSON.stringify(body),
    );
  }
  assert.is(
    outcome(() => check(BODIES[0])),
    null,
  );
  assert.is((outcome(() => check(BODIES[4])) as { code: string }).code, 'VALIDATION_ERROR');
});

test.run();
