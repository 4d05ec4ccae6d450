import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { openDb } from '../../../core/db.ts';
import { AuthService } from '../../../api/auth/service.ts';
import { ADMIN_PASSWORD, addUser, ManualClock, rejects, SECRET, setup, unauthenticated, USER_PASSWORD } from './support.ts';

const fresh = () => new AuthService(openDb('/nonexistent', ':memory:'), { jwtSecret: SECRET, clock: new ManualClock() });

test('bootstrap with an env password creates workspace default and user admin with role admin', async () => {
  const auth = fresh();
  const res = await auth.bootstrapAdmin(ADMIN_PASSWORD);
  assert.equal(res, { created: true, username: 'admin' });
  const ws = auth.directory.findWorkspace('default');
  assert.ok(ws);
  assert.equal(
    auth.listUsers('default').map((u) => [u.username, u.role]),
    [['admin', 'admin']],
  );
  const session = await auth.login('admin', ADMIN_PASSWORD);
  assert.is(session.workspace, ws.id);
});

test('bootstrap without an env password generates a 24-character one, returned once', async () => {
  const auth = fresh();
  const res = await auth.bootstrapAdmin();
  assert.ok(res.created);
  assert.is(res.generatedPassword?.length, 24);
  await auth.login('admin', res.generatedPassword!);
  const again = await auth.bootstrapAdmin();
  assert.equal(again, { created: false, username: 'admin' });
});

test('bootstrap is idempotent: a second call changes nothing, even with another password', async () => {
  const auth = fresh();
  await auth.bootstrapAdmin(ADMIN_PASSWORD);
  const res = await auth.bootstrapAdmin('a different password entirely');
  assert.equal(res, { created: false, username: 'admin' });
  assert.is(auth.listUsers('default').length, 1);
  await auth.login('admin', ADMIN_PASSWORD);
  await unauthenticated(() => auth.login('admin', 'a different password entirely'), 'invalid_credentials');
});

test('bootstrap refuses a too-short env password, naming the variable, and creates nothing', async () => {
  const auth = fresh();
  const err = await rejects(() => auth.bootstrapAdmin('short'), 'VALIDATION_ERROR');
  assert.is(err.details?.field, 'DIRECTOR_ADMIN_PASSWORD');
  assert.is(auth.directory.countUsers(), 0);
  assert.is(auth.directory.findWorkspace('default'), null);
  await rejects(() => auth.bootstrapAdmin(''), 'VALIDATION_ERROR');
});

test('there is no default password: before bootstrap nobody can log in', async () => {
  const auth = fresh();
  for (const pw of ['admin', 'password', 'changeme', 'admin123456789']) {
    await unauthenticated(() => auth.login('admin', pw), 'invalid_credentials');
  }
});

test('login returns an access token, a refresh token and the workspace', async () => {
  const ctx = await setup();
  const s = await ctx.auth.login('admin', ADMIN_PASSWORD);
  assert.is(s.tokenType, 'Bearer');
  assert.is(s.token.split('.').length, 3);
  assert.match(s.refreshToken, /^drt_[A-Za-z0-9_-]{43}$/);
  assert.is(s.workspace, ctx.ws);
  assert.is(s.expiresAtMs, Math.floor((ctx.clock.ms + 15 * 60_000) / 1000) * 1000);
  assert.is(s.refreshExpiresAtMs, ctx.clock.ms + 7 * 24 * 3_600_000);
  const p = await ctx.auth.authenticate(`Bearer ${s.token}`);
  assert.is(p.username, 'admin');
});

test('usernames match case-insensitively', async () => {
  const ctx = await setup();
  await ctx.auth.login('ADMIN', ADMIN_PASSWORD);
});

test('unknown user and wrong password fail with the same generic error', async () => {
  const ctx = await setup();
  const errs = [
    await rejects(() => ctx.auth.login('nobody', ADMIN_PASSWORD), 'AUTHENTICATION_ERROR'),
    await rejects(() => ctx.auth.login('admin', 'wrong password here'), 'AUTHENTICATION_ERROR'),
  ];
  assert.is(errs[0]!.message, errs[1]!.message);
  assert.equal(errs[0]!.details, errs[1]!.details);
  assert.equal(errs[0]!.details, { reason: 'invalid_credentials' });
  assert.not.match(errs[1]!.message, /wrong password here/);
});

test('an unknown user costs a full hash verification, like a wrong password', async () => {
  const ctx = await setup();
  const time = async (fn: () => Promise<unknown>) => {
    const t = performance.now();
    await fn().catch(() => undefined);
    return performance.now() - t;
  };
  const bad = await time(() => ctx.auth.login('admin', 'wrong password here'));
  const unknown = await time(() => ctx.auth.login('nobody-at-all', 'wrong password here'));
  assert.ok(unknown > bad * 0.3, `unknown user took ${unknown.toFixed(1)} ms, wrong password ${bad.toFixed(1)} ms`);
});

test('a disabled user cannot log in and loses existing tokens', async () => {
  const ctx = await setup();
  const id = await addUser(ctx, 'dev', 'developer');
  const s = await ctx.auth.login('dev', USER_PASSWORD);
  ctx.auth.setUserDisabled(id, true);
  await unauthenticated(() => ctx.auth.login('dev', USER_PASSWORD), 'invalid_credentials');
  await unauthenticated(() => ctx.auth.authenticate(`Bearer ${s.token}`), 'token_revoked');
  await unauthenticated(() => ctx.auth.refresh(s.refreshToken), 'refresh_token_reused');
  ctx.auth.setUserDisabled(id, false);
  await ctx.auth.login('dev', USER_PASSWORD);
});

test('createUser validates its input and refuses duplicate usernames', async () => {
  const ctx = await setup();
  const bad = await rejects(
    () => ctx.auth.createUser({ username: 'x y', password: USER_PASSWORD, workspace: 'default', role: 'developer' }),
    'VALIDATION_ERROR',
  );
  assert.is(bad.details?.field, 'username');
  const weak = await rejects(
    () => ctx.auth.createUser({ username: 'dev', password: 'short', workspace: 'default', role: 'developer' }),
    'VALIDATION_ERROR',
  );
  assert.is(weak.details?.field, 'password');
  const role = await rejects(
    () => ctx.auth.createUser({ username: 'dev', password: USER_PASSWORD, workspace: 'default', role: 'root' as 'admin' }),
    'VALIDATION_ERROR',
  );
  assert.is(role.details?.field, 'role');
  await rejects(() => ctx.auth.createUser({ username: 'dev', password: USER_PASSWORD, workspace: 'nope', role: 'developer' }), 'NOT_FOUND');
  await addUser(ctx, 'dev', 'developer');
  await rejects(() => addUser(ctx, 'DEV', 'developer'), 'CONFLICT');
});

test('listUsers never exposes password hashes', async () => {
  const ctx = await setup();
  await addUser(ctx, 'dev', 'developer');
  const users = ctx.auth.listUsers(ctx.ws);
  assert.equal(
    users.map((u) => [u.username, u.role, u.disabled]),
    [
      ['admin', 'admin', false],
      ['dev', 'developer', false],
    ],
  );
  assert.not.match(JSON.stringify(users), /scrypt/);
});

test.run();
