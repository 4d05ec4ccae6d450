/**
 * How a workflow run ends, whatever it was doing: cancelled while queued, while waiting a retry's
 * backoff, during a verify, during a checkpoint step, during the rollback after a failed verify;
 * its run timeout firing during a backoff, during a verify, and not while it waits queued. After
 * each, every view agrees (status, the workflow and the list, the run's steps and attempts, the
 * event log, the webhook, the metrics), nothing is left running (no attempt, no process, no own
 * sandbox), a cancel is 409 and a new start runs; a cancel racing the run's own end leaves one
 * outcome. Real HTTP and the real engine; checkpoint steps and rollbacks pass a gate the test
 * holds, so "during" is a certainty, not a timing guess.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { WorkflowCheckpoints } from '../../../orchestration/workflows/ports.ts';
import { startApi, type TestApi } from '../../helpers/api.ts';
import { eventually, sleep } from '../../helpers/runtime.ts';
import {
  assertSettled,
  counted,
  ENDED,
  outcomes,
  readEvents,
  startHookReceiver,
  stepRunning,
  WorkflowClient,
  type HookReceiver,
  type StatusView,
} from '../../helpers/workflows.ts';

const test = suite('api-workflows-end');
let api: TestApi;
let c: WorkflowClient;
let receiver: HookReceiver;

/** Holds checkpoint captures or restores while closed; counts the calls that reached it. */
class Gate {
  arrived = 0;
  #opened: Promise<void> = Promise.resolve();
  #open: () => void = () => undefined;
  close(): void {
    this.#opened = new Promise((r) => (this.#open = r));
  }
  open(): void {
    this.#open();
  }
  async pass(): Promise<void> {
    this.arrived++;
    await this.#opened;
  }
}
const captures = new Gate();
const restores = new Gate();
const gated = (cp: WorkflowCheckpoints): WorkflowCheckpoints => ({
  capture: async (...a) => {
    await captures.pass();
    return cp.capture(...a);
  },
  restore: async (...a) => {
    await restores.pass();
    return cp.restore(...a);
  },
});

const LONG_BACKOFF = { backoff: { initialInterval: 120_000 } };
const FAST = { backoff: { initialInterval: 50 } };

test.before(async () => {
  receiver = await startHookReceiver();
  api = await startApi(
    { rateLimitSandbox: 10_000, rateLimitSession: 10_000, webhookAllowedCidrs: '127.0.0.0/8' },
    { workflowCheckpoints: gated },
  );
  c = new WorkflowClient(api.url, api.adminToken);
  const hook = await c.post('/v1/webhooks', {
    url: receiver.url,
    events: ['workflow.completed', 'workflow.failed'],
    secret: 'workflow-end-secret-1',
  });
  assert.is(hook.status, 201, hook.text);
});

test.after(async () => {
  captures.open();
  restores.open();
  await api?.close();
  receiver?.close();
});

interface End {
  status: string;
  code: string;
  /** Each step's status, in order. */
  steps: string[];
  rollbacks?: string[];
  /** The run's own sandbox, which must be gone. */
  ownSandbox?: string;
  /** Outcomes counted before the run ended. */
  before: Record<string, number>;
}

