/**
 * Broken authentication and function-level authorization (OWASP API2, API5): forged, expired,
 * mis-addressed and revoked tokens; scoped, revoked and rotated API keys.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { SignJWT } from 'jose';
import { AuthService } from '../../../api/auth/service.ts';
import { AUTH_FAILED_MESSAGE } from '../../../api/auth/failures.ts';
import { JWT_AUDIENCE, JWT_ISSUER, resolveSigningSecret } from '../../../api/auth/tokens.ts';
import { ADMIN_PASSWORD, call, startApi, type Res, type TestApi } from '../../helpers/api.ts';

const test = suite('api-owasp-auth');
let api: TestApi;
let me = { userId: '', workspace: '' };

test.before(async () => {
  // Every refused token counts against the per-address auth limit; that limit is tested elsewhere.
  api = await startApi({ rateLimitAuth: 10_000 });
  const res = await call<{ data: { userId: string; workspace: string } }>(api.url, 'GET', '/v1/auth/me', { token: api.adminToken });
  assert.is(res.status, 200, res.text);
  me = res.body.data;
});
test.after(async () => {
  await api?.close();
});

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
const nowS = () => Math.floor(Date.now() / 1000);
const claims = () => ({ wsp: me.workspace, role: 'admin' });

/** A token signed with `secret`, valid in every respect unless `tweak` changes it. */
async function forge(secret: Uint8Array, tweak: (j: SignJWT) => SignJWT = (j) => j, alg = 'HS256'): Promise<string> {
  const j = new SignJWT(claims())
    .setProtectedHeader({ alg, typ: 'JWT' })
    .setIssuer(JWT_ISSUER)
    .setAudience(JWT_AUDIENCE)
    .setSubject(me.userId)
    .setJti(crypto.randomUUID())
    .setIssuedAt(nowS())
    .setExpirationTime(nowS() + 300);
  return tweak(j).sign(secret);
}

const serverSecret = () => resolveSigningSecret(api.rt.db);
const getSandboxes = (token: string) => call(api.url, 'GET', '/v1/sandboxes', { token });

function assertRefused(res: Res, what: string, reason?: string) {
  assert.is(res.status, 401, `${what}: ${res.text}`);
  assert.is(res.body.success, false, what);
  assert.is(res.body.error?.code, 'AUTHENTICATION_ERROR', what);
  // One message for every failure, so a caller cannot probe which check refused it.
  assert.is(res.body.error?.message, AUTH_FAILED_MESSAGE, what);
  if (reason) assert.is(res.body.error?.details.reason, reason, what);
  assert.not.ok(res.text.includes('    at '), `${what}: stack trace in the body`);
}

test('a token forged with the server secret is accepted (control for the cases below)', async () => {
  const res = await getSandboxes(await forge(serverSecret()));
  assert.is(res.status, 200, res.text);
});

test('alg:none, a bad signature, HS512 and RS256-labelled tokens are refused', async () => {
  const payload = {
    sub: me.userId,
    jti: crypto.randomUUID(),
    iat: nowS(),
    exp: nowS() + 300,
    iss: JWT_ISSUER,
    aud: JWT_AUDIENCE,
    ...claims(),
  };
  assertRefused(await getSandboxes(`${b64({ alg: 'none', typ: 'JWT' })}.${b64(payload)}.`), 'alg none', 'algorithm_not_allowed');
  assertRefused(await getSandboxes(`${b64({ alg: 'NONE', typ: 'JWT' })}.${b64(payload)}.`), 'alg NONE', 'algorithm_not_allowed');
  const other = new Uint8Array(32).fill(7);
  assertRefused(await getSandboxes(await forge(other)), 'bad signature', 'bad_signature');
  // A real token with its payload swapped (privilege escalation by editing claims).
  const [h, , s] = api.adminToken.split('.');
  assertRefused(
    await getSandboxes(`${h}.${b64({ ...payload, role: 'admin', wsp: 'wsp_someoneelse00' })}.${s}`),
    'edited payload',
    'bad_signature',
  );
  assertRefused(
    await getSandboxes(await forge(serverSecret(), (j) => j, 'HS512')),
    'HS512 with the server secret',
    'algorithm_not_allowed',
  );
  assertRefused(
    await getSandboxes(`${b64({ alg: 'RS256', typ: 'JWT' })}.${b64(payload)}.${b64('x')}`),
    'RS256 label',
    'algorithm_not_allowed',
  );
});

