import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AuthService } from '../../../api/auth/service.ts';
import { ROLE_SCOPES } from '../../../api/auth/types.ts';
import { addUser, bearerFor, rejects, SECRET, setup, USER_PASSWORD } from './support.ts';

async function twoWorkspaces() {
  const ctx = await setup();
  const other = ctx.auth.createWorkspace('other');
  ctx.auth.createWorkspace('third');
  const uid = await addUser(ctx, 'dev', 'developer');
  ctx.auth.addMembership(uid, 'other', 'operator');
  return { ...ctx, other: other.id, uid };
}

test('without a requested workspace, the token\u2019s own is used', async () => {
  const ctx = await twoWorkspaces();
  const p = await ctx.auth.authenticate(await bearerFor(ctx, 'dev'));
  assert.is(p.workspace, ctx.ws);
  assert.is(p.role, 'developer');
});

test('a requested workspace the user belongs to (by id or name) is selected with that role', async () => {
  const ctx = await twoWorkspaces();
  const header = await bearerFor(ctx, 'dev');
  for (const ref of ['other', ctx.other]) {
    const p = await ctx.auth.authenticate(header, ref);
    assert.is(p.workspace, ctx.other);
    assert.is(p.role, 'operator');
    assert.equal([...p.scopes], [...ROLE_SCOPES.operator]);
  }
});

test('a workspace the user does not belong to, or that does not exist, is 403 alike', async () => {
  const ctx = await twoWorkspaces();
  const header = await bearerFor(ctx, 'dev');
  const a = await rejects(() => ctx.auth.authenticate(header, 'third'), 'AUTHORIZATION_ERROR');
  const b = await rejects(() => ctx.auth.authenticate(header, 'no-such-workspace'), 'AUTHORIZATION_ERROR');
  assert.is(a.message, 'not a member of this workspace');
  assert.is(b.message, a.message);
  assert.equal(b.details, a.details);
});

test('login can pick the workspace; a non-member workspace is refused', async () => {
  const ctx = await twoWorkspaces();
  const s = await ctx.auth.login('dev', USER_PASSWORD, 'other');
  assert.is(s.workspace, ctx.other);
  assert.is((await ctx.auth.authenticate(`Bearer ${s.token}`)).role, 'operator');
  await rejects(() => ctx.auth.login('dev', USER_PASSWORD, 'third'), 'AUTHORIZATION_ERROR');
});

test('a role change takes effect on the next request, not at token expiry', async () => {
  const ctx = await twoWorkspaces();
  const header = await bearerFor(ctx, 'dev');
  ctx.auth.addMembership(ctx.uid, 'default', 'auditor');
  const p = await ctx.auth.authenticate(header);
  assert.is(p.role, 'auditor');
  assert.not.ok(p.scopes.has('sandboxes:write'));
});

test('losing membership of the token\u2019s workspace is 403', async () => {
  const ctx = await twoWorkspaces();
  const header = await bearerFor(ctx, 'dev');
  ctx.db.sql.prepare('DELETE FROM memberships WHERE user_id = ? AND workspace_id = ?').run(ctx.uid, ctx.ws);
  await rejects(() => ctx.auth.authenticate(header), 'AUTHORIZATION_ERROR');
  await ctx.auth.authenticate(header, 'other');
});

test('addMembership and listUsers check their input', async () => {
  const ctx = await twoWorkspaces();
  await rejects(() => ctx.auth.addMembership(ctx.uid, 'nope', 'developer'), 'NOT_FOUND');
  await rejects(() => ctx.auth.addMembership('usr_nobodynobodynobo', 'other', 'developer'), 'NOT_FOUND');
  await rejects(() => ctx.auth.addMembership(ctx.uid, 'other', 'root' as 'admin'), 'VALIDATION_ERROR');
  await rejects(() => ctx.auth.listUsers('nope'), 'NOT_FOUND');
  assert.equal(
    ctx.auth.listUsers('other').map((u) => [u.username, u.role]),
    [['dev', 'operator']],
  );
  await rejects(() => ctx.auth.createWorkspace('other'), 'CONFLICT');
  await rejects(() => ctx.auth.createWorkspace('Bad_Name'), 'VALIDATION_ERROR');
});

test('requireScope passes held scopes and names the missing one', async () => {
  const ctx = await twoWorkspaces();
  const p = await ctx.auth.authenticate(await bearerFor(ctx, 'dev'));
  ctx.auth.requireScope(p, 'sandboxes:exec');
  const err = await rejects(() => ctx.auth.requireScope(p, 'networks:write'), 'AUTHORIZATION_ERROR');
  assert.match(err.message, /networks:write/);
  assert.equal(err.details, { scope: 'networks:write', reason: 'missing_scope' });
  const admin = await ctx.auth.authenticate(await bearerFor(ctx, 'admin', 'correct horse battery staple'));
  ctx.auth.requireScope(admin, 'admin');
});

test('a second service on the same store keeps the data', async () => {
  const ctx = await twoWorkspaces();
  const again = new AuthService(ctx.db, { jwtSecret: SECRET, clock: ctx.clock });
  assert.is(again.listUsers('default').length, 2);
  assert.equal(await again.bootstrapAdmin(), { created: false, username: 'admin' });
});

test.run();