/** Every view of workflow `id` agrees that its latest run ended as `e` says, and nothing of it is left. */
async function assertEnded(sessionId: string, id: string, e: End): Promise<StatusView> {
  if (e.ownSandbox) await eventually(async () => (await c.get(`/v1/sandboxes/${e.ownSandbox}`)).status === 404, 15_000);
  const s = await c.status(id);
  const run = s.run!;
  assert.is(s.status, e.status);
  assert.is(run.status, e.status);
  assert.is(run.reason?.code, e.code, JSON.stringify(run.reason));
  assert.ok(run.endedAt, 'an end time');
  assert.equal(
    run.steps.map((x) => x.status),
    e.steps,
    'step statuses',
  );
  assert.equal(
    run.rollbacks.map((r) => r.status),
    e.rollbacks ?? [],
    'rollbacks',
  );
  assertSettled(s, 'status');
  const wf = await c.get<{ status: string; lastRunId: string }>(`/v1/workflows/${id}`);
  assert.equal([wf.body.data.status, wf.body.data.lastRunId], [e.status, run.id], 'GET /v1/workflows/{id}');
  const list = await c.get<{ items: { id: string; status: string }[] }>(`/v1/workflows?sessionId=${sessionId}&limit=100`);
  assert.is(list.body.data.items.find((w) => w.id === id)?.status, e.status, 'the list');
  const filtered = await c.get<{ items: { id: string }[] }>(`/v1/workflows?sessionId=${sessionId}&status=${e.status}&limit=100`);
  assert.ok(
    filtered.body.data.items.some((w) => w.id === id),
    'the list filtered by status',
  );
  // The event log: the run's end is its one terminal event, and its last.
  const log = await readEvents(api.url, api.adminToken, id);
  assert.ok(log.ended, 'the event stream ends');
  const mine = log.events.filter((x) => x.data.runId === run.id);
  const ends = mine.filter((x) => x.event === 'run' && ENDED.includes(String(x.data.status)));
  assert.is(ends.length, 1, `one terminal event: ${JSON.stringify(ends)}`);
  assert.equal(mine.at(-1), ends[0], `the terminal event is the last: ${JSON.stringify(mine.slice(-3))}`);
  assert.is(ends[0]!.data.status, e.status);
  assert.is((ends[0]!.data.reason as { code: string }).code, e.code);
  const cancel = await c.post(`/v1/workflows/${id}/cancel`);
  assert.is(cancel.status, 409, 'nothing left to cancel');
  assert.is(cancel.body.error?.details.status, e.status);
  const hook = await eventually(() => receiver.received.find((r) => r.data.runId === run.id), 10_000);
  assert.equal([hook.event, hook.data.status], ['workflow.failed', e.status], 'the webhook');
  assert.equal(counted(e.before, await outcomes(api.url)), { [e.status]: 1 }, 'director_workflow_runs_total');
  return s;
}

/** A new start of an ended workflow runs to its end. */
async function startsAgain(id: string, number: number, body?: Record<string, unknown>): Promise<void> {
  const again = await c.start(id, body);
  assert.is(again.run!.number, number);
  const s = await c.until(id);
  assert.is(s.status, 'completed', JSON.stringify(s.run?.reason));
}

test('cancelled while queued behind a full department: ended with no step run; a queued run does not time out', async () => {
  const ses = await c.session();
  const sbx = await c.sandbox(ses);
  const dep = await c.post<{ id: string }>('/v1/departments', {
    sessionId: ses,
    name: 'one',
    domain: 'ci',
    config: { maxConcurrentTasks: 1 },
  });
  assert.is(dep.status, 201, dep.text);
  const blocker = await c.create({
    sessionId: ses,
    departmentId: dep.body.data.id,
    name: 'blocker',
    sandboxId: sbx,
    steps: [{ type: 'execute', command: 'while [ ! -e /tmp/go ]; do sleep 0.05; done' }],
  });
  const id = await c.create({
    sessionId: ses,
    departmentId: dep.body.data.id,
    name: 'waits',
    sandboxId: sbx,
    steps: [{ type: 'execute', command: 'echo ran' }],
    config: { timeout: 1000 },
  });
  assert.is((await c.start(blocker)).status, 'running');
  const before = await outcomes(api.url);
  assert.is((await c.start(id)).status, 'queued');
  // Longer than its timeout: the timeout counts from running, so it is still queued.
  await sleep(1200);
  const waiting = await c.status(id);
  assert.is(waiting.run!.status, 'queued');
  assert.is(waiting.run!.deadlineAt, null);
  const r = await c.post<StatusView>(`/v1/workflows/${id}/cancel`);
  assert.is(r.status, 200, r.text);
  assert.is(r.body.data.status, 'cancelled');
  const s = await assertEnded(ses, id, { status: 'cancelled', code: 'cancelled', steps: ['pending'], before });
  assert.is(s.run!.steps[0]!.attempts.length, 0, 'no step ran');
  assert.is(s.run!.startedAt, null, 'it never ran');
  const log = await readEvents(api.url, api.adminToken, id);
  assert.equal(
    log.events.map((x) => [x.event, x.data.status]),
    [
      ['run', 'pending'],
      ['run', 'queued'],
      ['run', 'cancelled'],
    ],
  );
  // A new start waits for the place too, then runs within its timeout counted from then.
  assert.is((await c.start(id)).status, 'queued');
  await sleep(1100);
  assert.is((await c.status(id)).run!.status, 'queued', 'not timed out while queued');
  await c.exec(sbx, 'touch /tmp/go');
  const done = await c.until(id);
  assert.is(done.status, 'completed', JSON.stringify(done.run?.reason));
  assert.is(done.run!.number, 2);
  assert.is((await c.until(blocker)).status, 'completed');
});

