import { PRINCIPAL_CACHE_MS } from '../../../api/auth/service.ts';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { addUser, bearerFor, rejects, setup, unauthenticated, type Ctx } from './support.ts';

const KEY_RE = /^dk_[a-z0-9]{8}_[A-Za-z0-9_-]{43}$/;

async function admin(ctx: Ctx) {
  return ctx.auth.authenticate(await bearerFor(ctx, 'admin', 'correct horse battery staple'));
}

test('create returns the full key once; list and the store never show it', async () => {
  const ctx = await setup();
  const p = await admin(ctx);
  const k = ctx.auth.createApiKey(p, { name: 'ci', scopes: ['sandboxes:read', 'sandboxes:write'] });
  assert.match(k.key, KEY_RE);
  assert.ok(k.key.startsWith(`${k.prefix}_`));
  assert.equal(k.scopes, ['sandboxes:read', 'sandboxes:write']);
  const list = ctx.auth.listApiKeys(p);
  assert.is(list.length, 1);
  assert.equal(Object.keys(list[0]!).sort(), [
    'createdMs',
    'expiresAtMs',
    'id',
    'lastUsedMs',
    'name',
    'prefix',
    'revoked',
    'revokedMs',
    'rotatedFrom',
    'scopes',
    'userId',
    'workspace',
  ]);
  const secret = k.key.slice(12);
  assert.not.ok(JSON.stringify(list).includes(secret));
  assert.not.ok(JSON.stringify(ctx.db.sql.prepare('SELECT * FROM api_keys').all()).includes(secret));
});

test('a key authenticates as a key principal with exactly its scopes', async () => {
  const ctx = await setup();
  const k = ctx.auth.createApiKey(await admin(ctx), { name: 'ci', scopes: ['sandboxes:read', 'sandboxes:read'] });
  const p = await ctx.auth.authenticate(`Bearer ${k.key}`);
  assert.is(p.kind, 'key');
  assert.is(p.keyId, k.id);
  assert.is(p.username, 'admin');
  assert.is(p.workspace, ctx.ws);
  assert.is(p.tokenId, null);
  assert.equal([...p.scopes], ['sandboxes:read']);
  ctx.auth.requireScope(p, 'sandboxes:read');
  const err = await rejects(() => ctx.auth.requireScope(p, 'sandboxes:write'), 'AUTHORIZATION_ERROR');
  assert.is(err.details?.scope, 'sandboxes:write');
});

test('right prefix with a wrong secret, unknown prefixes and garbage are refused', async () => {
  const ctx = await setup();
  const k = ctx.auth.createApiKey(await admin(ctx), { name: 'ci', scopes: ['sandboxes:read'] });
  const last = k.key.at(-1) === 'A' ? 'B' : 'A';
  assert.is(ctx.auth.apiKeys.authenticate(k.key.slice(0, -1) + last), null);
  assert.is(ctx.auth.apiKeys.authenticate(`dk_zzzzzzzz_${k.key.slice(12)}`), null);
  assert.is(ctx.auth.apiKeys.authenticate('dk_short'), null);
  assert.ok(ctx.auth.apiKeys.authenticate(k.key));
  await unauthenticated(() => ctx.auth.authenticate(`Bearer ${k.key}x`), 'invalid_api_key');
});

test('revoked keys stop working; revoking is idempotent', async () => {
  const ctx = await setup();
  const p = await admin(ctx);
  const k = ctx.auth.createApiKey(p, { name: 'ci', scopes: ['sandboxes:read'] });
  const info = ctx.auth.revokeApiKey(p, k.id);
  assert.ok(info.revoked);
  assert.is(info.revokedMs, ctx.clock.ms);
  assert.is(ctx.auth.apiKeys.authenticate(k.key), null);
  await unauthenticated(() => ctx.auth.authenticate(`Bearer ${k.key}`), 'invalid_api_key');
  ctx.clock.advance(5_000);
  assert.is(ctx.auth.revokeApiKey(p, k.id).revokedMs, info.revokedMs);
});

test('expired keys stop working', async () => {
  const ctx = await setup();
  const k = ctx.auth.createApiKey(await admin(ctx), { name: 'ci', scopes: ['sandboxes:read'], expiresAtMs: ctx.clock.ms + 60_000 });
  assert.ok(ctx.auth.apiKeys.authenticate(k.key));
  ctx.clock.advance(60_000);
  assert.is(ctx.auth.apiKeys.authenticate(k.key), null);
});

test('an expiry in the past is refused', async () => {
  const ctx = await setup();
  const err = await rejects(
    async () => ctx.auth.createApiKey(await admin(ctx), { name: 'ci', scopes: ['sandboxes:read'], expiresAtMs: ctx.clock.ms }),
    'VALIDATION_ERROR',
  );
  assert.is(err.details?.field, 'expiresAtMs');
});

