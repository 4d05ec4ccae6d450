/**
 * Webhooks over real HTTP: a receiver on loopback (opened with the operator override), a sandbox
 * created through the API, the delivery verified with the Director Protocol's own verifyWebhook; retries with
 * backoff; the SSRF guard; tenancy; the secret never echoed.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { call as rawCall, startApi, type Res, type TestApi } from '../../helpers/api.ts';
import { eventually } from '../../helpers/runtime.ts';
import { verifyWebhook } from '../../unit/webhooks/seed.ts';

const test = suite('api-webhooks');
const SECRET = 'integration-webhook-secret-1';
const FLAKY_SECRET = 'integration-webhook-secret-2';
const PASSWORD = 'other-user-password-1';

interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  atMs: number;
}

let api: TestApi;
let closedApi: TestApi;
let receiver: Server;
let receiverUrl = '';
const received: Received[] = [];
const hits = new Map<string, number>();
const responses: string[] = [];

/** Every response passes through here so the secret check covers them all. */
async function call<T = unknown>(base: string, method: string, path: string, opts: Parameters<typeof rawCall>[3] = {}): Promise<Res<T>> {
  const res = await rawCall<T>(base, method, path, opts);
  responses.push(res.text);
  return res;
}

test.before(async () => {
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const path = req.url ?? '';
      received.push({ path, headers: req.headers, body, atMs: Date.now() });
      const n = (hits.get(path) ?? 0) + 1;
      hits.set(path, n);
      res.writeHead(path === '/flaky' && n <= 2 ? 500 : 200).end('ok');
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  closedApi = await startApi();
  // The operator override (DIRECTOR_WEBHOOK_ALLOWED_CIDRS) that opens the loopback receiver.
  api = await startApi({ webhookAllowedCidrs: '127.0.0.0/8' });
});

test.after(async () => {
  await api?.close();
  await closedApi?.close();
  await new Promise((r) => receiver?.close(r));
});

interface Webhook {
  id: string;
  url: string;
  events: string[];
  secretSet: boolean;
}
interface Delivery {
  id: string;
  event: string;
  state: string;
  attempts: number;
  statusCode: number | null;
  attemptLog: { attempt: number; at: string; statusCode: number | null; nextAttemptAt: string | null }[];
}

const createHook = (a: TestApi, body: Record<string, unknown>, token = a.adminToken) =>
  call<{ data: Webhook }>(a.url, 'POST', '/v1/webhooks', { token, body });
const deliveries = async (id: string) =>
  (await call<{ data: { items: Delivery[] } }>(api.url, 'GET', `/v1/webhooks/${id}/deliveries`, { token: api.adminToken })).body.data.items;
const createSandbox = async () => {
  const res = await call<{ data: { id: string } }>(api.url, 'POST', '/v1/sandboxes', {
    token: api.adminToken,
    body: { image: 'director/busybox:latest' },
  });
  assert.is(res.status, 201, res.text);
  return res.body.data.id;
};

test("a created sandbox is delivered, signed so that the Director Protocol's verifyWebhook accepts it", async () => {
  const created = await createHook(api, { url: `${receiverUrl}/ok`, events: ['sandbox.created'], secret: SECRET });
  assert.is(created.status, 201, created.text);
  const hook = created.body.data;
  assert.match(hook.id, /^whk_/);
  assert.is(hook.secretSet, true);
  assert.equal(hook.events, ['sandbox.created']);
  assert.not.ok('secret' in hook);

  const before = Math.floor(Date.now() / 1000);
  const sandboxId = await createSandbox();
  const got = await eventually(() => received.find((r) => r.path === '/ok' && r.body.includes(sandboxId)));
  const payload = JSON.parse(got.body) as { event: string; data: { sandboxId: string; status: string }; timestamp: string };
  assert.ok(
    verifyWebhook(payload, String(got.headers['x-director-signature']), SECRET),
    'the Director Protocol verifier refused the signature',
  );
  assert.is(JSON.stringify(payload), got.body, 'the bytes sent are the bytes the Director Protocol verifier signs');
  assert.is(payload.event, 'sandbox.created');
  assert.is(payload.data.sandboxId, sandboxId);
  assert.is(payload.data.status, 'running');
  assert.ok(!Number.isNaN(Date.parse(payload.timestamp)));
  assert.is(got.headers['content-type'], 'application/json');
  assert.is(got.headers['user-agent'], 'Director-Webhooks/1');
  assert.is(got.headers['x-director-event'], 'sandbox.created');
  assert.match(String(got.headers['x-director-delivery']), /^dlv_[A-Za-z0-9_-]{16}$/);
  const ts = Number(got.headers['x-director-timestamp']);
  assert.ok(ts >= before - 1 && ts <= Math.floor(Date.now() / 1000) + 1, `timestamp ${ts}`);

  const [log] = await eventually(async () =>
    (await deliveries(hook.id)).some((d) => d.state === 'delivered') ? deliveries(hook.id) : null,
  );
  assert.is(log!.id, got.headers['x-director-delivery']);
  assert.is(log!.event, 'sandbox.created');
  assert.is(log!.attempts, 1);
  assert.is(log!.statusCode, 200);
});