test("expired tokens (issued by the server's own code under a clock in the past) are refused", async () => {
  const past = new AuthService(api.rt.db, { tokenTtlMs: 60_000, clock: { nowMs: () => Date.now() - 10 * 60_000 } });
  const old = await past.accessTokens.issue({ userId: me.userId, workspace: me.workspace, role: 'admin' });
  assert.ok(old.expiresAtMs < Date.now());
  assertRefused(await getSandboxes(old.token), 'expired', 'token_expired');
  assertRefused(
    await getSandboxes(await forge(serverSecret(), (j) => j.setIssuedAt(nowS() - 7200).setExpirationTime(nowS() - 3600))),
    'forged expired',
    'token_expired',
  );
});

test('wrong audience, wrong issuer, missing jti and an unknown user are refused', async () => {
  const s = serverSecret();
  assertRefused(await getSandboxes(await forge(s, (j) => j.setAudience('another-api'))), 'wrong audience', 'wrong_audience');
  assertRefused(await getSandboxes(await forge(s, (j) => j.setIssuer('someone-else'))), 'wrong issuer', 'wrong_issuer');
  const noJti = await new SignJWT(claims())
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuer(JWT_ISSUER)
    .setAudience(JWT_AUDIENCE)
    .setSubject(me.userId)
    .setIssuedAt()
    .setExpirationTime('5m')
    .sign(s);
  assertRefused(await getSandboxes(noJti), 'no jti');
  assertRefused(await getSandboxes(await forge(s, (j) => j.setSubject('usr_nobody0000000000'))), 'unknown user', 'unknown_user');
});

test('garbage, missing and malformed Authorization headers are refused alike', async () => {
  assertRefused(await call(api.url, 'GET', '/v1/sandboxes'), 'no header', 'missing_credentials');
  assertRefused(
    await call(api.url, 'GET', '/v1/sandboxes', { headers: { authorization: `Basic ${Buffer.from('admin:x').toString('base64')}` } }),
    'basic',
    'malformed_header',
  );
  assertRefused(await getSandboxes('a.b.c'), 'a.b.c', 'malformed_token');
  assertRefused(await getSandboxes('x'.repeat(5000)), 'huge token');
  assertRefused(await getSandboxes('dk_notakey'), 'fake api key', 'invalid_api_key');
});

test('after logout the access token and its refresh token are refused; other sessions live on', async () => {
  const login = await call<{ data: { token: string; refreshToken: string } }>(api.url, 'POST', '/v1/auth/login', {
    body: { username: 'admin', password: ADMIN_PASSWORD },
  });
  assert.is(login.status, 200, login.text);
  const { token, refreshToken } = login.body.data;
  assert.is((await getSandboxes(token)).status, 200);
  const out = await call(api.url, 'POST', '/v1/auth/logout', { token });
  assert.is(out.status, 200, out.text);
  assertRefused(await getSandboxes(token), 'revoked', 'token_revoked');
  assert.is((await getSandboxes(api.adminToken)).status, 200, 'logout ended another session');
  // Presenting the logged-out refresh token counts as reuse: by design (see the auth unit
  // tests) that ends every session of the user, so the suite logs in again afterwards.
  assertRefused(
    await call(api.url, 'POST', '/v1/auth/refresh', { body: { refreshToken } }),
    'refresh after logout',
    'refresh_token_reused',
  );
  assertRefused(await getSandboxes(api.adminToken), 'other session after reuse', 'token_revoked');
  const again = await call<{ data: { token: string } }>(api.url, 'POST', '/v1/auth/login', {
    body: { username: 'admin', password: ADMIN_PASSWORD },
  });
  assert.is(again.status, 200, again.text);
  api.adminToken = again.body.data.token;
});

