import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { WorkflowEvent } from '../../../sdk/index.ts';
import { describeFailure, RunProgress } from '../../../cli/workflow-progress.ts';

const sink = (isTTY: boolean) => {
  const out = { isTTY, text: '', write: (s: string) => ((out.text += s), true) };
  return out;
};

const step = (n: number, status: string, extra: Record<string, unknown> = {}): WorkflowEvent => ({
  id: n,
  type: 'step',
  data: {
    workflowId: 'wf_x',
    step: n,
    totalSteps: 2,
    progress: status === 'completed' ? n * 50 : (n - 1) * 50,
    currentStep: { type: n === 1 ? 'execute' : 'verify', status, startTime: new Date(1000).toISOString() },
    attempt: n,
    round: 0,
    ...extra,
  },
});

test('in a pipe: one plain line per step that ended, nothing for steps starting, no escape codes', () => {
  const out = sink(false);
  const p = new RunProgress(out, () => 2500);
  p.event(step(1, 'running'));
  p.event(step(1, 'completed', { exitCode: 0, durationMs: 1200 }));
  p.event(step(2, 'running'));
  p.event(step(2, 'failed', { durationMs: 30 }));
  p.stop();
  assert.is(out.text, 'step 1/2 execute completed (exit 0, 1.2s)\nstep 2/2 verify failed (30ms)\n');
});

test('on a terminal: a live line for the step running, replaced by the plain line when it ends', () => {
  const out = sink(true);
  const p = new RunProgress(out, () => 2500);
  p.event(step(1, 'running'));
  assert.match(out.text, /\r\x1b\[K⠋ step 1\/2 execute running 0% 1\.5s$/);
  p.event(step(1, 'completed', { exitCode: 0, durationMs: 1200 }));
  assert.match(out.text, /\r\x1b\[Kstep 1\/2 execute completed \(exit 0, 1\.2s\)\n$/);
  p.stop();
  assert.ok(out.text.endsWith('\r\x1b[K'));
});

test('the failure reason in one line: code, step, message, criterion and what it saw', () => {
  assert.is(
    describeFailure({ code: 'verify_failed', step: 2, message: 'criterion did not hold', criterion: 'exit code 0', saw: 'exit code 3' }),
    'verify_failed at step 2: criterion did not hold (criterion "exit code 0", saw "exit code 3")',
  );
  assert.is(describeFailure({ code: 'cancelled', message: 'cancelled by\nadmin' }), 'cancelled: cancelled by admin');
  assert.is(describeFailure(null), 'no reason given');
});

test.run();
