/** The audit log over real HTTP: what gets recorded, what never does, who may read it, and tamper detection. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { AuditEntry, VerifyResult } from '../../../api/audit/log.ts';
import { ADMIN_PASSWORD, call, startApi, type TestApi } from '../../helpers/api.ts';

const test = suite('api-audit');
let api: TestApi;

type Page = { data: { items: AuditEntry[]; nextCursor: number | null } };

test.before(async () => {
  api = await startApi();
});
test.after(async () => {
  await api?.close();
});

const entries = (t: string, query = '') => call<Page>(api.url, 'GET', `/v1/audit-logs${query}`, { token: t });
const tableText = () => JSON.stringify(api.rt.db.sql.prepare('SELECT * FROM audit_log').all());

async function byRequestId(requestId: string): Promise<AuditEntry> {
  // The entry is written in onResponse, which may finish just after the client has the body.
  for (let i = 0; i < 50; i++) {
    const row = (await entries(api.adminToken, `?limit=500`)).body.data.items.find((e) => e.requestId === requestId);
    if (row) return row;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no audit entry for ${requestId}`);
}

async function login(username: string, password: string): Promise<string> {
  const res = await call<{ data: { token: string } }>(api.url, 'POST', '/v1/auth/login', { body: { username, password } });
  assert.is(res.status, 200, res.text);
  return res.body.data.token;
}

test('creating a sandbox is recorded with actor, route template, target and the request id', async () => {
  const created = await call<{ data: { id: string } }>(api.url, 'POST', '/v1/sandboxes?note=x', {
    token: api.adminToken,
    headers: { 'user-agent': `audit-test/${'x'.repeat(500)}` },
    body: { image: 'director/busybox:latest', environment: { API_KEY: 'env-secret-value-123' } },
  });
  assert.is(created.status, 201, created.text);
  const id = created.body.data.id;
  const e = await byRequestId(String(created.body.metadata?.requestId));
  assert.match(e.actor ?? '', /^usr_/);
  assert.is(e.username, 'admin');
  assert.match(e.workspace ?? '', /^wsp_/);
  assert.is(e.action, 'POST /v1/sandboxes');
  assert.is(e.target, id);
  assert.match(id, /^sbx_/);
  assert.is(e.outcome, 'success');
  assert.is(e.status, 201);
  assert.is(e.source, '127.0.0.1');
  assert.ok((e.userAgent ?? '').length <= 200 && e.userAgent?.startsWith('audit-test/'));
  assert.match(e.id, /^aud_/);

  const del = await call(api.url, 'DELETE', `/v1/sandboxes/${id}`, { token: api.adminToken });
  const d = await byRequestId(String(del.body.metadata?.requestId));
  assert.is(d.action, 'DELETE /v1/sandboxes/:id');
  assert.is(d.target, id);
  assert.not.match(tableText(), 'env-secret-value-123');
});

test('a failed mutation is recorded as an error with its status', async () => {
  const res = await call(api.url, 'POST', '/v1/sandboxes/sbx_AAAAAAAAAAAAAAAA/stop', { token: api.adminToken });
  assert.is(res.status, 404);
  const e = await byRequestId(String(res.body.metadata?.requestId));
  assert.is(e.outcome, 'error');
  assert.is(e.status, 404);
  assert.is(e.action, 'POST /v1/sandboxes/:id/stop');
  assert.is(e.target, 'sbx_AAAAAAAAAAAAAAAA');
});

test('a bad token is recorded as denied with status 401 and the token is not stored', async () => {
  const token = 'not-a-real-token-SECRET-TOKEN-9f8e7d';
  const res = await call(api.url, 'GET', '/v1/sandboxes', { token });
  assert.is(res.status, 401);
  const e = await byRequestId(String(res.body.metadata?.requestId));
  assert.is(e.outcome, 'denied');
  assert.is(e.status, 401);
  assert.is(e.actor, null);
  assert.is(e.workspace, null);
  assert.is(e.action, 'GET /v1/sandboxes');
  assert.not.match(tableText(), 'SECRET-TOKEN-9f8e7d');
});

test('a failed login is recorded with the username and never the password', async () => {
  const password = 'wrong-password-Zq81-do-not-store';
  const res = await call(api.url, 'POST', '/v1/auth/login', { body: { username: 'admin', password } });
  assert.is(res.status, 401);
  const e = await byRequestId(String(res.body.metadata?.requestId));
  assert.is(e.action, 'POST /v1/auth/login');
  assert.is(e.outcome, 'denied');
  assert.is(e.username, 'admin');
  assert.is(e.actor, null);
  const text = tableText();
  assert.not.match(text, password);
  assert.not.match(text, ADMIN_PASSWORD);
  assert.not.match(text, api.adminToken);
  assert.not.match(text, api.adminToken.split('.')[2]!);
});

test('a developer may not read the audit log; the refusal is itself recorded', async () => {
  const made = await call(api.url, 'POST', '/v1/users', {
    token: api.adminToken,
    body: { username: 'dev1', password: 'dev-password-long-enough', role: 'developer' },
  });
  assert.is(made.status, 201, made.text);
  const dev = await login('dev1', 'dev-password-long-enough');
  const res = await entries(dev);
  assert.is(res.status, 403, res.text);
  const e = await byRequestId(String(res.body.metadata?.requestId));
  assert.is(e.outcome, 'denied');
  assert.is(e.username, 'dev1');
  assert.not.match(tableText(), 'dev-password-long-enough');
});

test('an auditor reads its workspace but not anonymous failures; an admin sees both', async () => {
  await call(api.url, 'POST', '/v1/users', {
    token: api.adminToken,
    body: { username: 'aud1', password: 'auditor-password-long', role: 'auditor' },
  });
  const auditor = await login('aud1', 'auditor-password-long');
  const mine = await entries(auditor, '?limit=500');
  assert.is(mine.status, 200, mine.text);
  assert.ok(mine.body.data.items.length > 0);
  assert.ok(mine.body.data.items.every((e) => e.workspace !== null));
  const all = await entries(api.adminToken, '?limit=500&outcome=denied');
  assert.ok(all.body.data.items.some((e) => e.workspace === null));
});

test('an admin pages through the log with a cursor, without repeats or misses', async () => {
  let last = '';
  for (let i = 0; i < 5; i++)
    last = String(
      (await call(api.url, 'POST', '/v1/sandboxes/sbx_BBBBBBBBBBBBBBBB/stop', { token: api.adminToken })).body.metadata?.requestId,
    );
  await byRequestId(last);
  const everything = (await entries(api.adminToken, '?limit=500')).body.data;
  assert.is(everything.nextCursor, null);
  const seen: number[] = [];
  let query = '?limit=3';
  for (let pages = 0; pages < 100; pages++) {
    const res = await entries(api.adminToken, query);
    assert.is(res.status, 200, res.text);
    seen.push(...res.body.data.items.map((e) => e.seq));
    if (res.body.data.nextCursor === null) break;
    query = `?limit=3&after=${res.body.data.nextCursor}`;
  }
  // Requests made while paging are not audited (reads), so both walks see the same entries.
  assert.equal(
    seen,
    everything.items.map((e) => e.seq),
  );
  assert.is(new Set(seen).size, seen.length);
  const filtered = await entries(
    api.adminToken,
    `?action=${encodeURIComponent('POST /v1/sandboxes/:id/stop')}&target=sbx_BBBBBBBBBBBBBBBB`,
  );
  assert.is(filtered.body.data.items.length, 5);
});

test('verify reports ok, then the exact row edited behind its back', async () => {
  const ok = await call<{ data: VerifyResult }>(api.url, 'GET', '/v1/audit-logs/verify', { token: api.adminToken });
  assert.is(ok.status, 200, ok.text);
  assert.is(ok.body.data.ok, true, ok.text);
  const row = api.rt.db.sql.prepare("SELECT seq, id FROM audit_log WHERE outcome = 'denied' ORDER BY seq LIMIT 1").get() as {
    seq: number;
    id: string;
  };
  api.rt.db.sql.prepare('UPDATE audit_log SET outcome = ? WHERE seq = ?').run('success', row.seq);
  const bad = await call<{ data: VerifyResult }>(api.url, 'GET', '/v1/audit-logs/verify', { token: api.adminToken });
  assert.equal(bad.body.data, { ok: false, brokenAt: { seq: row.seq, id: row.id }, reason: 'hash_mismatch' });
});

test.run();
