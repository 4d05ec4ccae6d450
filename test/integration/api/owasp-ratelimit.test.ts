/**
 * Unrestricted resource consumption (OWASP API4): the Director Protocol's rate limits per principal and per
 * client address, with the four X-RateLimit headers on every response and a 429 in the
 * envelope (metadata.retryAfter, Retry-After) once a budget is spent.
 *
 * Windows are one minute, aligned to the epoch; each test starts early in a window so its
 * burst cannot straddle a reset.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ADMIN_PASSWORD, call, startApi, type Res, type TestApi } from '../../helpers/api.ts';
import { BUSYBOX, sleep } from '../../helpers/runtime.ts';

const test = suite('api-owasp-ratelimit');
let api: TestApi;
const SANDBOX_LIMIT = 3;
const AUTH_LIMIT = 2;
const REFRESH_LIMIT = 3;
const WINDOW_MS = 60_000;

test.before(async () => {
  api = await startApi({ rateLimitSandbox: SANDBOX_LIMIT, rateLimitAuth: AUTH_LIMIT, rateLimitRefresh: REFRESH_LIMIT });
});
test.after(async () => {
  await api?.close();
});

/** Waits for a new window when fewer than `needMs` are left in this one. */
async function roomInWindow(needMs = 15_000): Promise<void> {
  const left = WINDOW_MS - (Date.now() % WINDOW_MS);
  if (left < needMs) await sleep(left + 50);
}

