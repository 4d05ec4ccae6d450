/**
 * Broken object-level authorization (OWASP API1): another workspace's sandbox or network id
 * answers exactly like an id that does not exist, on every route, and nothing happens to it.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ADMIN_PASSWORD, call, startApi, type Res, type TestApi } from '../../helpers/api.ts';
import { BUSYBOX } from '../../helpers/runtime.ts';

const test = suite('api-owasp-tenancy');
let api: TestApi;
/** Developer in workspace `tenant-b`. */
let devToken = '';
/** The bootstrap admin, acting in `tenant-b` through X-Director-Workspace. */
const asAdminInB = () => ({ token: api.adminToken, headers: { 'x-director-workspace': 'tenant-b' } });
/** Owned by the default workspace. */
let sandboxA = '';
let networkA = '';

const MISSING_SBX = 'sbx_AAAAAAAAAAAAAAAA';
const MISSING_NET = 'net_AAAAAAAAAAAAAAAA';

test.before(async () => {
  api = await startApi({ networking: 'on', rateLimitSandbox: 1000, rateLimitAuth: 1000 });
  const ws = await call(api.url, 'POST', '/v1/workspaces', { token: api.adminToken, body: { name: 'tenant-b' } });
  assert.is(ws.status, 201, ws.text);
  const user = await call(api.url, 'POST', '/v1/users', {
    ...asAdminInB(),
    body: { username: 'dev-b', password: 'dev-b-password-123', role: 'developer' },
  });
  assert.is(user.status, 201, user.text);
  const login = await call<{ data: { token: string; workspace: string } }>(api.url, 'POST', '/v1/auth/login', {
    body: { username: 'dev-b', password: 'dev-b-password-123' },
  });
  assert.is(login.status, 200, login.text);
  assert.is(login.body.data.workspace, (ws.body.data as { id: string }).id);
  devToken = login.body.data.token;

  const sb = await call<{ data: { id: string } }>(api.url, 'POST', '/v1/sandboxes', {
    token: api.adminToken,
    body: { image: BUSYBOX, name: 'tenant-a-secret' },
  });
  assert.is(sb.status, 201, sb.text);
  sandboxA = sb.body.data.id;
  const net = await call<{ data: { id: string } }>(api.url, 'POST', '/v1/networks', {
    token: api.adminToken,
    body: { name: 'tenant-a-net', enableDNS: false },
  });
  assert.is(net.status, 201, net.text);
  networkA = net.body.data.id;
});
test.after(async () => {
  await api?.close();
});

/**
 * `foreign` (another workspace's id) must be indistinguishable from `missing` (no such id):
 * same status, code, message and details, once each id is replaced by a placeholder.
 */
function assertLikeMissing(foreign: Res, missing: Res, foreignId: string, missingId: string, what: string) {
  const norm = (r: Res, id: string) =>
    JSON.stringify({ status: r.status, error: r.body.error, keys: Object.keys(r.body) }).replaceAll(id, '<id>');
  assert.is(foreign.status, 404, `${what}: ${foreign.text}`);
  assert.is(foreign.body.error?.code, 'NOT_FOUND', what);
  assert.is(norm(foreign, foreignId), norm(missing, missingId), `${what}: a foreign id answers differently from a missing one`);
  assert.not.ok(foreign.text.includes('tenant-a'), `${what}: the foreign resource leaked`);
}

interface Probe {
  name: string;
  method: string;
  path: (id: string) => string;
  body?: unknown;
  headers?: Record<string, string>;
  raw?: string;
}