test('rotate: old key fails, new key works with the same name and scopes', async () => {
  const ctx = await setup();
  const p = await admin(ctx);
  const old = ctx.auth.createApiKey(p, { name: 'ci', scopes: ['sandboxes:read', 'audit:read'] });
  const next = ctx.auth.rotateApiKey(p, old.id);
  assert.match(next.key, KEY_RE);
  assert.is.not(next.key, old.key);
  assert.is.not(next.id, old.id);
  assert.is(next.rotatedFrom, old.id);
  assert.is(next.name, 'ci');
  assert.equal(next.scopes, old.scopes);
  assert.is(ctx.auth.apiKeys.authenticate(old.key), null);
  assert.is(ctx.auth.apiKeys.authenticate(next.key)?.keyId, next.id);
  await rejects(() => ctx.auth.rotateApiKey(p, old.id), 'CONFLICT');
});

test('scope escalation: a developer cannot create a key with networks:write', async () => {
  const ctx = await setup();
  await addUser(ctx, 'dev', 'developer');
  const dev = await ctx.auth.authenticate(await bearerFor(ctx, 'dev'));
  const err = await rejects(
    () => ctx.auth.createApiKey(dev, { name: 'x', scopes: ['sandboxes:read', 'networks:write'] }),
    'AUTHORIZATION_ERROR',
  );
  assert.is(err.details?.scope, 'networks:write');
  assert.match(err.message, /networks:write/);
  // The store-level check holds on its own too.
  await rejects(
    () => ctx.auth.apiKeys.create({ userId: dev.userId, workspace: ctx.ws, name: 'x', scopes: ['networks:write'] }),
    'AUTHORIZATION_ERROR',
  );
});

test('a key cannot mint a key with more scopes than it has', async () => {
  const ctx = await setup();
  const k = ctx.auth.createApiKey(await admin(ctx), { name: 'ci', scopes: ['keys:write', 'sandboxes:read'] });
  const kp = await ctx.auth.authenticate(`Bearer ${k.key}`);
  ctx.auth.createApiKey(kp, { name: 'child', scopes: ['sandboxes:read'] });
  const err = await rejects(() => ctx.auth.createApiKey(kp, { name: 'child', scopes: ['admin'] }), 'AUTHORIZATION_ERROR');
  assert.is(err.details?.scope, 'admin');
});

test('unknown scope names and bad names are 400s naming the field', async () => {
  const ctx = await setup();
  const p = await admin(ctx);
  const err = await rejects(
    () => ctx.auth.createApiKey(p, { name: 'ci', scopes: ['sandboxes:read', 'sandboxes:destroy'] }),
    'VALIDATION_ERROR',
  );
  assert.is(err.details?.field, 'scopes[1]');
  assert.is((await rejects(() => ctx.auth.createApiKey(p, { name: 'ci', scopes: [] }), 'VALIDATION_ERROR')).details?.field, 'scopes');
  assert.is((await rejects(() => ctx.auth.createApiKey(p, { name: ' ', scopes: ['admin'] }), 'VALIDATION_ERROR')).details?.field, 'name');
  assert.is(
    (await rejects(() => ctx.auth.createApiKey(p, { name: 'a\nb', scopes: ['admin'] }), 'VALIDATION_ERROR')).details?.field,
    'name',
  );
});

test('another workspace\u2019s key id is not found for revoke and rotate', async () => {
  const ctx = await setup();
  const other = ctx.auth.createWorkspace('other');
  const otherAdmin = await addUser(ctx, 'boss', 'admin', other.id);
  const theirs = ctx.auth.apiKeys.create({ userId: otherAdmin, workspace: other.id, name: 'theirs', scopes: ['sandboxes:read'] });
  const p = await admin(ctx);
  await rejects(() => ctx.auth.revokeApiKey(p, theirs.id), 'NOT_FOUND');
  await rejects(() => ctx.auth.rotateApiKey(p, theirs.id), 'NOT_FOUND');
  assert.equal(ctx.auth.listApiKeys(p), []);
  assert.ok(ctx.auth.apiKeys.authenticate(theirs.key));
});

