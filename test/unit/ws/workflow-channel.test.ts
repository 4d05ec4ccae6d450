import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { workflowMapper } from '../../../api/ws/channels.ts';
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

test('the WebSocket channel workflows carries progress and outcomes as their own message types', () => {
  const progress = {
    workflowId: 'wf_1',
    step: 2,
    totalSteps: 3,
    progress: 33,
    currentStep: { type: 'verify', status: 'running', startTime: 'x' },
  };
  assert.equal(workflowMapper(ev('workflow_progress', progress)), { type: 'workflow_progress', data: progress });
  assert.equal(workflowMapper(ev('workflow_completed', done)), { type: 'workflow_completed', data: done });
  assert.is(workflowMapper(ev('sandbox_created', {})), null);
  assert.is(workflowMapper(ev('policy_violation', {})), null);
  assert.is(workflowMapper(ev('ws_origin_refused', {})), null);
});

test.run();
