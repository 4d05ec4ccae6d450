import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { resolveBackoff } from '../../../orchestration/workflows/backoff.ts';
import { decide, type Position, type StepType } from '../../../orchestration/workflows/plan.ts';

const steps = (...types: StepType[]) => types.map((type) => ({ type }));
const at = (p: Partial<Position> & Pick<Position, 'step' | 'steps'>): Position => ({
  round: 0,
  maxRetries: 0,
  backoff: resolveBackoff({ initialInterval: 100 }),
  checkpoint: null,
  ...p,
});

test('a step that succeeded moves on; the last one completes the run', () => {
  const s = steps('execute', 'verify', 'checkpoint');
  assert.equal(decide(at({ step: 0, steps: s }), { kind: 'succeeded' }), { kind: 'next', step: 1 });
  assert.equal(decide(at({ step: 2, steps: s }), { kind: 'succeeded' }), { kind: 'complete' });
});

test('a failed execute is judged by the verify after it; without one the run fails', () => {
  assert.equal(decide(at({ step: 0, steps: steps('execute', 'verify') }), { kind: 'failed', exitCode: 1, timedOut: false }), {
    kind: 'next',
    step: 1,
  });
  const d = decide(at({ step: 0, steps: steps('execute', 'checkpoint', 'verify') }), { kind: 'failed', exitCode: 2, timedOut: false });
  assert.equal(d, {
    kind: 'fail',
    reason: { code: 'execute_failed', step: 1, exitCode: 2, message: 'step 1 (execute) exited 2 and no verify follows it' },
  });
  const t = decide(at({ step: 0, steps: steps('execute') }), { kind: 'failed', exitCode: -1, timedOut: true });
  assert.match((t as { reason: { message: string } }).reason.message, /timed out/);
});

test('a failed verify rolls back to the last checkpoint and runs the steps after it again, with backoff', () => {
  const s = steps('checkpoint', 'execute', 'verify');
  const d = decide(at({ step: 2, steps: s, maxRetries: 3, checkpoint: { step: 0, id: 'ckp_a' } }), {
    kind: 'unverified',
    criterion: 'tests pass',
    saw: 'exit code 1',
  });
  assert.equal(d, { kind: 'retry', round: 1, delayMs: 100, resumeStep: 1, restore: 'ckp_a' });
  const again = decide(at({ step: 2, steps: s, maxRetries: 3, round: 2, checkpoint: { step: 0, id: 'ckp_a' } }), {
    kind: 'unverified',
    criterion: 'tests pass',
    saw: 'exit code 1',
  });
  assert.equal(again, { kind: 'retry', round: 3, delayMs: 400, resumeStep: 1, restore: 'ckp_a' });
});

test('without a checkpoint a retry starts over from the first step, restoring nothing', () => {
  const d = decide(at({ step: 1, steps: steps('execute', 'verify'), maxRetries: 1 }), { kind: 'unverified', criterion: 'c', saw: 's' });
  assert.equal(d, { kind: 'retry', round: 1, delayMs: 100, resumeStep: 0, restore: null });
});

test('with no retry left a failed verify fails the run naming the step, criterion and what it saw', () => {
  const d = decide(at({ step: 2, steps: steps('checkpoint', 'execute', 'verify'), maxRetries: 2, round: 2 }), {
    kind: 'unverified',
    criterion: 'tests pass (exit code 0 of step 2)',
    saw: 'exit code 1',
  });
  assert.equal(d, {
    kind: 'fail',
    reason: {
      code: 'verify_failed',
      step: 3,
      criterion: 'tests pass (exit code 0 of step 2)',
      saw: 'exit code 1',
      message: 'step 3 (verify) failed after 2 retries: tests pass (exit code 0 of step 2): saw exit code 1',
    },
  });
});

test('an execute lost to a restart consumes a retry, or fails the run as interrupted', () => {
  const s = steps('checkpoint', 'execute', 'verify');
  assert.equal(decide(at({ step: 1, steps: s, maxRetries: 1, checkpoint: { step: 0, id: 'ckp_a' } }), { kind: 'lost' }), {
    kind: 'retry',
    round: 1,
    delayMs: 100,
    resumeStep: 1,
    restore: 'ckp_a',
  });
  const d = decide(at({ step: 1, steps: s, maxRetries: 1, round: 1 }), { kind: 'lost' });
  assert.is(d.kind, 'fail');
  assert.is((d as { reason: { code: string } }).reason.code, 'interrupted');
});

test('a verify or checkpoint lost to a restart runs again without using a retry', () => {
  const s = steps('execute', 'verify', 'checkpoint');
  assert.equal(decide(at({ step: 1, steps: s }), { kind: 'lost' }), { kind: 'again', step: 1 });
  assert.equal(decide(at({ step: 2, steps: s }), { kind: 'lost' }), { kind: 'again', step: 2 });
});

test('a refusal by policy or a step that could not run fails the run at once, retries or not', () => {
  const p = at({ step: 0, steps: steps('execute', 'verify'), maxRetries: 5 });
  const refused = decide(p, { kind: 'refused', message: 'exec disabled' });
  assert.equal(refused, {
    kind: 'fail',
    reason: { code: 'policy_violation', step: 1, message: 'step 1 (execute) refused: exec disabled' },
  });
  assert.is((decide(p, { kind: 'error', message: 'gone' }) as { reason: { code: string } }).reason.code, 'step_error');
  const ck = decide(at({ step: 0, steps: steps('checkpoint') }), { kind: 'error', message: 'disk full' });
  assert.is((ck as { reason: { code: string } }).reason.code, 'checkpoint_failed');
});

test.run();