test('session.created and session.ended are delivered with the session in data, signed', async () => {
  const created = await createHook(api, { url: `${receiverUrl}/sessions`, events: ['session.created', 'session.ended'], secret: SECRET });
  assert.is(created.status, 201, created.text);
  const s = await call<{ data: { id: string } }>(api.url, 'POST', '/v1/sessions', {
    token: api.adminToken,
    body: { type: 'director', name: 'Hooked' },
  });
  assert.is(s.status, 201, s.text);
  const id = s.body.data.id;
  const del = await call(api.url, 'DELETE', `/v1/sessions/${id}`, { token: api.adminToken });
  assert.is(del.status, 200);
  const got = await eventually(() => {
    const mine = received.filter((r) => r.path === '/sessions' && r.body.includes(id));
    return mine.length >= 2 ? mine : null;
  });
  const payloads = got.map((r) => JSON.parse(r.body) as { event: string; data: { sessionId: string; status: string } });
  assert.equal(payloads.map((p) => [p.event, p.data.sessionId, p.data.status]).sort(), [
    ['session.created', id, 'active'],
    ['session.ended', id, 'terminated'],
  ]);
  for (const r of got) assert.ok(verifyWebhook(JSON.parse(r.body), String(r.headers['x-director-signature']), SECRET));
});

test('a receiver that fails twice gets the delivery on the third attempt, after backoff', async () => {
  const created = await createHook(api, { url: `${receiverUrl}/flaky`, events: ['sandbox.created'], secret: FLAKY_SECRET });
  assert.is(created.status, 201, created.text);
  const id = created.body.data.id;
  const sandboxId = await createSandbox();
  const [d] = await eventually(
    async () => {
      const items = await deliveries(id);
      return items[0]?.state === 'delivered' ? items : null;
    },
    20_000,
    200,
  );
  assert.is(d!.attempts, 3);
  assert.equal(
    d!.attemptLog.map((a) => [a.attempt, a.statusCode]),
    [
      [1, 500],
      [2, 500],
      [3, 200],
    ],
  );
  const at = d!.attemptLog.map((a) => Date.parse(a.at));
  assert.ok(at[1]! - at[0]! >= 1000, `first retry after ${at[1]! - at[0]!} ms`);
  assert.ok(at[2]! - at[1]! >= 2000, `second retry after ${at[2]! - at[1]!} ms`);
  const firstRetryDue = Date.parse(d!.attemptLog[0]!.nextAttemptAt!);
  assert.ok(firstRetryDue >= at[0]! + 1000 && firstRetryDue <= at[1]!, 'the log shows when the retry was due');
  assert.is(d!.attemptLog[2]!.nextAttemptAt, null);
  const tries = received.filter((r) => r.path === '/flaky');
  assert.is(tries.length, 3);
  assert.is(new Set(tries.map((r) => r.headers['x-director-delivery'])).size, 1, 'every retry carries the same delivery id');
  for (const t of tries) {
    assert.ok(t.body.includes(sandboxId));
    assert.ok(verifyWebhook(JSON.parse(t.body), String(t.headers['x-director-signature']), FLAKY_SECRET));
  }
});

test('without the operator override, loopback targets are refused, naming url', async () => {
  const res = await createHook(closedApi, { url: `${receiverUrl}/ok`, events: ['sandbox.created'], secret: SECRET });
  assert.is(res.status, 400, res.text);
  assert.is(res.body.error?.code, 'VALIDATION_ERROR');
  assert.is(res.body.error?.details.field, 'url');
  assert.match(String(res.body.error?.details.issue), /loopback/);
});

test('metadata, private and other forbidden targets are refused even with loopback opened', async () => {
  for (const [url, why] of [
    ['http://169.254.169.254/latest/meta-data/', /metadata/],
    ['http://10.0.0.1/hook', /private/],
    ['http://[::ffff:10.0.0.1]/', /private/],
    ['http://[::1]/', /loopback/],
    ['ftp://203.0.113.5/', /scheme/],
    ['http://user:pw@203.0.113.5/', /credentials/],
  ] as const) {
    for (const a of [api, closedApi]) {
      const res = await createHook(a, { url, events: ['sandbox.created'], secret: SECRET });
      assert.is(res.status, 400, `${url}: ${res.text}`);
      assert.is(res.body.error?.details.field, 'url');
      assert.match(String(res.body.error?.details.issue), why);
    }
  }
});

