/**
 * Sessions, departments and context windows over real HTTP and the real engine, with the
 * Director Protocol's own request bodies.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { call, startApi, type TestApi } from '../../helpers/api.ts';
import { BUSYBOX, eventually } from '../../helpers/runtime.ts';
import { LABEL } from '../../../runtime/sandbox/hardening.ts';

const test = suite('api-sessions');
let api: TestApi;
let tokenB = '';

interface Session {
  id: string;
  type: string;
  name: string;
  status: string;
  config: Record<string, unknown>;
  metrics: { activeDepartments: number; totalTasks: number };
  expiresAt: string | null;
}
interface Department {
  id: string;
  sessionId: string;
  config: { maxConcurrentTasks: number; resourceLimits?: Record<string, number> };
}
interface Sandbox {
  id: string;
  sessionId: string | null;
  departmentId: string | null;
  resourceLimits: { memory: number; cpu: number };
  status: string;
}

const as = (token = api.adminToken) => ({ token });
const post = <T>(path: string, body: unknown, token?: string) => call<{ data: T }>(api.url, 'POST', path, { ...as(token), body });
const get = <T>(path: string, token?: string) => call<{ data: T }>(api.url, 'GET', path, as(token));

/** cross_workspace_attempt events that name sandbox `id`. */
const crossAttempts = (id: string) =>
  api.rt.events.list({ type: 'cross_workspace_attempt', limit: 1000 }).filter((e) => (e.details as { id?: string }).id === id).length;

async function session(body: Record<string, unknown> = { type: 'director', name: 'S' }): Promise<Session> {
  const r = await post<Session>('/v1/sessions', body);
  assert.is(r.status, 201, r.text);
  return r.body.data;
}

test.before(async () => {
  api = await startApi({ rateLimitSandbox: 1000, rateLimitSession: 10_000, rateLimitAuth: 1000 });
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
});

test('the Director Protocol session bodies: create, get, list, update (config merged), delete', async () => {
  const created = await session({
    type: 'director',
    name: 'Main Director Session',
    description: 'Primary director session for orchestration',
    config: { maxDepartments: 10, timeout: 3600000 },
  });
  assert.match(created.id, /^ses_[A-Za-z0-9_-]{16}$/);
  assert.is(created.status, 'active');
  assert.equal(created.config, { maxDepartments: 10, timeout: 3600000 });
  assert.equal(created.metrics, { activeDepartments: 0, totalTasks: 0 });
  assert.ok(created.expiresAt);

  const got = await get<Session>(`/v1/sessions/${created.id}`);
  assert.is(got.status, 200);
  assert.is(got.body.data.name, 'Main Director Session');

  const listed = await get<{ items: Session[]; total: number }>('/v1/sessions?limit=10&offset=0&status=active');
  assert.is(listed.status, 200);
  assert.ok(listed.body.data.items.some((s) => s.id === created.id));

  const put = await call<{ data: Session }>(api.url, 'PUT', `/v1/sessions/${created.id}`, {
    ...as(),
    body: { name: 'Updated Session Name', config: { maxDepartments: 15 } },
  });
  assert.is(put.status, 200, put.text);
  assert.is(put.body.data.name, 'Updated Session Name');
  assert.equal(put.body.data.config, { maxDepartments: 15, timeout: 3600000 }, 'unset keys keep their values');

  const paused = await call<{ data: Session }>(api.url, 'PUT', `/v1/sessions/${created.id}`, { ...as(), body: { status: 'paused' } });
  assert.is(paused.body.data.status, 'paused');
  const refused = await post('/v1/departments', { sessionId: created.id, name: 'D', domain: 'x' });
  assert.is(refused.status, 409, 'a paused session takes no new work');

  const del = await call(api.url, 'DELETE', `/v1/sessions/${created.id}`, as());
  assert.is(del.status, 200, del.text);
  assert.is((await get(`/v1/sessions/${created.id}`)).status, 404);
});