test('cancelled while waiting the backoff before a retry: ended at once, the failed verify on record, its own sandbox removed', async () => {
  const ses = await c.session();
  const id = await c.create({
    sessionId: ses,
    name: 'red, retry later',
    steps: [
      { type: 'execute', command: 'test "$GREEN" = 1' },
      { type: 'verify', criteria: 'tests pass' },
    ],
    config: { maxRetries: 2, ...LONG_BACKOFF },
  });
  const before = await outcomes(api.url);
  await c.start(id);
  const waiting = await c.until(id, (s) => s.run?.retries === 1 && s.run.nextAttemptAt !== null);
  const r = await c.post<StatusView>(`/v1/workflows/${id}/cancel`);
  assert.is(r.status, 200, r.text);
  assertSettled(r.body.data, 'the cancel answer');
  const s = await assertEnded(ses, id, {
    status: 'cancelled',
    code: 'cancelled',
    steps: ['failed', 'failed'],
    ownSandbox: waiting.run!.sandboxId!,
    before,
  });
  assert.is(s.run!.retries, 1);
  assert.equal(
    s.run!.steps.map((x) => x.attempts.length),
    [1, 1],
    'the retry never started',
  );
  await startsAgain(id, 2, { environment: { GREEN: '1' } });
});

test('the run timeout fires during the backoff: timed_out at once, nothing pending, its own sandbox removed; a new start runs', async () => {
  const ses = await c.session();
  const id = await c.create({
    sessionId: ses,
    name: 'slow to retry',
    steps: [
      { type: 'execute', command: 'test "$GREEN" = 1' },
      { type: 'verify', criteria: 'tests pass' },
    ],
    // Long enough to reach the backoff (its own sandbox is made first) under load.
    config: { maxRetries: 1, timeout: 3000, ...LONG_BACKOFF },
  });
  const before = await outcomes(api.url);
  await c.start(id);
  const waiting = await c.until(id, (s) => s.run?.retries === 1 || ENDED.includes(s.status));
  assert.is(waiting.status, 'running', 'the retry waits its backoff');
  const s = await assertEnded(ses, id, {
    status: 'timed_out',
    code: 'timed_out',
    steps: ['failed', 'failed'],
    ownSandbox: waiting.run!.sandboxId!,
    before,
  });
  assert.is(s.run!.retries, 1);
  // The next run has its own sandbox and timeout; its verify passes.
  await startsAgain(id, 2, { environment: { GREEN: '1' } });
  assert.equal(counted(before, await outcomes(api.url)), { timed_out: 1, completed: 1 });
});

test('cancelled during a verify: its check is killed, the attempt cancelled, later steps never shown run', async () => {
  const { ses, sbx, id } = await c.inSandbox({
    name: 'slow check',
    steps: [
      { type: 'execute', command: 'echo built' },
      { type: 'verify', criteria: { command: 'echo checking; sleep 341' } },
      { type: 'execute', command: 'echo deployed' },
    ],
  });
  const before = await outcomes(api.url);
  await c.start(id);
  await c.until(id, (s) => stepRunning(s, 2));
  await eventually(async () => (await c.exec(sbx, 'ps')).stdout.includes('sleep 341'), 5000);
  const r = await c.post<StatusView>(`/v1/workflows/${id}/cancel`);
  assert.is(r.status, 200, r.text);
  assertSettled(r.body.data, 'the cancel answer');
  assert.equal(
    r.body.data.run!.steps.map((x) => x.status),
    ['completed', 'cancelled', 'pending'],
  );
  await assertEnded(ses, id, { status: 'cancelled', code: 'cancelled', steps: ['completed', 'cancelled', 'pending'], before });
  await eventually(async () => !(await c.exec(sbx, 'ps')).stdout.includes('sleep 341'), 5000);
  // What the stopped check printed is kept on its attempt.
  assert.is((await c.status(id)).run!.steps[1]!.attempts[0]!.stdout, 'checking\n');
  await startsAgain(
    await c.create({ sessionId: ses, name: 'quick check', sandboxId: sbx, steps: [{ type: 'verify', criteria: { command: 'true' } }] }),
    1,
  );
});

