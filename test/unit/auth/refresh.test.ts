import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ADMIN_PASSWORD, setup, unauthenticated } from './support.ts';

test('refresh rotates: new access and refresh tokens, the old refresh token is spent', async () => {
  const ctx = await setup();
  const first = await ctx.auth.login('admin', ADMIN_PASSWORD);
  ctx.clock.advance(1_000);
  const second = await ctx.auth.refresh(first.refreshToken);
  assert.is.not(second.refreshToken, first.refreshToken);
  assert.is.not(second.token, first.token);
  assert.is(second.workspace, first.workspace);
  assert.is((await ctx.auth.authenticate(`Bearer ${second.token}`)).username, 'admin');
  const third = await ctx.auth.refresh(second.refreshToken);
  assert.ok(third.token);
});

test('reusing a spent refresh token revokes all of the user\u2019s refresh tokens and their access tokens', async () => {
  const ctx = await setup();
  const a = await ctx.auth.login('admin', ADMIN_PASSWORD);
  const other = await ctx.auth.login('admin', ADMIN_PASSWORD);
  const a2 = await ctx.auth.refresh(a.refreshToken);
  await unauthenticated(() => ctx.auth.refresh(a.refreshToken), 'refresh_token_reused');
  await unauthenticated(() => ctx.auth.refresh(a2.refreshToken), 'refresh_token_reused');
  await unauthenticated(() => ctx.auth.refresh(other.refreshToken), 'refresh_token_reused');
  await unauthenticated(() => ctx.auth.authenticate(`Bearer ${a2.token}`), 'token_revoked');
  await unauthenticated(() => ctx.auth.authenticate(`Bearer ${other.token}`), 'token_revoked');
  // Logging in again starts afresh.
  const fresh = await ctx.auth.login('admin', ADMIN_PASSWORD);
  await ctx.auth.refresh(fresh.refreshToken);
});

test('refresh tokens are stored only as digests', async () => {
  const ctx = await setup();
  const s = await ctx.auth.login('admin', ADMIN_PASSWORD);
  const dump = JSON.stringify(ctx.db.sql.prepare('SELECT * FROM refresh_tokens').all());
  assert.not.ok(dump.includes(s.refreshToken.slice(4)));
});

test('an expired refresh token is refused', async () => {
  const ctx = await setup({ refreshTtlMs: 60_000 });
  const s = await ctx.auth.login('admin', ADMIN_PASSWORD);
  ctx.clock.advance(60_000);
  await unauthenticated(() => ctx.auth.refresh(s.refreshToken), 'refresh_token_expired');
});

test('unknown and malformed refresh tokens are refused', async () => {
  const ctx = await setup();
  await unauthenticated(() => ctx.auth.refresh(`drt_${'A'.repeat(43)}`), 'unknown_refresh_token');
  await unauthenticated(() => ctx.auth.refresh('drt_short'), 'malformed_token');
  const s = await ctx.auth.login('admin', ADMIN_PASSWORD);
  await unauthenticated(() => ctx.auth.refresh(s.token), 'malformed_token');
});

test('logout ends that session\u2019s refresh tokens, including rotated ones, and no other session', async () => {
  const ctx = await setup();
  const a = await ctx.auth.login('admin', ADMIN_PASSWORD);
  const b = await ctx.auth.login('admin', ADMIN_PASSWORD);
  const a2 = await ctx.auth.refresh(a.refreshToken);
  // Logging out with the session's first (still valid) access token ends the whole session.
  ctx.auth.logout(await ctx.auth.authenticate(`Bearer ${a.token}`));
  await unauthenticated(() => ctx.auth.authenticate(`Bearer ${a.token}`), 'token_revoked');
  await unauthenticated(() => ctx.auth.authenticate(`Bearer ${a2.token}`), 'token_revoked');
  await unauthenticated(() => ctx.auth.refresh(a2.refreshToken), 'refresh_token_reused');
  // Reuse detection then (rightly) ends session b too: a revoked token was presented.
  await unauthenticated(() => ctx.auth.refresh(b.refreshToken), 'refresh_token_reused');
});

test('logout leaves other sessions alone when nothing is reused', async () => {
  const ctx = await setup();
  const a = await ctx.auth.login('admin', ADMIN_PASSWORD);
  const b = await ctx.auth.login('admin', ADMIN_PASSWORD);
  ctx.auth.logout(await ctx.auth.authenticate(`Bearer ${a.token}`));
  await ctx.auth.authenticate(`Bearer ${b.token}`);
  await ctx.auth.refresh(b.refreshToken);
});

test.run();