test('refresh takes the token from the Authorization header with no body at all, or from the body', async () => {
  const login = await call<{ data: { refreshToken: string } }>(api.url, 'POST', '/v1/auth/login', {
    body: { username: 'admin', password: ADMIN_PASSWORD },
  });
  assert.is(login.status, 200, login.text);
  // The Director Protocol's way: `Authorization: Bearer <refreshToken>`, nothing in the body (and no content type).
  const byHeader = await call<{ data: { token: string; refreshToken: string } }>(api.url, 'POST', '/v1/auth/refresh', {
    token: login.body.data.refreshToken,
  });
  assert.is(byHeader.status, 200, byHeader.text);
  assert.is((await getSandboxes(byHeader.body.data.token)).status, 200);
  // The same with an empty JSON body, as clients that always send a content type do.
  const emptyJson = await call<{ data: { refreshToken: string } }>(api.url, 'POST', '/v1/auth/refresh', {
    token: byHeader.body.data.refreshToken,
    raw: '',
    headers: { 'content-type': 'application/json' },
  });
  assert.is(emptyJson.status, 200, emptyJson.text);
  const byBody = await call(api.url, 'POST', '/v1/auth/refresh', { body: { refreshToken: emptyJson.body.data.refreshToken } });
  assert.is(byBody.status, 200, byBody.text);
});

test('a refresh without a token anywhere is a 400 naming refreshToken', async () => {
  for (const [what, opts] of [
    ['no body', {}],
    ['empty object', { body: {} }],
    ['empty JSON body', { raw: '', headers: { 'content-type': 'application/json' } }],
  ] as const) {
    const res = await call(api.url, 'POST', '/v1/auth/refresh', opts);
    assert.is(res.status, 400, `${what}: ${res.text}`);
    assert.is(res.body.error?.code, 'VALIDATION_ERROR', what);
    assert.is(res.body.error?.details.field, 'refreshToken', what);
    assert.match(String(res.body.error?.message), /Authorization: Bearer/, what);
  }
});

test('a wrong password and an unknown user fail alike', async () => {
  const wrong = await call(api.url, 'POST', '/v1/auth/login', { body: { username: 'admin', password: 'not-the-password' } });
  const unknown = await call(api.url, 'POST', '/v1/auth/login', { body: { username: 'nobody', password: 'not-the-password' } });
  assertRefused(wrong, 'wrong password', 'invalid_credentials');
  assertRefused(unknown, 'unknown user', 'invalid_credentials');
});

interface KeyView {
  id: string;
  prefix: string;
  scopes: string[];
  revoked: boolean;
  key?: string;
}

async function createKey(name: string, scopes: string[]): Promise<KeyView & { key: string }> {
  const res = await call<{ data: KeyView }>(api.url, 'POST', '/v1/api-keys', { token: api.adminToken, body: { name, scopes } });
  assert.is(res.status, 201, res.text);
  assert.match(String(res.body.data.key), /^dk_/);
  return res.body.data as KeyView & { key: string };
}

