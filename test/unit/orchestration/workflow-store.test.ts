import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { openDb } from '../../../core/db.ts';
import { RunLog } from '../../../orchestration/workflows/log.ts';
import { capUtf8 } from '../../../orchestration/workflows/steps.ts';
import { WorkflowStore, type RunRecord, type WorkflowRecord } from '../../../orchestration/workflows/store.ts';
import { resolveBackoff } from '../../../orchestration/workflows/backoff.ts';

function setup() {
  const db = openDb('', ':memory:');
  db.sql
    .prepare(
      `INSERT INTO sessions (id, workspace, type, name, description, status, config, created_ms, updated_ms) VALUES ('ses_1', 'wsp_a', 'director', 's', '', 'active', '{}', 1, 1)`,
    )
    .run();
  const store = new WorkflowStore(db);
  const wf: WorkflowRecord = {
    id: 'wf_1',
    workspace: 'wsp_a',
    sessionId: 'ses_1',
    departmentId: null,
    name: 'w',
    description: '',
    steps: [{ type: 'execute', command: 'true' }],
    config: { timeoutMs: 1000, maxRetries: 0, backoff: resolveBackoff() },
    target: {},
    metadata: {},
    status: 'pending',
    lastRunId: null,
    createdBy: null,
    createdMs: 1,
    updatedMs: 1,
  };
  store.insertWorkflow(wf);
  return { db, store, log: new RunLog(db), wf };
}

const newRun = (id: string): Omit<RunRecord, 'number'> => ({
  id,
  workflowId: 'wf_1',
  workspace: 'wsp_a',
  sessionId: 'ses_1',
  departmentId: null,
  state: 'pending',
  actor: null,
  environment: { SECRET: 'x' },
  context: { k: 1 },
  step: 0,
  round: 0,
  checkpoint: null,
  restoreId: null,
  nextMs: null,
  sandboxId: null,
  ownSandbox: true,
  reason: null,
  output: null,
  createdMs: 2,
  queuedMs: null,
  startedMs: null,
  deadlineMs: null,
  endedMs: null,
  updatedMs: 2,
});

test('runs are numbered per workflow and the workflow status follows its latest run', () => {
  const { store } = setup();
  const r1 = store.insertRun(newRun('run_1'));
  assert.is(r1.number, 1);
  assert.is(store.workflowById('wf_1')!.status, 'pending');
  assert.ok(store.transition('run_1', 'running', 3, { startedMs: 3 }));
  assert.is(store.workflowById('wf_1')!.status, 'running');
  assert.ok(store.transition('run_1', 'completed', 4, { endedMs: 4 }));
  const r2 = store.insertRun(newRun('run_2'));
  assert.is(r2.number, 2);
  assert.is(store.workflowById('wf_1')!.lastRunId, 'run_2');
  assert.is(store.workflowById('wf_1')!.status, 'pending');
});

test('a transition the lifecycle does not allow changes nothing (the first party to move a run wins)', () => {
  const { store } = setup();
  store.insertRun(newRun('run_1'));
  assert.is(store.transition('run_1', 'completed', 3), null, 'pending cannot complete');
  assert.ok(store.transition('run_1', 'running', 3));
  assert.ok(store.transition('run_1', 'cancelled', 4, { reason: { code: 'cancelled', message: 'by test' } }));
  assert.is(store.transition('run_1', 'completed', 5), null, 'a cancelled run stays cancelled');
  assert.is(store.patchRun('run_1', 6, { step: 3 }), false, 'an ended run keeps its position');
  const r = store.runById('run_1')!;
  assert.is(r.state, 'cancelled');
  assert.equal(r.reason, { code: 'cancelled', message: 'by test' });
  assert.is(r.step, 0);
  assert.equal(r.environment, { SECRET: 'x' });
});

test('position fields round-trip, the checkpoint as one value', () => {
  const { store } = setup();
  store.insertRun(newRun('run_1'));
  store.transition('run_1', 'running', 3);
  assert.ok(store.patchRun('run_1', 4, { step: 2, round: 1, checkpoint: { step: 1, id: 'ckp_x' }, restoreId: 'ckp_x', nextMs: 99 }));
  const r = store.runById('run_1')!;
  assert.equal([r.step, r.round, r.checkpoint, r.restoreId, r.nextMs], [2, 1, { step: 1, id: 'ckp_x' }, 'ckp_x', 99]);
  assert.equal(store.runningCounts(), { total: 1, byDepartment: new Map() });
});

test('event ids count from 1 per workflow with no holes; reading after an id gives exactly what follows', () => {
  const { log } = setup();
  for (let i = 0; i < 5; i++) log.append('wf_1', 'run_1', 'step', { i }, i);
  log.append('wf_2', null, 'run', {}, 9);
  assert.equal(
    log.eventsAfter('wf_1', 0, 100).map((e) => e.seq),
    [1, 2, 3, 4, 5],
  );
  assert.equal(
    log.eventsAfter('wf_1', 3, 100).map((e) => e.data.i),
    [3, 4],
  );
  assert.equal(
    log.eventsAfter('wf_2', 0, 100).map((e) => e.seq),
    [1],
  );
});

test('an attempt is completed once: a restart that marked it lost wins over a late result', () => {
  const { log } = setup();
  const a = log.beginAttempt({ runId: 'run_1', step: 0, kind: 'execute', round: 0, startedMs: 1 });
  assert.is(a.n, 1);
  assert.is(log.runningAttempts('run_1').length, 1);
  assert.ok(log.finishAttempt('run_1', 1, 2, { state: 'lost' }));
  assert.not.ok(log.finishAttempt('run_1', 1, 3, { state: 'succeeded', exitCode: 0 }));
  assert.is(log.attempt('run_1', 1)!.state, 'lost');
  const b = log.beginAttempt({ runId: 'run_1', step: 0, kind: 'execute', round: 1, startedMs: 4 });
  assert.is(b.n, 2);
  assert.is(log.latestOfStep('run_1', 0)!.n, 2);
});

test('output is cut on a UTF-8 character boundary', () => {
  assert.equal(capUtf8('abc', 3), { text: 'abc', cut: false });
  assert.equal(capUtf8('abcd', 3), { text: 'abc', cut: true });
  assert.equal(capUtf8('aé', 2), { text: 'a', cut: true }, 'é is two bytes');
  assert.equal(capUtf8('a€b', 3), { text: 'a', cut: true }, '€ is three bytes');
  assert.equal(capUtf8('a€b', 4), { text: 'a€', cut: true });
  assert.equal(capUtf8('😀x', 4), { text: '😀', cut: true });
  assert.equal(capUtf8('😀x', 3), { text: '', cut: true });
});

test.run();