function assertHeaders(res: Res, limit: number, what: string) {
  const h = (n: string) => res.headers.get(n);
  assert.is(h('x-ratelimit-limit'), String(limit), `${what}: X-RateLimit-Limit`);
  const remaining = Number(h('x-ratelimit-remaining'));
  assert.ok(
    Number.isInteger(remaining) && remaining >= 0 && remaining <= limit,
    `${what}: X-RateLimit-Remaining ${h('x-ratelimit-remaining')}`,
  );
  const reset = Number(h('x-ratelimit-reset'));
  assert.ok(
    Number.isInteger(reset) && reset * 1000 > Date.now() - 1000 && reset * 1000 <= Date.now() + WINDOW_MS + 1000,
    `${what}: X-RateLimit-Reset ${h('x-ratelimit-reset')}`,
  );
  assert.is(h('x-ratelimit-reset-time'), new Date(reset * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z'), `${what}: X-RateLimit-Reset-Time`);
}

function assert429(res: Res, what: string) {
  assert.is(res.status, 429, `${what}: ${res.text}`);
  assert.is(res.body.success, false);
  assert.is(res.body.error?.code, 'RATE_LIMIT_EXCEEDED', what);
  const retryAfter = res.body.metadata?.retryAfter;
  assert.ok(typeof retryAfter === 'number' && retryAfter >= 1 && retryAfter <= 60, `${what}: metadata.retryAfter ${String(retryAfter)}`);
  assert.is(res.headers.get('retry-after'), String(retryAfter), `${what}: Retry-After`);
  assert.is(res.headers.get('x-ratelimit-remaining'), '0', what);
}

test('every response carries the four X-RateLimit headers (2xx, 4xx, public, unmatched routes)', async () => {
  await roomInWindow();
  const t = api.adminToken;
  assertHeaders(await call(api.url, 'GET', '/v1/sandboxes', { token: t }), 1000, 'list');
  assertHeaders(await call(api.url, 'GET', '/v1/sandboxes/sbx_AAAAAAAAAAAAAAAA', { token: t }), 1000, '404');
  assertHeaders(await call(api.url, 'GET', '/v1/sandboxes?limit=0', { token: t }), 1000, '400');
  assertHeaders(await call(api.url, 'GET', '/health'), 1000, 'public');
  // Unmatched requests are limited by address too, so probing for routes is not free.
  assertHeaders(await call(api.url, 'GET', '/v1/nope'), 1000, 'unknown route');
  assertHeaders(await call(api.url, 'PATCH', '/v1/sandboxes'), SANDBOX_LIMIT, '405');
  // A refused credential counts against the per-address auth budget (the login test allows for it).
  assertHeaders(await call(api.url, 'GET', '/v1/sandboxes', { token: 'dk_wrong' }), AUTH_LIMIT, '401');
  assertHeaders(await call(api.url, 'GET', '/v1/auth/me', { token: t }), AUTH_LIMIT, 'auth class');
  const me = await call(api.url, 'GET', '/v1/auth/me', { token: t });
  // Remaining counts down within a window.
  assert.ok(Number(me.headers.get('x-ratelimit-remaining')) < AUTH_LIMIT, 'remaining did not count down');
});

test('the fourth sandbox operation in a window is refused with 429 and creates nothing', async () => {
  await roomInWindow();
  const t = api.adminToken;
  const created = await call<{ data: { id: string } }>(api.url, 'POST', '/v1/sandboxes', { token: t, body: { image: BUSYBOX } });
  assert.is(created.status, 201, created.text);
  assertHeaders(created, SANDBOX_LIMIT, 'create');
  const id = created.body.data.id;
  const first = await call(api.url, 'POST', `/v1/sandboxes/${id}/execute`, { token: t, body: { command: ['true'] } });
  assert.is(first.status, 200, first.text);
  // Status reads are general (cheap store reads), so polling does not burn the sandbox budget.
  for (let i = 0; i < 5; i++) assert.is((await call(api.url, 'GET', `/v1/sandboxes/${id}`, { token: t })).status, 200);
  const third = await call(api.url, 'POST', `/v1/sandboxes/${id}/execute`, { token: t, body: { command: ['true'] } });
  assert.is(third.status, 200, third.text);
  assert.is(third.headers.get('x-ratelimit-remaining'), '0');
  const before = (await api.rt.engine.listContainers({ 'director.runtime': api.rt.config.runtimeName })).length;
  const fourth = await call(api.url, 'POST', '/v1/sandboxes', { token: t, body: { image: BUSYBOX } });
  assert429(fourth, 'fourth');
  assert.is(
    (await api.rt.engine.listContainers({ 'director.runtime': api.rt.config.runtimeName })).length,
    before,
    'a refused create made a container',
  );
  // Every sandbox operation is refused now, not just creates; another principal is unaffected.
  assert429(await call(api.url, 'DELETE', `/v1/sandboxes/${id}`, { token: t }), 'delete');
  const key = await call<{ data: { key: string } }>(api.url, 'POST', '/v1/api-keys', {
    token: t,
    body: { name: 'other', scopes: ['sandboxes:read', 'sandboxes:exec'] },
  });
  assert.is(key.status, 201, key.text);
  const other = await call(api.url, 'POST', `/v1/sandboxes/${id}/execute`, { token: key.body.data.key, body: { command: ['true'] } });
  assert.is(other.status, 200, `another principal (an API key) was refused too: ${other.text}`);
});

test('token refreshes have their own budget: refreshing does not lock logins out, and is limited itself', async () => {
  // A server of its own: the other tests' logins and refused keys spend this address's login
  // budget in the same wall-clock window; here only startApi's login has (1 of AUTH_LIMIT).
  const own = await startApi({ rateLimitAuth: AUTH_LIMIT, rateLimitRefresh: REFRESH_LIMIT });
  try {
    const refresh = (refreshToken: string) =>
      call<{ data: { refreshToken: string } }>(own.url, 'POST', '/v1/auth/refresh', { token: refreshToken });
    let token = (await own.auth.login('admin', ADMIN_PASSWORD)).refreshToken;
    for (let i = 0; i < REFRESH_LIMIT; i++) {
      const res = await refresh(token);
      assert.is(res.status, 200, `refresh ${i}: ${res.text}`);
      assertHeaders(res, REFRESH_LIMIT, `refresh ${i}`);
      token = res.body.data.refreshToken;
    }
    assert429(await refresh(token), 'refresh past its budget');
    // More refreshes than the whole login budget (AUTH_LIMIT per address), and logging in still works.
    const again = await call(own.url, 'POST', '/v1/auth/login', { body: { username: 'admin', password: ADMIN_PASSWORD } });
    assert.is(again.status, 200, `login after refreshes: ${again.text}`);
    assertHeaders(again, AUTH_LIMIT, 'login');
  } finally {
    await own.close();
  }
});

test('login bursts from one address are refused with 429, even with the right password', async () => {
  await roomInWindow();
  const statuses: number[] = [];
  let refused: Res | null = null;
  for (let i = 0; i < AUTH_LIMIT + 2; i++) {
    const res = await call(api.url, 'POST', '/v1/auth/login', {
      body: { username: 'admin', password: i === AUTH_LIMIT + 1 ? ADMIN_PASSWORD : 'wrong-password-x' },
    });
    statuses.push(res.status);
    if (res.status === 429) refused ??= res;
  }
  // startApi's login and the first test's refused key may have spent part of this window's budget.
  assert.ok(statuses.filter((s) => s === 401).length <= AUTH_LIMIT, `statuses ${statuses.join(',')}`);
  assert.is(statuses.at(-1), 429, `the right password got through after the limit: ${statuses.join(',')}`);
  assert.ok(refused);
  assert429(refused, 'login');
  assertHeaders(refused, AUTH_LIMIT, 'login 429');
  // Refused credentials on any route count against the same per-address budget.
  assert429(await call(api.url, 'GET', '/v1/sandboxes', { token: 'dk_guessing' }), 'bad key after the burst');
});

test.run();