test('a key with only sandboxes:read can list but not create: 403 naming the scope, nothing created', async () => {
  const k = await createKey('reader', ['sandboxes:read']);
  assert.is((await getSandboxes(k.key)).status, 200);
  const created = await call(api.url, 'POST', '/v1/sandboxes', { token: k.key, body: { image: 'director/busybox:latest' } });
  assert.is(created.status, 403, created.text);
  assert.is(created.body.error?.code, 'AUTHORIZATION_ERROR');
  assert.is(created.body.error?.details.scope, 'sandboxes:write');
  for (const [method, path] of [
    ['POST', '/v1/sandboxes/sbx_AAAAAAAAAAAAAAAA/execute'],
    ['DELETE', '/v1/sandboxes/sbx_AAAAAAAAAAAAAAAA'],
    ['POST', '/v1/api-keys'],
    ['POST', '/v1/users'],
  ] as const) {
    const res = await call(api.url, method, path, { token: k.key, body: {} });
    assert.is(res.status, 403, `${method} ${path}: ${res.text}`);
  }
  assert.is((await api.rt.engine.listContainers({ 'director.runtime': api.rt.config.runtimeName })).length, 0);
  assert.ok(api.rt.events.list({ type: 'scope_denied', limit: 10 }).length >= 1, 'no scope_denied event');
});

test('the key secret is shown only at creation: GET /v1/api-keys never returns it', async () => {
  const k = await createKey('shown-once', ['sandboxes:read']);
  const list = await call<{ data: KeyView[] }>(api.url, 'GET', '/v1/api-keys', { token: api.adminToken });
  assert.is(list.status, 200, list.text);
  const row = list.body.data.find((x) => x.id === k.id);
  assert.ok(row);
  assert.is(row.key, undefined);
  assert.not.ok(list.text.includes(k.key), 'the secret is in the list');
  assert.ok(k.key.startsWith(row.prefix));
});

test('a revoked key is refused with 401', async () => {
  const k = await createKey('to-revoke', ['sandboxes:read']);
  assert.is((await getSandboxes(k.key)).status, 200);
  const del = await call<{ data: KeyView }>(api.url, 'DELETE', `/v1/api-keys/${k.id}`, { token: api.adminToken });
  assert.is(del.status, 200, del.text);
  assert.is(del.body.data.revoked, true);
  assertRefused(await getSandboxes(k.key), 'revoked key', 'invalid_api_key');
});

test('a rotated key: the old secret is refused, the new one works with the same scopes', async () => {
  const k = await createKey('to-rotate', ['sandboxes:read']);
  const rot = await call<{ data: KeyView }>(api.url, 'POST', `/v1/api-keys/${k.id}/rotate`, { token: api.adminToken });
  assert.is(rot.status, 200, rot.text);
  const fresh = String(rot.body.data.key);
  assert.match(fresh, /^dk_/);
  assert.is.not(fresh, k.key);
  assert.equal(rot.body.data.scopes, ['sandboxes:read']);
  assertRefused(await getSandboxes(k.key), 'old secret', 'invalid_api_key');
  assert.is((await getSandboxes(fresh)).status, 200);
  assert.is((await call(api.url, 'POST', '/v1/sandboxes', { token: fresh, body: {} })).status, 403);
});

test('a key cannot grant more than its creator holds', async () => {
  const dev = await call(api.url, 'POST', '/v1/users', {
    token: api.adminToken,
    body: { username: 'dev-keys', password: 'dev-keys-password-1', role: 'developer' },
  });
  assert.is(dev.status, 201, dev.text);
  const login = await call<{ data: { token: string } }>(api.url, 'POST', '/v1/auth/login', {
    body: { username: 'dev-keys', password: 'dev-keys-password-1' },
  });
  const res = await call(api.url, 'POST', '/v1/api-keys', {
    token: login.body.data.token,
    body: { name: 'escalate', scopes: ['sandboxes:read', 'admin'] },
  });
  assert.is(res.status, 403, res.text);
  assert.is(res.body.error?.code, 'AUTHORIZATION_ERROR');
  assert.is(res.body.error?.details.scope, 'admin');
  // And a developer is not an admin: no users, no workspaces.
  assert.is((await call(api.url, 'POST', '/v1/workspaces', { token: login.body.data.token, body: { name: 'mine' } })).status, 403);
});

test.run();
