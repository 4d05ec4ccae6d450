/**
 * Workflows over real HTTP and the real engine: execute → verify → checkpoint, retries with
 * rollback, timeouts, cancel, scheduling by department, policy refusals, progress on the
 * WebSocket, resumable SSE, webhooks, metrics and tenancy.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { WebSocket } from 'ws';
import { call, startApi, type TestApi } from '../../helpers/api.ts';
import { eventually, sleep } from '../../helpers/runtime.ts';
import { readEvents, startHookReceiver, WorkflowClient, type HookReceiver, type StatusView } from '../../helpers/workflows.ts';

const test = suite('api-workflows');
let api: TestApi;
let c: WorkflowClient;
let tokenB = '';
let receiver: HookReceiver;
const FAST = { backoff: { initialInterval: 50, coefficient: 2 } };

test.before(async () => {
  receiver = await startHookReceiver();
  api = await startApi({
    rateLimitSandbox: 10_000,
    rateLimitSession: 10_000,
    rateLimitAuth: 1000,
    workflowOutputLimitBytes: 1000,
    // The webhook receiver listens on loopback.
    webhookAllowedCidrs: '127.0.0.0/8',
  });
  c = new WorkflowClient(api.url, api.adminToken);
  const ws = await call(api.url, 'POST', '/v1/workspaces', { token: api.adminToken, body: { name: 'tenant-b' } });
  assert.is(ws.status, 201, ws.text);
  const user = await call(api.url, 'POST', '/v1/users', {
    token: api.adminToken,
    headers: { 'x-director-workspace': 'tenant-b' },
    body: { username: 'dev-b', password: 'dev-b-password-123', role: 'developer' },
  });
  assert.is(user.status, 201, user.text);
  const login = await call<{ data: { token: string } }>(api.url, 'POST', '/v1/auth/login', {
    body: { username: 'dev-b', password: 'dev-b-password-123' },
  });
  tokenB = login.body.data.token;
});

test.after(async () => {
  await api?.close();
  receiver?.close();
});

const attemptsOf = (s: StatusView, step: number) => s.run!.steps[step - 1]!.attempts;

test('a verify that fails twice passes after rollback: the failed attempts’ files are gone, every attempt is recorded; the checkpoint is a real one and the rollback touches nothing else of the session', async () => {
  const ses = await c.session();
  const sbx = await c.sandbox(ses);
  const other = await c.sandbox(ses);
  await c.exec(sbx, 'echo base > /workspace/base.txt');
  await c.exec(other, 'echo before > /workspace/other.txt');
  // The try counter lives in /tmp, which checkpoints do not keep: it survives the rollbacks. The
  // first try waits for /tmp/go, so the session can change after the checkpoint and before a rollback.
  const attempt =
    'n=$(cat /tmp/tries 2>/dev/null || echo 0); n=$((n+1)); echo $n > /tmp/tries; echo "try $n" > /workspace/junk-$n; ' +
    'if [ $n = 1 ]; then while [ ! -e /tmp/go ]; do sleep 0.1; done; fi; echo "try $n"; test $n -ge 3';
  const id = await c.create({
    sessionId: ses,
    name: 'flaky tests',
    sandboxId: sbx,
    steps: [
      { type: 'checkpoint', name: 'base', description: 'before the change' },
      { type: 'execute', command: attempt, timeout: 20_000 },
      { type: 'verify', criteria: 'tests pass' },
    ],
    config: { maxRetries: 2, ...FAST },
  });
  await c.start(id, { context: { reviewer: 'ai-assistant' } });
  await c.until(id, (x) => x.run?.steps[1]?.attempts[0]?.status === 'running');
  // After the checkpoint: another sandbox of the session and its context change; the rollbacks must leave them so.
  await c.exec(other, 'echo after > /workspace/other.txt && echo later > /workspace/later.txt');
  const ctx = await c.post<{ id: string }>('/v1/context', { sessionId: ses, name: 'made after the checkpoint' });
  assert.is(ctx.status, 201, ctx.text);
  await c.exec(sbx, 'touch /tmp/go');
  const s = await c.until(id);
  assert.is(s.status, 'completed', JSON.stringify(s.run?.reason));
  const run = s.run!;
  assert.is(run.retries, 2);
  assert.is(run.output, 'try 3\n');
  assert.equal(
    attemptsOf(s, 2).map((a) => [a.round, a.status, a.exitCode]),
    [
      [0, 'failed', 1],
      [1, 'failed', 1],
      [2, 'completed', 0],
    ],
  );
  assert.equal(
    attemptsOf(s, 3).map((a) => a.status),
    ['failed', 'failed', 'completed'],
  );
  assert.equal(attemptsOf(s, 3)[0]!.criteria, [{ criterion: 'tests pass (exit code 0 of step 2)', ok: false, saw: 'exit code 1' }]);
  const ckp = attemptsOf(s, 1)[0]!.checkpointId!;
  assert.match(ckp, /^ckp_/);
  assert.equal(
    run.rollbacks.map((r) => [r.status, r.checkpointId, r.resumeStep]),
    [
      ['completed', ckp, 2],
      ['completed', ckp, 2],
    ],
  );
  const ls = await c.exec(sbx, 'cd /workspace && ls -A');
  assert.equal(ls.stdout.trim().split('\n').sort(), ['base.txt', 'junk-3'], 'files of the failed attempts were rolled back');
  assert.is((await c.exec(sbx, 'cat /tmp/tries')).stdout.trim(), '3');
  assert.is(
    (await c.exec(other, 'cat /workspace/other.txt /workspace/later.txt')).stdout,
    'after\nlater\n',
    "the rollbacks left the session's other sandbox alone",
  );
  assert.is((await c.get(`/v1/context/${ctx.body.data.id}`)).status, 200, "the rollbacks left the session's context alone");
  // The step's checkpoint is one of the session's checkpoints, holding the run's sandbox only.
  const listed = await c.get<{ items: { id: string; name: string; data: Record<string, unknown>; sandboxes: { sandboxId: string }[] }[] }>(
    `/v1/checkpoints?sessionId=${ses}`,
  );
  assert.is(listed.status, 200, listed.text);
  assert.equal(
    listed.body.data.items.map((x) => [x.id, x.name, x.data.workflowId, x.sandboxes.map((b) => b.sandboxId)]),
    [[ckp, 'base', id, [sbx]]],
  );
  const events = await readEvents(api.url, api.adminToken, id);
  assert.ok(events.ended);
  assert.equal(
    events.events.filter((e) => e.event === 'retry').map((e) => [e.data.round, e.data.delayMs, e.data.resumeStep, e.data.checkpointId]),
    [
      [1, 50, 2, ckp],
      [2, 100, 2, ckp],
    ],
  );
});

test('maxRetries exhausted: the run fails naming the step, the criterion and what it saw', async () => {
  const ses = await c.session();
  const id = await c.create({
    sessionId: ses,
    name: 'always red',
    steps: [
      { type: 'execute', command: ['sh', '-c', 'echo 3 failing; exit 4'] },
      { type: 'verify', criteria: [{ stdoutMatches: 'failing' }, { exitCode: 0 }] },
    ],
    config: { maxRetries: 1, ...FAST },
  });
  await c.start(id);
  const done = await c.until(id);
  assert.is(done.status, 'failed');
  const reason = done.run!.reason!;
  assert.is(reason.code, 'verify_failed');
  assert.is(reason.step, 2);
  assert.is(reason.criterion, 'exit code 0 (exit code 0 of step 1)');
  assert.is(reason.saw, 'exit code 4');
  assert.match(reason.message, /step 2 \(verify\) failed after 1 retry/);
  assert.is(done.run!.retries, 1);
  assert.is(attemptsOf(done, 1).length, 2, 'the execute ran once more for the retry');
  assert.equal(
    attemptsOf(done, 2)[1]!.criteria!.map((v) => v.ok),
    [true, false],
  );
});

test('a failed execute with no verify after it fails the run; output is capped and marked truncated', async () => {
  const ses = await c.session();
  const id = await c.create({
    sessionId: ses,
    name: 'loud failure',
    steps: [{ type: 'execute', command: 'head -c 5000 /dev/zero | tr "\\0" x; echo boom >&2; exit 7' }, { type: 'checkpoint' }],
  });
  await c.start(id);
  const s = await c.until(id);
  assert.is(s.status, 'failed');
  assert.is(s.run!.reason!.code, 'execute_failed');
  assert.is(s.run!.reason!.exitCode, 7);
  const a = attemptsOf(s, 1)[0]!;
  assert.is(a.stdout.length, 1000, 'DIRECTOR_WORKFLOW_OUTPUT_LIMIT_BYTES of stdout kept');
  assert.ok(a.truncated);
  assert.is(a.stderr, 'boom\n');
  assert.is(s.run!.steps[1]!.status, 'pending', 'the checkpoint never ran');
});

test('a step timeout kills the process group; a run timeout ends the run as timed_out and stops what runs', async () => {
  const {
    ses,
    sbx,
    id: stepT,
  } = await c.inSandbox({
    name: 'slow step',
    steps: [{ type: 'execute', command: 'sleep 311 & sleep 312; wait', timeout: 500 }],
  });
  await c.start(stepT);
  const s1 = await c.until(stepT);
  assert.is(s1.status, 'failed');
  assert.ok(attemptsOf(s1, 1)[0]!.timedOut);
  assert.match(s1.run!.reason!.message, /timed out/);
  await eventually(async () => !(await c.exec(sbx, 'ps')).stdout.includes('sleep 31'), 5000);

  const runT = await c.create({
    sessionId: ses,
    name: 'slow run',
    sandboxId: sbx,
    steps: [
      { type: 'execute', command: 'sleep 313', timeout: 60_000 },
      { type: 'verify', criteria: 'succeeds' },
    ],
    config: { timeout: 1500 },
  });
  await c.start(runT);
  const s2 = await c.until(runT);
  assert.is(s2.status, 'timed_out');
  assert.is(s2.run!.reason!.code, 'timed_out');
  assert.is(attemptsOf(s2, 1)[0]!.status, 'cancelled');
  await eventually(async () => !(await c.exec(sbx, 'ps')).stdout.includes('sleep 313'), 5000);
});

test('cancel while a step runs: the run is cancelled, its process is gone, its own sandbox removed', async () => {
  const { ses, sbx, id: named } = await c.inSandbox({ name: 'cancel me', steps: [{ type: 'execute', command: 'sleep 321' }] });
  await c.start(named);
  await c.until(named, (s) => s.run?.currentStep?.status === 'running');
  await eventually(async () => (await c.exec(sbx, 'ps')).stdout.includes('sleep 321'), 5000);
  const r = await c.post<StatusView>(`/v1/workflows/${named}/cancel`);
  assert.is(r.status, 200, r.text);
  assert.is(r.body.data.status, 'cancelled');
  assert.is(r.body.data.run!.reason!.code, 'cancelled');
  await eventually(async () => !(await c.exec(sbx, 'ps')).stdout.includes('sleep 321'), 5000);
  const after = await c.until(named, (s) => s.run!.steps[0]!.attempts[0]!.status === 'cancelled');
  assert.is(after.status, 'cancelled');
  const again = await c.post(`/v1/workflows/${named}/cancel`);
  assert.is(again.status, 409, 'nothing left to cancel');

  const own = await c.create({ sessionId: ses, name: 'own sandbox', steps: [{ type: 'execute', command: 'sleep 322' }] });
  await c.start(own);
  const running = await c.until(own, (s) => s.run?.currentStep?.status === 'running');
  const ownSbx = running.run!.sandboxId!;
  assert.match(ownSbx, /^sbx_/);
  assert.is((await c.post(`/v1/workflows/${own}/cancel`)).status, 200);
  await eventually(async () => (await c.get(`/v1/sandboxes/${ownSbx}`)).status === 404, 10_000);
});

test('one run at a time: a second start is 409 naming the run; Idempotency-Key replays the first answer', async () => {
  const ses = await c.session();
  const id = await c.create({ sessionId: ses, name: 'once', steps: [{ type: 'execute', command: 'sleep 1' }] });
  const key = { 'idempotency-key': `start-${id}` };
  const first = await c.post<StatusView>(`/v1/workflows/${id}/start`, {}, key);
  assert.is(first.status, 202, first.text);
  const replay = await c.post<StatusView>(`/v1/workflows/${id}/start`, {}, key);
  assert.is(replay.status, 202);
  assert.is(replay.headers.get('idempotent-replayed'), 'true');
  assert.is(replay.body.data.run!.id, first.body.data.run!.id);
  const second = await c.post(`/v1/workflows/${id}/start`);
  assert.is(second.status, 409);
  assert.is(second.body.error?.details.runId, first.body.data.run!.id);
  await c.until(id);
  const rerun = await c.start(id);
  assert.is(rerun.run!.number, 2, 'a workflow whose run ended starts again');
  await c.until(id);
});

test("a department's maxConcurrentTasks bounds its runs: the others wait queued, then run", async () => {
  const ses = await c.session();
  const dep = await c.post<{ id: string }>('/v1/departments', {
    sessionId: ses,
    name: 'D',
    domain: 'ci',
    config: { maxConcurrentTasks: 1 },
  });
  assert.is(dep.status, 201, dep.text);
  const mk = (n: number) =>
    c.create({ sessionId: ses, departmentId: dep.body.data.id, name: `d${n}`, steps: [{ type: 'execute', command: 'sleep 1' }] });
  const [a, b] = [await mk(1), await mk(2)];
  assert.is((await c.start(a)).status, 'running');
  const second = await c.start(b);
  assert.is(second.status, 'queued');
  assert.ok(
    (await c.get<{ items: { id: string }[] }>(`/v1/workflows?sessionId=${ses}&status=queued`)).body.data.items.some((w) => w.id === b),
  );
  const doneA = await c.until(a);
  assert.is(doneA.status, 'completed');
  const doneB = await c.until(b);
  assert.is(doneB.status, 'completed');
  const startedB = Date.parse((doneB.run as unknown as { startedAt: string }).startedAt);
  const endedA = Date.parse((doneA.run as unknown as { endedAt: string }).endedAt);
  assert.ok(startedB >= endedA, 'the queued run started only after the first ended');
  const m = await c.get<{ tasks: { total: number } }>(`/v1/departments/${dep.body.data.id}/metrics`);
  assert.is(m.body.data.tasks.total, 2, 'each step counts as a task of the department');
});

test('a command refused by the sandbox policy is a policy_violation event and fails the step', async () => {
  const ses = await c.session();
  const id = await c.create({
    sessionId: ses,
    name: 'no exec',
    sandbox: { securityPolicy: { allowExec: false } },
    steps: [
      { type: 'execute', command: 'echo hi' },
      { type: 'verify', criteria: 'succeeds' },
    ],
    config: { maxRetries: 3 },
  });
  await c.start(id);
  const s = await c.until(id);
  assert.is(s.status, 'failed');
  assert.is(s.run!.reason!.code, 'policy_violation');
  assert.is(attemptsOf(s, 1).length, 1, 'a refusal is not retried');
  const ev = await c.get<{ items: { details: Record<string, unknown> }[] }>('/v1/security/events?type=policy_violation&limit=100');
  assert.ok(
    ev.body.data.items.some((e) => e.details.workflowId === id && e.details.step === 1),
    ev.text.slice(0, 500),
  );
});

test('workflow_progress arrives on the WebSocket channel workflows; the outcome goes to webhooks', async () => {
  const hook = await c.post('/v1/webhooks', {
    url: receiver.url,
    events: ['workflow.completed', 'workflow.failed'],
    secret: 'workflow-hook-secret-1',
  });
  assert.is(hook.status, 201, hook.text);
  const ses = await c.session();
  const ws = new WebSocket(`${api.url.replace('http', 'ws')}/v1/ws`, { headers: { authorization: `Bearer ${api.adminToken}` } });
  const msgs: { type: string; data: Record<string, unknown> }[] = [];
  ws.on('message', (d: Buffer) => msgs.push(JSON.parse(d.toString()) as { type: string; data: Record<string, unknown> }));
  await new Promise((r) => ws.once('open', r));
  try {
    ws.send(JSON.stringify({ type: 'subscribe', channel: 'workflows' }));
    await eventually(() => msgs.some((m) => m.type === 'subscribed'), 5000, 20);
    const id = await c.create({
      sessionId: ses,
      name: 'live',
      steps: [
        { type: 'execute', command: 'echo All tests passed' },
        { type: 'verify', criteria: 'tests pass' },
      ],
    });
    await c.start(id);
    await c.until(id);
    const progress = await eventually(() => {
      const mine = msgs.filter((m) => m.type === 'workflow_progress' && m.data.workflowId === id);
      return mine.length >= 4 ? mine : null;
    }, 5000);
    assert.equal(
      progress.map((m) => [m.data.step, m.data.totalSteps, m.data.progress, (m.data.currentStep as { status: string }).status]),
      [
        [1, 2, 0, 'running'],
        [1, 2, 50, 'completed'],
        [2, 2, 50, 'running'],
        [2, 2, 100, 'completed'],
      ],
    );
    assert.is((progress[0]!.data.currentStep as { type: string }).type, 'execute');
    assert.ok(msgs.some((m) => m.type === 'workflow_completed' && m.data.workflowId === id));
    const delivered = await eventually(() => receiver.received.find((r) => r.data.workflowId === id), 10_000);
    assert.is(delivered.event, 'workflow.completed');
    assert.equal(
      { ...delivered.data, runId: undefined },
      { workflowId: id, sessionId: ses, status: 'completed', result: { success: true, output: 'All tests passed\n' }, runId: undefined },
    );
  } finally {
    ws.close();
  }
});

test('SSE resumes from Last-Event-ID with no gap and no repeat; a disconnect does not stop the run', async () => {
  const ses = await c.session();
  const id = await c.create({
    sessionId: ses,
    name: 'streamed',
    steps: [
      { type: 'execute', command: 'sleep 0.3; echo one' },
      { type: 'checkpoint' },
      { type: 'execute', command: 'sleep 0.3; echo two' },
      { type: 'verify', criteria: 'output contains "two"' },
    ],
  });
  await c.start(id);
  const first = await readEvents(api.url, api.adminToken, id, { stopAfter: 4 });
  assert.is(first.events.length, 4);
  const last = first.events.at(-1)!.id!;
  await sleep(400);
  const rest = await readEvents(api.url, api.adminToken, id, { lastEventId: last });
  assert.ok(rest.ended, 'the stream ends after the run');
  const ids = [...first.events, ...rest.events].map((e) => e.id);
  assert.equal(
    ids,
    ids.map((_, i) => i + 1),
    'ids 1..n, nothing missing or repeated',
  );
  const full = await readEvents(api.url, api.adminToken, id);
  assert.equal([...first.events, ...rest.events], full.events);
  assert.equal(full.events.at(-1)!.data.status, 'completed');
  assert.is((await c.status(id)).status, 'completed');
  const badId = await fetch(`${api.url}/v1/workflows/${id}/events`, {
    headers: { authorization: `Bearer ${api.adminToken}`, 'last-event-id': 'x' },
  });
  assert.is(badId.status, 400);
});

test('criteria that cannot be checked are refused at create naming the step; nothing is created', async () => {
  const ses = await c.session();
  const before = (await c.get<{ total: number }>(`/v1/workflows?sessionId=${ses}`)).body.data.total;
  const bad = await c.post('/v1/workflows', {
    sessionId: ses,
    name: 'vague',
    steps: [
      { type: 'execute', command: 'npm test' },
      { type: 'verify', criteria: 'the code looks good' },
    ],
  });
  assert.is(bad.status, 400);
  assert.is(bad.body.error?.details.field, 'steps[1].criteria');
  const noExec = await c.post('/v1/workflows', { sessionId: ses, name: 'x', steps: [{ type: 'verify', criteria: 'tests pass' }] });
  assert.is(noExec.body.error?.details.field, 'steps[0].criteria');
  const regex = await c.post('/v1/workflows', {
    sessionId: ses,
    name: 'x',
    steps: [
      { type: 'execute', command: 'true' },
      { type: 'verify', criteria: { stdoutMatches: '[' } },
    ],
  });
  assert.is(regex.body.error?.details.field, 'steps[1].criteria.stdoutMatches');
  const badStep = await c.post('/v1/workflows', {
    sessionId: ses,
    name: 'x',
    steps: [{ type: 'execute', command: 'x', timeout: 86_400_000 }],
  });
  assert.is(badStep.body.error?.details.field, 'steps[0].timeout');
  const both = await c.post('/v1/workflows', {
    sessionId: ses,
    name: 'x',
    sandboxId: 'sbx_AAAAAAAAAAAAAAAA',
    sandbox: { image: 'director/busybox:latest' },
    steps: [{ type: 'execute', command: 'x' }],
  });
  assert.is(both.status, 400);
  assert.is((await c.get<{ total: number }>(`/v1/workflows?sessionId=${ses}`)).body.data.total, before);
  const spec = await call<{ paths: Record<string, unknown> }>(api.url, 'GET', '/v1/openapi.json');
  for (const p of [
    '/v1/workflows',
    '/v1/workflows/{id}/start',
    '/v1/workflows/{id}/status',
    '/v1/workflows/{id}/cancel',
    '/v1/workflows/{id}/events',
  ])
    assert.ok(spec.body.paths[p], `${p} is documented`);
});

test("another workspace's workflow is a 404 on every route", async () => {
  const ses = await c.session();
  const id = await c.create({ sessionId: ses, name: 'private', steps: [{ type: 'execute', command: 'true' }] });
  const b = new WorkflowClient(api.url, tokenB);
  assert.is((await b.get(`/v1/workflows/${id}`)).status, 404);
  assert.is((await b.get(`/v1/workflows/${id}/status`)).status, 404);
  assert.is((await b.post(`/v1/workflows/${id}/start`)).status, 404);
  assert.is((await b.post(`/v1/workflows/${id}/cancel`)).status, 404);
  assert.is((await readEvents(api.url, tokenB, id)).status, 404);
  assert.is((await b.get<{ total: number }>('/v1/workflows')).body.data.total, 0);
  assert.is((await b.post('/v1/workflows', { sessionId: ses, name: 'x', steps: [{ type: 'execute', command: 'true' }] })).status, 400);
  assert.is((await c.status(id)).status, 'pending', 'nothing was started');
});

test('ending a session cancels its runs; metrics count runs, steps, retries and rollbacks', async () => {
  const ses = await c.session();
  const id = await c.create({ sessionId: ses, name: 'long', steps: [{ type: 'execute', command: 'sleep 331' }] });
  await c.start(id);
  const running = await c.until(id, (s) => s.run?.currentStep?.status === 'running');
  const put = await call(api.url, 'PUT', `/v1/sessions/${ses}`, { token: api.adminToken, body: { status: 'completed' } });
  assert.is(put.status, 200, put.text);
  const s = await c.status(id);
  assert.is(s.status, 'cancelled');
  assert.is(s.run!.reason!.code, 'session_ended');
  assert.is((await c.get(`/v1/sandboxes/${running.run!.sandboxId!}`)).status, 404, 'its own sandbox is gone');
  const text = await (await fetch(`${api.url}/metrics`)).text();
  assert.match(text, /director_workflow_runs_total\{outcome="completed"\} [1-9]/);
  assert.match(text, /director_workflow_runs_total\{outcome="cancelled"\} [1-9]/);
  assert.match(text, /director_workflow_step_duration_seconds_count\{type="execute"\} [1-9]/);
  assert.match(text, /director_workflow_step_duration_seconds_count\{type="rollback"\} [1-9]/);
  assert.match(text, /director_workflow_retries_total [1-9]/);
  assert.match(text, /director_workflow_rollbacks_total [1-9]/);
  assert.match(text, /director_workflow_runs_open\{state="running"\} 0/);
});

test.run();
