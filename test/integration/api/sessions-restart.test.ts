/**
 * A restart keeps every orchestration record, and finishes the end of a session that a crash
 * interrupted: its sandboxes are stopped (expired) or removed (terminated) at the next start.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { call, startApi, type TestApi } from '../../helpers/api.ts';
import { BUSYBOX } from '../../helpers/runtime.ts';

const test = suite('api-sessions-restart');
let first: TestApi | null = null;
let second: TestApi | null = null;

test.after(async () => {
  await first?.stop();
  await second?.close();
});

test('records survive a restart; sandboxes of sessions that ended before the crash finished are reconciled away', async () => {
  first = await startApi({ rateLimitSandbox: 1000, rateLimitSession: 10_000 });
  const api = first;
  const post = <T>(path: string, body: unknown) => call<{ data: T }>(api.url, 'POST', path, { token: api.adminToken, body });
  const kept = await post<{ id: string }>('/v1/sessions', { name: 'Kept', config: { timeout: 3_600_000 } });
  const dep = await post<{ id: string }>('/v1/departments', { sessionId: kept.body.data.id, name: 'D', domain: 'd' });
  const ctx = await post<{ id: string }>('/v1/context', {
    sessionId: kept.body.data.id,
    name: 'C',
    items: [{ type: 'text', content: 'remember me' }],
  });
  const keptBox = await post<{ id: string }>('/v1/sandboxes', { image: BUSYBOX, sessionId: kept.body.data.id });
  const expired = await post<{ id: string }>('/v1/sessions', { name: 'Expired' });
  const expiredBox = await post<{ id: string }>('/v1/sandboxes', { image: BUSYBOX, sessionId: expired.body.data.id });
  const terminated = await post<{ id: string }>('/v1/sessions', { name: 'Terminated' });
  const terminatedBox = await post<{ id: string }>('/v1/sandboxes', { image: BUSYBOX, sessionId: terminated.body.data.id });
  for (const r of [kept, dep, ctx, keptBox, expired, expiredBox, terminated, terminatedBox]) assert.is(r.status, 201, r.text);

  // A crash right after the end was stored, before its cleanup ran: the records say ended, the sandboxes still run.
  const now = Date.now();
  api.rt.db.sql
    .prepare("UPDATE sessions SET status = 'expired', ended_ms = ?, expires_ms = NULL WHERE id = ?")
    .run(now, expired.body.data.id);
  api.rt.db.sql
    .prepare("UPDATE sessions SET status = 'terminated', ended_ms = ?, deleted_ms = ?, expires_ms = NULL WHERE id = ?")
    .run(now, now, terminated.body.data.id);
  const { dataDir } = api.rt;
  const { runtimeName } = api.rt.config;
  const terminatedContainer = api.rt.sandboxes.deps.store.byId(terminatedBox.body.data.id)!.containerId!;
  await api.stop();
  first = null;

  second = await startApi({ dataDir, runtimeName, rateLimitSandbox: 1000, rateLimitSession: 10_000 });
  const b = second;
  const get = <T>(path: string) => call<{ data: T }>(b.url, 'GET', path, { token: b.adminToken });
  assert.is((await get<{ status: string }>(`/v1/sessions/${kept.body.data.id}`)).body.data.status, 'active');
  assert.is((await get<{ name: string }>(`/v1/departments/${dep.body.data.id}`)).body.data.name, 'D');
  const items = await get<{ items: { content: string }[] }>(`/v1/context/${ctx.body.data.id}/items`);
  assert.equal(
    items.body.data.items.map((i) => i.content),
    ['remember me'],
  );
  assert.is((await get<{ status: string }>(`/v1/sandboxes/${keptBox.body.data.id}`)).body.data.status, 'running');
  assert.is((await get<{ status: string }>(`/v1/sandboxes/${expiredBox.body.data.id}`)).body.data.status, 'stopped');
  assert.is((await get(`/v1/sandboxes/${terminatedBox.body.data.id}`)).status, 404);
  assert.is(await b.rt.engine.inspectContainer(terminatedContainer), null, 'the terminated session’s container is gone from the engine');
  assert.is((await get(`/v1/sessions/${terminated.body.data.id}`)).status, 404);
});

test.run();