const SANDBOX_PROBES: Probe[] = [
  { name: 'GET', method: 'GET', path: (id) => `/v1/sandboxes/${id}` },
  { name: 'metrics', method: 'GET', path: (id) => `/v1/sandboxes/${id}/metrics` },
  { name: 'execute', method: 'POST', path: (id) => `/v1/sandboxes/${id}/execute`, body: { command: ['touch', '/tmp/pwned'] } },
  {
    name: 'execute (SSE)',
    method: 'POST',
    path: (id) => `/v1/sandboxes/${id}/execute`,
    body: { command: ['touch', '/tmp/pwned'] },
    headers: { accept: 'text/event-stream' },
  },
  { name: 'file download', method: 'GET', path: (id) => `/v1/sandboxes/${id}/files?path=/etc/hostname` },
  {
    name: 'file upload',
    method: 'PUT',
    path: (id) => `/v1/sandboxes/${id}/files?path=/tmp/pwned`,
    raw: 'x',
    headers: { 'content-type': 'application/octet-stream' },
  },
  { name: 'stop', method: 'POST', path: (id) => `/v1/sandboxes/${id}/stop` },
  { name: 'delete', method: 'DELETE', path: (id) => `/v1/sandboxes/${id}` },
];

async function probe(p: Probe, id: string, auth: { token: string; headers?: Record<string, string> }): Promise<Res> {
  return call(api.url, p.method, p.path(id), {
    token: auth.token,
    headers: { ...(auth.headers ?? {}), ...(p.headers ?? {}) },
    ...(p.raw !== undefined ? { raw: p.raw } : p.body !== undefined ? { body: p.body } : {}),
  });
}

test("another workspace's sandbox id answers 404 exactly like a missing id on every sandbox route", async () => {
  for (const p of SANDBOX_PROBES) {
    const foreign = await probe(p, sandboxA, { token: devToken });
    const missing = await probe(p, MISSING_SBX, { token: devToken });
    assertLikeMissing(foreign, missing, sandboxA, MISSING_SBX, `developer: ${p.name}`);
    // An admin of the other workspace gets no further either.
    const admin = await probe(p, sandboxA, asAdminInB());
    assertLikeMissing(admin, missing, sandboxA, MISSING_SBX, `admin of tenant-b: ${p.name}`);
  }
});

test('the foreign sandbox was not touched: still running, nothing executed in it, not listed to the other tenant', async () => {
  const got = await call<{ data: { status: string } }>(api.url, 'GET', `/v1/sandboxes/${sandboxA}`, { token: api.adminToken });
  assert.is(got.status, 200, got.text);
  assert.is(got.body.data.status, 'running');
  const ls = await call<{ data: { exitCode: number } }>(api.url, 'POST', `/v1/sandboxes/${sandboxA}/execute`, {
    token: api.adminToken,
    body: { command: ['test', '-e', '/tmp/pwned'] },
  });
  assert.is(ls.status, 200, ls.text);
  assert.is(ls.body.data.exitCode, 1, 'a command or upload from the other workspace ran in the sandbox');
  const list = await call<{ data: { items: Array<{ id: string }>; total: number } }>(api.url, 'GET', '/v1/sandboxes', { token: devToken });
  assert.is(list.status, 200, list.text);
  assert.is(list.body.data.total, 0);
  const named = await call<{ data: { total: number } }>(api.url, 'GET', '/v1/sandboxes?label=a%3Db', { token: devToken });
  assert.is(named.body.data.total, 0);
});

test("the other tenant's own sandbox is just as invisible from the first workspace", async () => {
  const own = await call<{ data: { id: string } }>(api.url, 'POST', '/v1/sandboxes', { token: devToken, body: { image: BUSYBOX } });
  assert.is(own.status, 201, own.text);
  const id = own.body.data.id;
  assert.is((await call(api.url, 'GET', `/v1/sandboxes/${id}`, { token: devToken })).status, 200);
  const foreign = await call(api.url, 'GET', `/v1/sandboxes/${id}`, { token: api.adminToken });
  const missing = await call(api.url, 'GET', `/v1/sandboxes/${MISSING_SBX}`, { token: api.adminToken });
  assertLikeMissing(foreign, missing, id, MISSING_SBX, 'reverse GET');
  assert.is((await call(api.url, 'DELETE', `/v1/sandboxes/${id}`, { token: devToken })).status, 200);
});