test('the run timeout fires during a verify: timed_out naming the step, its check killed', async () => {
  const { ses, sbx, id } = await c.inSandbox({
    name: 'check outlives the run',
    steps: [
      { type: 'execute', command: 'true' },
      { type: 'verify', criteria: { command: 'test "$QUICK" = 1 || sleep 342' }, timeout: 60_000 },
      { type: 'checkpoint' },
    ],
    config: { timeout: 2000 },
  });
  const before = await outcomes(api.url);
  await c.start(id);
  const s = await c.until(id);
  assert.is(s.status, 'timed_out');
  assertSettled(s, 'at the timeout');
  const end = await assertEnded(ses, id, { status: 'timed_out', code: 'timed_out', steps: ['completed', 'cancelled', 'pending'], before });
  assert.is(end.run!.reason!.step, 2);
  await eventually(async () => !(await c.exec(sbx, 'ps')).stdout.includes('sleep 342'), 5000);
  await startsAgain(id, 2, { environment: { QUICK: '1' } });
});

test('cancelled during a checkpoint step: the attempt is cancelled at once; the checkpoint it finishes is recorded on it', async () => {
  const ses = await c.session();
  const id = await c.create({
    sessionId: ses,
    name: 'checkpoint held',
    steps: [
      { type: 'execute', command: 'echo a > /workspace/a' },
      { type: 'checkpoint', name: 'held' },
      { type: 'execute', command: 'echo never' },
    ],
  });
  const before = await outcomes(api.url);
  captures.close();
  try {
    const arrived = captures.arrived;
    await c.start(id);
    const mid = await c.until(id, (s) => stepRunning(s, 2));
    await eventually(() => captures.arrived > arrived, 10_000, 20);
    const r = await c.post<StatusView>(`/v1/workflows/${id}/cancel`);
    assert.is(r.status, 200, r.text);
    // While the capture is still held: the run ended, and so did its step.
    assertSettled(r.body.data, 'the cancel answer');
    assertSettled(await c.status(id), 'the status while the capture is held');
    assert.equal(
      (await c.status(id)).run!.steps.map((x) => x.status),
      ['completed', 'cancelled', 'pending'],
    );
    captures.open();
    const s = await assertEnded(ses, id, {
      status: 'cancelled',
      code: 'cancelled',
      steps: ['completed', 'cancelled', 'pending'],
      ownSandbox: mid.run!.sandboxId!,
      before,
    });
    const ckp = s.run!.steps[1]!.attempts[0]!.checkpointId;
    const listed = await c.get<{ items: { id: string }[] }>(`/v1/checkpoints?sessionId=${ses}`);
    assert.equal(
      listed.body.data.items.map((x) => x.id),
      [ckp],
      "the session's checkpoints are the one the cancelled attempt names",
    );
  } finally {
    captures.open();
  }
  await startsAgain(id, 2);
});

test('cancelled during the rollback after a failed verify: the rollback is cancelled at once and nothing is reported after the end', async () => {
  const ses = await c.session();
  const id = await c.create({
    sessionId: ses,
    name: 'rollback held',
    steps: [
      { type: 'checkpoint', name: 'base' },
      { type: 'execute', command: 'echo junk > /workspace/junk; exit 1' },
      { type: 'verify', criteria: 'tests pass' },
    ],
    config: { maxRetries: 1, ...FAST },
  });
  const before = await outcomes(api.url);
  restores.close();
  try {
    const arrived = restores.arrived;
    await c.start(id);
    await eventually(() => restores.arrived > arrived, 15_000, 20);
    const mid = await c.until(id, (s) => s.run?.rollbacks[0]?.status === 'running');
    const r = await c.post<StatusView>(`/v1/workflows/${id}/cancel`);
    assert.is(r.status, 200, r.text);
    assertSettled(r.body.data, 'the cancel answer');
    assert.equal(
      r.body.data.run!.rollbacks.map((x) => x.status),
      ['cancelled'],
    );
    restores.open();
    const s = await assertEnded(ses, id, {
      status: 'cancelled',
      code: 'cancelled',
      steps: ['completed', 'failed', 'failed'],
      rollbacks: ['cancelled'],
      ownSandbox: mid.run!.sandboxId!,
      before,
    });
    assert.is(s.run!.rollbacks[0]!.checkpointId, s.run!.steps[0]!.attempts[0]!.checkpointId);
    const log = await readEvents(api.url, api.adminToken, id);
    assert.equal(
      log.events.filter((x) => x.event === 'rollback').map((x) => x.data.status),
      ['running', 'cancelled'],
    );
  } finally {
    restores.open();
  }
});