test('bad bodies are refused naming the field (an unknown session type too), and nothing is created; no type is `director`', async () => {
  const before = (await get<{ total: number }>('/v1/sessions')).body.data.total;
  const unknown = await post('/v1/sessions', { name: 'x', colour: 'red' });
  assert.is(unknown.status, 400);
  assert.is(unknown.body.error?.details.field, 'colour');
  const badTimeout = await post('/v1/sessions', { name: 'x', config: { timeout: 'soon' } });
  assert.is(badTimeout.status, 400);
  assert.is(badTimeout.body.error?.details.field, 'config.timeout');
  const tooLong = await post('/v1/sessions', { name: 'x', config: { timeout: 31_536_000_000 } });
  assert.is(tooLong.status, 400);
  assert.match(tooLong.text, /operator's limit/);
  // `director` is the only session type the seed names; any other is refused, not stored as a label.
  for (const type of ['bogus', 'Director', 'agent', '']) {
    const badType = await post('/v1/sessions', { type, name: 'x' });
    assert.is(badType.status, 400, `type ${JSON.stringify(type)}: ${badType.text}`);
    assert.is(badType.body.error?.code, 'VALIDATION_ERROR');
    assert.is(badType.body.error?.details.field, 'type');
  }
  const untyped = await post<{ type: string }>('/v1/sessions', { name: 'no type' });
  assert.is(untyped.status, 201, untyped.text);
  assert.is(untyped.body.data.type, 'director');
  assert.is((await get<{ total: number }>('/v1/sessions')).body.data.total, before + 1);
});

test('departments: the seed body, list filters, metrics, and maxDepartments', async () => {
  const s = await session({ type: 'director', name: 'Dep session', config: { maxDepartments: 2 } });
  const seed = await post<Department>('/v1/departments', {
    sessionId: s.id,
    name: 'Code Generation Department',
    domain: 'code-generation',
    config: { maxConcurrentTasks: 5, resourceLimits: { memory: 512, cpu: 1.0 } },
    capabilities: ['javascript', 'typescript', 'react'],
  });
  assert.is(seed.status, 201, seed.text);
  assert.match(seed.body.data.id, /^dep_/);
  const second = await post<Department>('/v1/departments', { sessionId: s.id, name: 'Review', domain: 'code-review' });
  assert.is(second.status, 201, second.text);
  const third = await post('/v1/departments', { sessionId: s.id, name: 'One too many', domain: 'x' });
  assert.is(third.status, 409);
  assert.match(third.text, /maximum of 2 departments/);

  const byDomain = await get<{ items: Department[] }>(`/v1/departments?sessionId=${s.id}&domain=code-generation`);
  assert.equal(
    byDomain.body.data.items.map((d) => d.id),
    [seed.body.data.id],
  );
  const m = await get<{ sandboxes: { running: number }; tasks: { total: number }; memory: { limitBytes: number } }>(
    `/v1/departments/${seed.body.data.id}/metrics`,
  );
  assert.is(m.status, 200, m.text);
  assert.is(m.body.data.sandboxes.running, 0);
  assert.is(m.body.data.memory.limitBytes, 512 * 1024 * 1024);
  const sess = await get<Session>(`/v1/sessions/${s.id}`);
  assert.is(sess.body.data.metrics.activeDepartments, 2);
});

test('department limits are a ceiling: over it is refused naming the level and recorded; under it the default is lowered', async () => {
  const s = await session({ name: 'Ceilings', config: { resourceLimits: { memory: 1024 } } });
  const wide = await post('/v1/departments', {
    sessionId: s.id,
    name: 'Too wide',
    domain: 'x',
    config: { resourceLimits: { memory: 2048 } },
  });
  assert.is(wide.status, 400, wide.text);
  assert.match(wide.text, /session ses_[A-Za-z0-9_-]{16} allows memory ≤ 1024 MiB/);

  const dep = await post<Department>('/v1/departments', {
    sessionId: s.id,
    name: 'Small',
    domain: 'small',
    config: { resourceLimits: { memory: 64 } },
  });
  assert.is(dep.status, 201, dep.text);
  const over = await post('/v1/sandboxes', { image: BUSYBOX, departmentId: dep.body.data.id, resourceLimits: { memory: 512 } });
  assert.is(over.status, 400, over.text);
  assert.match(over.text, new RegExp(`department ${dep.body.data.id} allows memory ≤ 64 MiB`));
  const violations = await get<{ items: { type: string; details: { deniedBy?: { level: string; id: string } } }[] }>(
    '/v1/security/events?type=policy_violation&limit=50',
  );
  assert.ok(
    violations.body.data.items.some((e) => e.details.deniedBy?.level === 'department' && e.details.deniedBy.id === dep.body.data.id),
    'the refusal is a policy_violation naming the department',
  );

  const ok = await post<Sandbox>('/v1/sandboxes', { image: BUSYBOX, departmentId: dep.body.data.id });
  assert.is(ok.status, 201, ok.text);
  assert.is(ok.body.data.resourceLimits.memory, 64, 'the default is lowered to the ceiling');
  assert.is(ok.body.data.sessionId, s.id, 'a department implies its session');
  assert.is(ok.body.data.departmentId, dep.body.data.id);
  const inspect = await api.rt.engine.inspectContainer(api.rt.sandboxes.deps.store.byId(ok.body.data.id)!.containerId!);
  assert.ok(inspect, 'the container runs');
  const listed = await get<{ items: Sandbox[] }>(`/v1/sandboxes?sessionId=${s.id}`);
  assert.equal(
    listed.body.data.items.map((x) => x.id),
    [ok.body.data.id],
  );
  const m = await get<{ sandboxes: { running: number; total: number } }>(`/v1/departments/${dep.body.data.id}/metrics`);
  assert.equal(m.body.data.sandboxes, { running: 1, total: 1 });
});

test("executes in a session's sandbox are its tasks (and its department's): active while they run, failed when they fail; a refused one is none", async () => {
  const s = await session({ name: 'Tasks' });
  const dep = await post<Department>('/v1/departments', { sessionId: s.id, name: 'Runner', domain: 'ci' });
  assert.is(dep.status, 201, dep.text);
  const sb = await post<Sandbox>('/v1/sandboxes', { image: BUSYBOX, departmentId: dep.body.data.id });
  assert.is(sb.status, 201, sb.text);
  const exec = (body: unknown) => post<{ exitCode: number }>(`/v1/sandboxes/${sb.body.data.id}/execute`, body);
  type Tasks = { total: number; active: number; failed: number };
  const tasks = async () => (await get<{ tasks: Tasks }>(`/v1/departments/${dep.body.data.id}/metrics`)).body.data.tasks;
  const totalOf = async () => (await get<Session>(`/v1/sessions/${s.id}`)).body.data.metrics.totalTasks;

  assert.is((await exec({ command: 'true' })).body.data.exitCode, 0);
  assert.is((await exec({ command: 'exit 3' })).body.data.exitCode, 3);
  assert.is((await exec({ command: 'true', bogus: 1 })).status, 400, 'refused before anything ran');
  // Streamed (SSE) executes count the same.
  const sse = await fetch(`${api.url}/v1/sandboxes/${sb.body.data.id}/execute`, {
    method: 'POST',
    headers: { authorization: `Bearer ${api.adminToken}`, 'content-type': 'application/json', accept: 'text/event-stream' },
    body: JSON.stringify({ command: 'echo streamed' }),
  });
  assert.match(await sse.text(), /event: exit/);
  assert.equal(await tasks(), { total: 3, active: 0, failed: 1 });
  assert.is(await totalOf(), 3);

  // One running now: active until it ends. It waits for a file the test writes (not an execute:
  // that would be a task too), so however slow a metrics read (the engine's stats) is, it is seen running.
  const slow = exec({ command: 'while [ ! -e /tmp/go ]; do sleep 0.05; done', timeout: 60_000 });
  await eventually(async () => (await tasks()).active === 1, 30_000, 20);
  assert.is(await totalOf(), 4, 'the running one is in the total');
  const go = await call(api.url, 'PUT', `/v1/sandboxes/${sb.body.data.id}/files?path=${encodeURIComponent('/tmp/go')}`, {
    ...as(),
    raw: 'go',
    headers: { 'content-type': 'application/octet-stream' },
  });
  assert.is(go.status, 200, go.text);
  assert.is((await slow).body.data.exitCode, 0);
  assert.equal(await tasks(), { total: 4, active: 0, failed: 1 });

  // Another workspace's execute is a 404, recorded once as a cross-workspace attempt, and no task.
  const crossBefore = crossAttempts(sb.body.data.id);
  const foreign = await post(`/v1/sandboxes/${sb.body.data.id}/execute`, { command: 'true' }, tokenB);
  assert.is(foreign.status, 404, foreign.text);
  assert.is(crossAttempts(sb.body.data.id) - crossBefore, 1, 'one cross_workspace_attempt');
  assert.equal(await tasks(), { total: 4, active: 0, failed: 1 });

  // A sandbox outside any session counts nowhere.
  const free = await post<Sandbox>('/v1/sandboxes', { image: BUSYBOX });
  assert.is(free.status, 201, free.text);
  assert.is((await post(`/v1/sandboxes/${free.body.data.id}/execute`, { command: 'true' })).status, 200);
  assert.is(await totalOf(), 4);
  assert.is((await call(api.url, 'DELETE', `/v1/sandboxes/${free.body.data.id}`, as())).status, 200);
});

test('context windows: the seed bodies, file:// items read from the session sandbox, retention and the size cap', async () => {
  const s = await session({ name: 'Ctx' });
  const sb = await post<Sandbox>('/v1/sandboxes', { image: BUSYBOX, sessionId: s.id });
  assert.is(sb.status, 201, sb.text);
  const ex = await post(`/v1/sandboxes/${sb.body.data.id}/execute`, {
    command: ['sh', '-c', 'mkdir -p /workspace/path/to && printf "requirements v1" > /workspace/path/to/document.pdf'],
  });
  assert.is(ex.status, 200, ex.text);

  const created = await post<{ id: string; itemCount: number; evicted: string[] }>('/v1/context', {
    sessionId: s.id,
    name: 'Project Context',
    items: [{ type: 'text', content: 'This is a project overview...', metadata: { source: 'project-overview', priority: 'high' } }],
    config: { maxSize: 2, retentionPolicy: { maxAge: 86400000, importanceThreshold: 0.5 } },
  });
  assert.is(created.status, 201, created.text);
  assert.match(created.body.data.id, /^ctx_/);
  assert.is(created.body.data.itemCount, 1);
  const ctx = created.body.data.id;

  const file = await post<{ id: string; content: string; metadata: Record<string, unknown>; evicted: string[] }>(
    `/v1/context/${ctx}/items`,
    {
      type: 'file',
      content: 'file://path/to/document.pdf',
      metadata: { title: 'Project Requirements', tags: ['requirements', 'specification'] },
    },
  );
  assert.is(file.status, 201, file.text);
  assert.is(file.body.data.content, 'requirements v1', 'the file was read from the session sandbox');
  assert.is(file.body.data.metadata.path, '/workspace/path/to/document.pdf');

  // Full (maxSize 2): a low-priority item is the least important, so it is the one that goes.
  const low = await post<{ id: string; evicted: string[] }>(`/v1/context/${ctx}/items`, {
    type: 'text',
    content: 'trivia',
    metadata: { priority: 'low' },
  });
  assert.is(low.status, 201);
  assert.equal(low.body.data.evicted, [low.body.data.id]);
  // A critical one pushes out the least important of the others: the file (0.5), not the overview (0.75).
  const crit = await post<{ id: string; evicted: string[] }>(`/v1/context/${ctx}/items`, {
    type: 'url',
    content: 'https://example.test/spec',
    metadata: { priority: 'critical' },
  });
  assert.equal(crit.body.data.evicted, [file.body.data.id]);
  const items = await get<{ items: { id: string; type: string }[]; total: number }>(`/v1/context/${ctx}/items?limit=20&offset=0`);
  assert.is(items.body.data.total, 2);
  assert.equal(
    items.body.data.items.map((i) => i.type),
    ['text', 'url'],
  );
  assert.is((await get<{ itemCount: number }>(`/v1/context/${ctx}`)).body.data.itemCount, 2);

  const big = await post(`/v1/context/${ctx}/items`, { type: 'text', content: 'x'.repeat(1_048_577) });
  assert.ok(big.status === 413, `an item over the cap is 413 (got ${big.status})`);
  const badUrl = await post(`/v1/context/${ctx}/items`, { type: 'url', content: 'file:///etc/passwd' });
  assert.is(badUrl.status, 400);
  assert.is((await get<{ total: number }>(`/v1/context/${ctx}/items`)).body.data.total, 2, 'refused items stored nothing');
});

test('another workspace’s session, department and context ids are 404, as missing ones', async () => {
  const s = await session({ name: 'Private' });
  const dep = await post<Department>('/v1/departments', { sessionId: s.id, name: 'D', domain: 'd' });
  const ctx = await post<{ id: string }>('/v1/context', { sessionId: s.id, name: 'C' });
  for (const path of [
    `/v1/sessions/${s.id}`,
    `/v1/departments/${dep.body.data.id}`,
    `/v1/departments/${dep.body.data.id}/metrics`,
    `/v1/context/${ctx.body.data.id}`,
    `/v1/context/${ctx.body.data.id}/items`,
  ]) {
    const r = await get(path, tokenB);
    assert.is(r.status, 404, `${path}: ${r.text}`);
  }
  const put = await call(api.url, 'PUT', `/v1/sessions/${s.id}`, { token: tokenB, body: { name: 'hijacked' } });
  assert.is(put.status, 404);
  const del = await call(api.url, 'DELETE', `/v1/sessions/${s.id}`, { token: tokenB });
  assert.is(del.status, 404);
  const sbx = await post('/v1/sandboxes', { image: BUSYBOX, sessionId: s.id }, tokenB);
  assert.is(sbx.status, 400, 'a foreign session cannot own a sandbox');
  const depB = await post('/v1/departments', { sessionId: s.id, name: 'x', domain: 'x' }, tokenB);
  assert.is(depB.status, 400);
  assert.is((await get<Session>(`/v1/sessions/${s.id}`)).body.data.name, 'Private', 'nothing changed');
});

test('DELETE of a session removes its containers (engine listing), departments and context', async () => {
  const s = await session({ name: 'Doomed' });
  const a = await post<Sandbox>('/v1/sandboxes', { image: BUSYBOX, sessionId: s.id });
  const b = await post<Sandbox>('/v1/sandboxes', { image: BUSYBOX, sessionId: s.id });
  const dep = await post<Department>('/v1/departments', { sessionId: s.id, name: 'D', domain: 'd' });
  const ctx = await post<{ id: string }>('/v1/context', { sessionId: s.id, name: 'C', items: [{ type: 'text', content: 'x' }] });
  const ids = [a.body.data.id, b.body.data.id];
  const before = await api.rt.engine.listContainers({ [LABEL.runtime]: api.rt.config.runtimeName });
  assert.ok(ids.every((id) => before.some((c) => c.labels[LABEL.sandbox] === id)));

  const del = await call(api.url, 'DELETE', `/v1/sessions/${s.id}`, as());
  assert.is(del.status, 200, del.text);
  const after = await api.rt.engine.listContainers({ [LABEL.runtime]: api.rt.config.runtimeName });
  assert.not.ok(
    after.some((c) => ids.includes(c.labels[LABEL.sandbox] ?? '')),
    'no container of the session is left',
  );
  for (const id of ids) assert.is((await get(`/v1/sandboxes/${id}`)).status, 404);
  assert.is((await get(`/v1/departments/${dep.body.data.id}`)).status, 404);
  assert.is((await get(`/v1/context/${ctx.body.data.id}`)).status, 404);
  const left = api.rt.db.sql.prepare('SELECT count(*) AS n FROM context_items WHERE context_id = ?').get(ctx.body.data.id) as { n: number };
  assert.is(left.n, 0, 'the items are deleted, not hidden');
});

test('a session whose timeout passes expires: its sandboxes stop and a session_update event goes out', async () => {
  const s = await session({ name: 'Short', config: { timeout: 1500 } });
  const sb = await post<Sandbox>('/v1/sandboxes', { image: BUSYBOX, sessionId: s.id });
  assert.is(sb.status, 201, sb.text);
  await eventually(async () => (await get<Session>(`/v1/sessions/${s.id}`)).body.data.status === 'expired', 10_000);
  const after = await eventually(async () => {
    const r = await get<Sandbox>(`/v1/sandboxes/${sb.body.data.id}`);
    return r.body.data.status === 'stopped' ? r.body.data : null;
  }, 10_000);
  assert.is(after.status, 'stopped');
  const ev = await get<{ items: { type: string; sessionId: string; details: { status: string } }[] }>(
    `/v1/security/events?type=session_ended&limit=50`,
  );
  assert.ok(ev.body.data.items.some((e) => e.sessionId === s.id && e.details.status === 'expired'));
  const late = await post('/v1/sandboxes', { image: BUSYBOX, sessionId: s.id });
  assert.is(late.status, 409, 'an expired session takes no new sandbox');
});

test.run();