test('bad event names, a short secret and unknown fields are refused, naming the field', async () => {
  const bad = await createHook(api, { url: 'https://203.0.113.5/hook', events: ['sandbox.created', 'sandbox.craeted'], secret: SECRET });
  assert.is(bad.status, 400);
  assert.is(bad.body.error?.details.field, 'events[1]');
  const twice = await createHook(api, { url: 'https://203.0.113.5/hook', events: ['*', '*'], secret: SECRET });
  assert.is(twice.body.error?.details.field, 'events[1]');
  const short = await createHook(api, { url: 'https://203.0.113.5/hook', events: ['*'], secret: 'short' });
  assert.is(short.status, 400);
  assert.is(short.body.error?.details.field, 'secret');
  const extra = await createHook(api, { url: 'https://203.0.113.5/hook', events: ['*'], secret: SECRET, active: true });
  assert.is(extra.body.error?.details.field, 'active');
  const ok = await createHook(api, {
    url: 'https://203.0.113.5/hook',
    events: ['security.egress_denied', 'security.alert'],
    secret: SECRET,
  });
  assert.is(ok.status, 201, ok.text);
});

test('another workspace can neither see nor delete a webhook', async () => {
  const mine = (await createHook(api, { url: `${receiverUrl}/mine`, events: ['*'], secret: SECRET })).body.data;
  api.auth.createWorkspace('other');
  await api.auth.createUser({ username: 'other-admin', password: PASSWORD, workspace: 'other', role: 'admin' });
  const login = await call<{ data: { token: string } }>(api.url, 'POST', '/v1/auth/login', {
    body: { username: 'other-admin', password: PASSWORD, workspace: 'other' },
  });
  assert.is(login.status, 200, login.text);
  const other = login.body.data.token;
  for (const [method, path] of [
    ['GET', `/v1/webhooks/${mine.id}`],
    ['GET', `/v1/webhooks/${mine.id}/deliveries`],
    ['DELETE', `/v1/webhooks/${mine.id}`],
  ] as const) {
    const res = await call(api.url, method, path, { token: other });
    assert.is(res.status, 404, `${method} ${path}: ${res.text}`);
    assert.is(res.body.error?.code, 'NOT_FOUND');
  }
  const list = await call<{ data: { items: Webhook[]; total: number } }>(api.url, 'GET', '/v1/webhooks', { token: other });
  assert.is(list.body.data.total, 0);
  assert.is((await call(api.url, 'GET', `/v1/webhooks/${mine.id}`, { token: api.adminToken })).status, 200);
});

test('a role without webhooks:write is refused', async () => {
  await api.auth.createUser({ username: 'dev', password: PASSWORD, workspace: 'default', role: 'developer' });
  const login = await call<{ data: { token: string } }>(api.url, 'POST', '/v1/auth/login', {
    body: { username: 'dev', password: PASSWORD },
  });
  const res = await createHook(api, { url: 'https://203.0.113.5/hook', events: ['*'], secret: SECRET }, login.body.data.token);
  assert.is(res.status, 403, res.text);
  assert.is((await call(api.url, 'GET', '/v1/webhooks', { token: login.body.data.token })).status, 403);
});

test('list, get and delete; a deleted webhook is gone', async () => {
  const list = await call<{ data: { items: Webhook[]; total: number } }>(api.url, 'GET', '/v1/webhooks?limit=100', {
    token: api.adminToken,
  });
  assert.is(list.status, 200);
  assert.ok(list.body.data.total >= 3);
  assert.ok(list.body.data.items.every((w) => w.secretSet));
  const id = list.body.data.items[0]!.id;
  assert.is((await call(api.url, 'DELETE', `/v1/webhooks/${id}`, { token: api.adminToken })).status, 200);
  assert.is((await call(api.url, 'GET', `/v1/webhooks/${id}`, { token: api.adminToken })).status, 404);
  assert.is((await call(api.url, 'DELETE', `/v1/webhooks/${id}`, { token: api.adminToken })).status, 404);
});

test('the secret appears in no response', () => {
  assert.ok(responses.length > 20);
  for (const text of responses) {
    assert.not.ok(text.includes(SECRET) || text.includes(FLAKY_SECRET), `a response echoed a secret: ${text.slice(0, 200)}`);
  }
});

test.run();
