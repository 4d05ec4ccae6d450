import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkEventName, eventData, eventName, subscribes } from '../../../runtime/webhooks/catalogue.ts';
import type { SecurityEvent } from '../../../runtime/events.ts';

const ev = (type: string, details: Record<string, unknown>): SecurityEvent => ({
  id: 'evt_1',
  seq: 1,
  type,
  severity: 'info',
  timestamp: '2026-01-01T00:00:00.000Z',
  workspace: 'wsp_a',
  sandboxId: null,
  networkId: null,
  sessionId: 'ses_1',
  actor: null,
  details,
});
const done = {
  workflowId: 'wf_1',
  sessionId: 'ses_1',
  status: 'completed',
  result: { success: true, output: 'All tests passed' },
  runId: 'run_1',
};

test("a completed run is delivered as workflow.completed with the seed's payload as data", () => {
  const e = ev('workflow_completed', done);
  assert.is(eventName(e), 'workflow.completed');
  assert.equal(eventData(e), done);
  assert.ok(subscribes(['workflow.completed'], e));
  assert.ok(subscribes(['*'], e));
  assert.not.ok(subscribes(['workflow.failed'], e));
  assert.not.ok(subscribes(['security.event'], e), 'a workflow outcome is not a security event');
});

test('failed, cancelled and timed-out runs are delivered as workflow.failed', () => {
  const e = ev('workflow_failed', { ...done, status: 'timed_out', result: { success: false, output: 'timeout' } });
  assert.is(eventName(e), 'workflow.failed');
  assert.ok(subscribes(['workflow.failed'], e));
  assert.is((eventData(e).result as { success: boolean }).success, false);
});

test('step progress never goes to webhooks, not even to "*"', () => {
  const e = ev('workflow_progress', { workflowId: 'wf_1', step: 1 });
  assert.not.ok(subscribes(['*'], e));
  assert.not.ok(subscribes(['security.event'], e));
});

test('the workflow names are in the catalogue; their security.* spellings point to them', () => {
  assert.is(checkEventName('workflow.completed'), null);
  assert.is(checkEventName('workflow.failed'), null);
  assert.match(checkEventName('security.workflow_failed') ?? '', /delivered as workflow\.failed/);
  assert.match(checkEventName('security.workflow_progress') ?? '', /not delivered to webhooks/);
  assert.match(checkEventName('workflow.progress') ?? '', /unknown event/);
});

test.run();