test('cancelled while its own sandbox is being made: the sandbox is removed whenever it comes, nothing runs after the end', async () => {
  const ses = await c.session();
  const id = await c.create({ sessionId: ses, name: 'cancelled early', steps: [{ type: 'execute', command: 'sleep 351' }] });
  const before = await outcomes(api.url);
  await c.start(id);
  // Sent as soon as the start answers: usually while the sandbox is still being made; either way the same end.
  const r = await c.post<StatusView>(`/v1/workflows/${id}/cancel`);
  assert.is(r.status, 200, r.text);
  assertSettled(r.body.data, 'the cancel answer');
  const live = async () =>
    (await c.get<{ items: { status: string }[] }>(`/v1/sandboxes?sessionId=${ses}`)).body.data.items.filter((x) => x.status !== 'deleted');
  await eventually(async () => (await live()).length === 0, 15_000);
  const reached = (await c.status(id)).run!.steps[0]!.attempts.length > 0;
  await assertEnded(ses, id, { status: 'cancelled', code: 'cancelled', steps: [reached ? 'cancelled' : 'pending'], before });
  // The loop has stopped (the event stream ended above): a sandbox it made after the end is gone too.
  assert.equal(await live(), [], 'no sandbox made after the end is left');
});

test('a cancel racing the run’s own end leaves exactly one outcome everywhere', async () => {
  const { id } = await c.inSandbox({ name: 'race', steps: [{ type: 'execute', command: 'sleep 0.3' }] });
  const seen: string[] = [];
  // Cancels sent from before to after the step's end: whichever lands first, one outcome.
  for (const delayMs of [0, 150, 250, 300, 350, 450]) {
    const before = await outcomes(api.url);
    await c.start(id);
    await c.until(id, (s) => stepRunning(s, 1) || ENDED.includes(s.status));
    await sleep(delayMs);
    const r = await c.post<StatusView>(`/v1/workflows/${id}/cancel`);
    assert.ok(r.status === 200 || r.status === 409, r.text);
    const outcome = r.status === 200 ? 'cancelled' : 'completed';
    if (r.status === 409) assert.is(r.body.error?.details.status, 'completed', r.text);
    else assert.is(r.body.data.status, 'cancelled');
    seen.push(outcome);
    const s = await c.until(id);
    assert.is(s.status, outcome, `cancel answered ${r.status}`);
    assertSettled(s, outcome);
    assert.is(s.run!.steps[0]!.status, outcome === 'cancelled' ? 'cancelled' : 'completed');
    const log = await readEvents(api.url, api.adminToken, id);
    const mine = log.events.filter((x) => x.data.runId === s.run!.id);
    const ends = mine.filter((x) => x.event === 'run' && ENDED.includes(String(x.data.status)));
    assert.equal(
      ends.map((x) => x.data.status),
      [outcome],
    );
    assert.equal(mine.at(-1), ends[0]);
    const hooks = await eventually(() => {
      const h = receiver.received.filter((x) => x.data.runId === s.run!.id);
      return h.length ? h : null;
    }, 10_000);
    assert.equal(
      hooks.map((h) => h.data.status),
      [outcome],
    );
    assert.equal(counted(before, await outcomes(api.url)), { [outcome]: 1 });
  }
  // Either order may win each time; both are covered by the assertions above.
  assert.is(seen.length, 6, seen.join());
});

test('every run’s end reached the webhook exactly once', async () => {
  await sleep(300);
  const byRun = new Map<string, number>();
  for (const r of receiver.received) byRun.set(String(r.data.runId), (byRun.get(String(r.data.runId)) ?? 0) + 1);
  assert.ok(byRun.size > 0);
  for (const [run, n] of byRun) assert.is(n, 1, `run ${run} delivered ${n} times`);
});

test.run();