test('non-admins see and manage only their own keys', async () => {
  const ctx = await setup();
  await addUser(ctx, 'dev', 'developer');
  const dev = await ctx.auth.authenticate(await bearerFor(ctx, 'dev'));
  const a = await admin(ctx);
  const adminKey = ctx.auth.createApiKey(a, { name: 'admin-key', scopes: ['admin'] });
  const devKey = ctx.auth.createApiKey(dev, { name: 'dev-key', scopes: ['sandboxes:exec'] });
  assert.equal(
    ctx.auth.listApiKeys(dev).map((k) => k.name),
    ['dev-key'],
  );
  assert.equal(
    ctx.auth
      .listApiKeys(a)
      .map((k) => k.name)
      .sort(),
    ['admin-key', 'dev-key'],
  );
  await rejects(() => ctx.auth.revokeApiKey(dev, adminKey.id), 'NOT_FOUND');
  ctx.auth.revokeApiKey(a, devKey.id);
});

test('a key is bound to its workspace: requesting another one is 403', async () => {
  const ctx = await setup();
  ctx.auth.createWorkspace('other');
  const k = ctx.auth.createApiKey(await admin(ctx), { name: 'ci', scopes: ['sandboxes:read'] });
  await ctx.auth.authenticate(`Bearer ${k.key}`, 'default');
  await ctx.auth.authenticate(`Bearer ${k.key}`, ctx.ws);
  const err = await rejects(() => ctx.auth.authenticate(`Bearer ${k.key}`, 'other'), 'AUTHORIZATION_ERROR');
  assert.is(err.details?.reason, 'key_workspace_mismatch');
});

test('a key never holds more than its creator: demotion narrows it, leaving the workspace kills it', async () => {
  const ctx = await setup();
  const opId = await addUser(ctx, 'ops', 'operator');
  const op = await ctx.auth.authenticate(await bearerFor(ctx, 'ops'));
  const k = ctx.auth.createApiKey(op, { name: 'net', scopes: ['networks:read', 'networks:write'] });
  ctx.auth.addMembership(opId, 'default', 'auditor');
  assert.equal([...(await ctx.auth.authenticate(`Bearer ${k.key}`)).scopes], ['networks:read']);
  // Written behind the service's back (as another process sharing the store would): it takes
  // effect once the cached principal lapses, after PRINCIPAL_CACHE_MS at most.
  ctx.db.sql.prepare('DELETE FROM memberships WHERE user_id = ?').run(opId);
  ctx.clock.advance(PRINCIPAL_CACHE_MS);
  await unauthenticated(() => ctx.auth.authenticate(`Bearer ${k.key}`), 'invalid_api_key');
});

test('changes made through the service take effect on the very next request, cache or not', async () => {
  const ctx = await setup();
  const opId = await addUser(ctx, 'ops2', 'operator');
  const bearer = await bearerFor(ctx, 'ops2');
  const op = await ctx.auth.authenticate(bearer);
  const k = ctx.auth.createApiKey(op, { name: 'net', scopes: ['networks:read', 'networks:write'] });
  assert.equal([...(await ctx.auth.authenticate(`Bearer ${k.key}`)).scopes].sort(), ['networks:read', 'networks:write']);
  ctx.auth.addMembership(opId, 'default', 'auditor');
  assert.equal([...(await ctx.auth.authenticate(`Bearer ${k.key}`)).scopes], ['networks:read'], 'a demotion waited for the cache');
  ctx.auth.revokeApiKey(op, k.id);
  await unauthenticated(() => ctx.auth.authenticate(`Bearer ${k.key}`), 'invalid_api_key');
  await ctx.auth.authenticate(bearer);
  ctx.auth.setUserDisabled(opId, true);
  await unauthenticated(() => ctx.auth.authenticate(bearer), 'token_revoked');
});

test('last use is recorded at most once a minute', async () => {
  const ctx = await setup();
  const p = await admin(ctx);
  const k = ctx.auth.createApiKey(p, { name: 'ci', scopes: ['sandboxes:read'] });
  const t0 = ctx.clock.ms;
  ctx.auth.apiKeys.authenticate(k.key);
  ctx.clock.advance(30_000);
  ctx.auth.apiKeys.authenticate(k.key);
  assert.is(ctx.auth.listApiKeys(p)[0]!.lastUsedMs, t0);
  ctx.clock.advance(30_000);
  ctx.auth.apiKeys.authenticate(k.key);
  assert.is(ctx.auth.listApiKeys(p)[0]!.lastUsedMs, t0 + 60_000);
});

test('key management needs keys:write', async () => {
  const ctx = await setup();
  await addUser(ctx, 'aud', 'auditor');
  const aud = await ctx.auth.authenticate(await bearerFor(ctx, 'aud'));
  const err = await rejects(() => ctx.auth.createApiKey(aud, { name: 'x', scopes: ['audit:read'] }), 'AUTHORIZATION_ERROR');
  assert.is(err.details?.scope, 'keys:write');
  await rejects(() => ctx.auth.listApiKeys(aud), 'AUTHORIZATION_ERROR');
});

test.run();