const NETWORK_PROBES: Probe[] = [
  { name: 'GET', method: 'GET', path: (id) => `/v1/networks/${id}` },
  { name: 'proposal', method: 'GET', path: (id) => `/v1/networks/${id}/proposal` },
  {
    name: 'apply policy',
    method: 'POST',
    path: (id) => `/v1/networks/${id}/policies`,
    body: { name: 'open', outbound: [{ action: 'allow', protocol: 'all' }] },
  },
  { name: 'isolate', method: 'POST', path: (id) => `/v1/networks/${id}/isolate` },
  { name: 'release', method: 'POST', path: (id) => `/v1/networks/${id}/release` },
  {
    name: 'allow-access',
    method: 'POST',
    path: (id) => `/v1/networks/${id}/allow-access`,
    body: { destinations: [{ host: '10.0.0.0/8' }] },
  },
  { name: 'delete', method: 'DELETE', path: (id) => `/v1/networks/${id}?force=true` },
];

test("another workspace's network id answers 404 exactly like a missing id on every network route", async () => {
  for (const p of NETWORK_PROBES) {
    const foreign = await probe(p, networkA, asAdminInB());
    const missing = await probe(p, MISSING_NET, asAdminInB());
    assertLikeMissing(foreign, missing, networkA, MISSING_NET, `network ${p.name}`);
  }
  const got = await call<{ data: { policy: unknown; isolated: boolean; status: string } }>(api.url, 'GET', `/v1/networks/${networkA}`, {
    token: api.adminToken,
  });
  assert.is(got.status, 200, got.text);
  assert.equal(
    [got.body.data.policy, got.body.data.isolated, got.body.data.status],
    [null, false, 'ready'],
    'the foreign network was changed',
  );
});

test("a sandbox cannot be attached to another workspace's network", async () => {
  const res = await call(api.url, 'POST', '/v1/sandboxes', {
    token: devToken,
    body: { image: BUSYBOX, securityPolicy: { allowNetwork: true }, networkMode: networkA },
  });
  assert.is(res.status, 404, res.text);
  assert.is(res.body.error?.code, 'NOT_FOUND');
});

test('a user cannot act in a workspace they do not belong to', async () => {
  const res = await call(api.url, 'GET', '/v1/sandboxes', { token: devToken, headers: { 'x-director-workspace': 'default' } });
  assert.is(res.status, 403, res.text);
  assert.is(res.body.error?.code, 'AUTHORIZATION_ERROR');
  const login = await call(api.url, 'POST', '/v1/auth/login', {
    body: { username: 'dev-b', password: 'dev-b-password-123', workspace: 'default' },
  });
  assert.is(login.status, 403, login.text);
  // The admin belongs to both; its login still answers in the workspace asked for.
  const admin = await call<{ data: { workspace: string } }>(api.url, 'POST', '/v1/auth/login', {
    body: { username: 'admin', password: ADMIN_PASSWORD, workspace: 'tenant-b' },
  });
  assert.is(admin.status, 200, admin.text);
});

test('an Idempotency-Key used in one workspace never replays its response into another', async () => {
  const body = { image: BUSYBOX, name: 'same-key' };
  const a = await call<{ data: { id: string } }>(api.url, 'POST', '/v1/sandboxes', {
    token: api.adminToken,
    body,
    headers: { 'idempotency-key': 'shared-key-1' },
  });
  assert.is(a.status, 201, a.text);
  const b = await call<{ data: { id: string } }>(api.url, 'POST', '/v1/sandboxes', {
    token: devToken,
    body,
    headers: { 'idempotency-key': 'shared-key-1' },
  });
  assert.is(b.status, 201, b.text);
  assert.is(b.headers.get('idempotent-replayed'), null, "replayed another workspace's response");
  assert.is.not(b.body.data.id, a.body.data.id);
  assert.is((await call(api.url, 'GET', `/v1/sandboxes/${b.body.data.id}`, { token: devToken })).status, 200);
});

test.run();
