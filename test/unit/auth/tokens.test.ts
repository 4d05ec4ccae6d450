import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SignJWT } from 'jose';
import { openDb } from '../../../core/db.ts';
import { AuthService } from '../../../api/auth/service.ts';
import { SCOPES } from '../../../api/auth/types.ts';
import {
  ADMIN_PASSWORD,
  addUser,
  bearerFor,
  claims,
  craftJwt,
  hmac,
  ManualClock,
  rejects,
  SECRET,
  setup,
  unauthenticated,
} from './support.ts';

const adminToken = async (ctx: Awaited<ReturnType<typeof setup>>) => (await ctx.auth.login('admin', ADMIN_PASSWORD)).token;
const adminId = (ctx: Awaited<ReturnType<typeof setup>>) => ctx.auth.directory.userByName('admin')!.id;

test('a valid token yields a user principal with the role scopes and the token id', async () => {
  const ctx = await setup();
  const p = await ctx.auth.authenticate(`Bearer ${await adminToken(ctx)}`);
  assert.is(p.kind, 'user');
  assert.is(p.username, 'admin');
  assert.is(p.userId, adminId(ctx));
  assert.is(p.workspace, ctx.ws);
  assert.is(p.role, 'admin');
  assert.is(p.keyId, null);
  assert.ok(p.tokenId);
  assert.equal([...p.scopes].sort(), [...SCOPES].sort());
});

test('issued tokens are HS256 with iss, aud, sub, jti, iat, exp, wsp and role', async () => {
  const ctx = await setup();
  const [h, pl] = (await adminToken(ctx))
    .split('.')
    .slice(0, 2)
    .map((s) => JSON.parse(Buffer.from(s, 'base64url').toString()) as Record<string, unknown>);
  assert.equal(h, { alg: 'HS256', typ: 'JWT' });
  assert.is(pl!.iss, 'director');
  assert.is(pl!.aud, 'director-api');
  assert.is(pl!.sub, adminId(ctx));
  assert.is(pl!.wsp, ctx.ws);
  assert.is(pl!.role, 'admin');
  assert.is(pl!.exp, (pl!.iat as number) + 900);
  assert.type(pl!.jti, 'string');
});

test('refuses an alg:none token with valid claims and an empty signature', async () => {
  const ctx = await setup();
  const c = claims(adminId(ctx), ctx.ws, ctx.clock.ms);
  await unauthenticated(
    () => ctx.auth.authenticate(`Bearer ${craftJwt({ alg: 'none', typ: 'JWT' }, c, () => '')}`),
    'algorithm_not_allowed',
  );
  await unauthenticated(
    () => ctx.auth.authenticate(`Bearer ${craftJwt({ alg: 'NONE', typ: 'JWT' }, c, () => '')}`),
    'algorithm_not_allowed',
  );
});

test('a crafted HS256 token with valid claims and the right secret is accepted (the crafting is sound)', async () => {
  const ctx = await setup();
  const tok = craftJwt({ alg: 'HS256', typ: 'JWT' }, claims(adminId(ctx), ctx.ws, ctx.clock.ms), hmac('sha256', SECRET));
  assert.is((await ctx.auth.authenticate(`Bearer ${tok}`)).username, 'admin');
});

test('refuses a token signed with a different secret', async () => {
  const ctx = await setup();
  const tok = craftJwt(
    { alg: 'HS256', typ: 'JWT' },
    claims(adminId(ctx), ctx.ws, ctx.clock.ms),
    hmac('sha256', 'another-secret-that-is-long-enough-0000'),
  );
  await unauthenticated(() => ctx.auth.authenticate(`Bearer ${tok}`), 'bad_signature');
});

test('algorithm confusion: HS512 and RS256 labels are refused even when signed with the right secret', async () => {
  const ctx = await setup();
  const c = claims(adminId(ctx), ctx.ws, ctx.clock.ms);
  await unauthenticated(
    () => ctx.auth.authenticate(`Bearer ${craftJwt({ alg: 'HS512', typ: 'JWT' }, c, hmac('sha512', SECRET))}`),
    'algorithm_not_allowed',
  );
  await unauthenticated(
    () => ctx.auth.authenticate(`Bearer ${craftJwt({ alg: 'RS256', typ: 'JWT' }, c, hmac('sha256', SECRET))}`),
    'algorithm_not_allowed',
  );
  await unauthenticated(
    () => ctx.auth.authenticate(`Bearer ${craftJwt({ typ: 'JWT' }, c, hmac('sha256', SECRET))}`),
    'algorithm_not_allowed',
  );
});

test('a tampered payload (developer claiming admin) fails the signature check', async () => {
  const ctx = await setup();
  await addUser(ctx, 'dev', 'developer');
  const [h, pl, sig] = (await bearerFor(ctx, 'dev')).slice(7).split('.');
  const body = JSON.parse(Buffer.from(pl!, 'base64url').toString()) as Record<string, unknown>;
  const forged = `${h}.${Buffer.from(JSON.stringify({ ...body, role: 'admin', sub: adminId(ctx) })).toString('base64url')}.${sig}`;
  await unauthenticated(() => ctx.auth.authenticate(`Bearer ${forged}`), 'bad_signature');
});

test('expired tokens are refused after the 5 s clock tolerance, accepted within it', async () => {
  const ctx = await setup({ tokenTtlMs: 60_000 });
  const tok = await adminToken(ctx);
  ctx.clock.advance(60_000 + 3_000);
  await ctx.auth.authenticate(`Bearer ${tok}`);
  ctx.clock.advance(3_000);
  await unauthenticated(() => ctx.auth.authenticate(`Bearer ${tok}`), 'token_expired');
});

test('a token older than the configured TTL is refused even if its exp says otherwise', async () => {
  const ctx = await setup({ tokenTtlMs: 60_000 });
  const c = claims(adminId(ctx), ctx.ws, ctx.clock.ms, {});
  c.exp = (c.iat as number) + 3600;
  const tok = craftJwt({ alg: 'HS256', typ: 'JWT' }, c, hmac('sha256', SECRET));
  ctx.clock.advance(120_000);
  await unauthenticated(() => ctx.auth.authenticate(`Bearer ${tok}`), 'token_expired');
});

test('wrong audience or issuer is refused', async () => {
  const ctx = await setup();
  const sign = (aud: string, iss: string) =>
    new SignJWT({ wsp: ctx.ws, role: 'admin' })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setAudience(aud)
      .setIssuer(iss)
      .setSubject(adminId(ctx))
      .setJti('j1')
      .setIssuedAt(Math.floor(ctx.clock.ms / 1000))
      .setExpirationTime(Math.floor(ctx.clock.ms / 1000) + 600)
      .sign(Buffer.from(SECRET));
  await unauthenticated(async () => ctx.auth.authenticate(`Bearer ${await sign('another-api', 'director')}`), 'wrong_audience');
  await unauthenticated(async () => ctx.auth.authenticate(`Bearer ${await sign('director-api', 'someone-else')}`), 'wrong_issuer');
});

test('tokens missing claims or carrying an unknown role are refused', async () => {
  const ctx = await setup();
  const sign = (c: Record<string, unknown>) => `Bearer ${craftJwt({ alg: 'HS256', typ: 'JWT' }, c, hmac('sha256', SECRET))}`;
  const { jti: _jti, ...noJti } = claims(adminId(ctx), ctx.ws, ctx.clock.ms);
  await unauthenticated(() => ctx.auth.authenticate(sign(noJti)), 'invalid_claims');
  await unauthenticated(() => ctx.auth.authenticate(sign(claims(adminId(ctx), ctx.ws, ctx.clock.ms, { role: 'root' }))), 'invalid_claims');
  await unauthenticated(() => ctx.auth.authenticate(sign(claims('usr_nobodynobodynobo', ctx.ws, ctx.clock.ms))), 'unknown_user');
});

test('after logout the access token is refused as revoked', async () => {
  const ctx = await setup();
  const header = `Bearer ${await adminToken(ctx)}`;
  const p = await ctx.auth.authenticate(header);
  ctx.auth.logout(p);
  await unauthenticated(() => ctx.auth.authenticate(header), 'token_revoked');
  // Another session of the same user is unaffected.
  await ctx.auth.authenticate(`Bearer ${await adminToken(ctx)}`);
});

test('missing, garbled and non-Bearer headers fail with the same message and distinct reasons', async () => {
  const ctx = await setup();
  await unauthenticated(() => ctx.auth.authenticate(undefined), 'missing_credentials');
  await unauthenticated(() => ctx.auth.authenticate('  '), 'missing_credentials');
  await unauthenticated(() => ctx.auth.authenticate(`Basic ${Buffer.from('admin:x').toString('base64')}`), 'malformed_header');
  await unauthenticated(() => ctx.auth.authenticate('Bearer'), 'malformed_header');
  await unauthenticated(() => ctx.auth.authenticate('Bearer not-a-token'), 'malformed_token');
  await unauthenticated(() => ctx.auth.authenticate('Bearer a.b.c'), 'malformed_token');
  await unauthenticated(() => ctx.auth.authenticate(`Bearer ${'a'.repeat(5000)}.b.c`), 'malformed_token');
});

test('errors never echo the presented token', async () => {
  const ctx = await setup();
  const tok = craftJwt(
    { alg: 'HS256', typ: 'JWT' },
    claims(adminId(ctx), ctx.ws, ctx.clock.ms),
    hmac('sha256', 'wrong-secret-wrong-secret-wrong-secret'),
  );
  const err = await rejects(() => ctx.auth.authenticate(`Bearer ${tok}`), 'AUTHENTICATION_ERROR');
  assert.not.ok(JSON.stringify({ m: err.message, d: err.details }).includes(tok.slice(0, 20)));
  assert.is(err.cause, undefined);
});

test('the generated signing secret is kept in the store and shared by later instances', async () => {
  const db = openDb('/nonexistent', ':memory:');
  const clock = new ManualClock();
  const a = new AuthService(db, { clock });
  await a.bootstrapAdmin(ADMIN_PASSWORD);
  const tok = (await a.login('admin', ADMIN_PASSWORD)).token;
  const b = new AuthService(db, { clock });
  assert.is((await b.authenticate(`Bearer ${tok}`)).username, 'admin');
  const secret = db.sql.prepare('SELECT value FROM auth_secrets').all() as { value: string }[];
  assert.is(secret.length, 1);
  assert.is(Buffer.from(secret[0]!.value, 'base64url').length, 32);
  // An instance with an explicit secret does not accept tokens signed with the stored one.
  const c = new AuthService(db, { clock, jwtSecret: SECRET });
  await unauthenticated(() => c.authenticate(`Bearer ${tok}`), 'bad_signature');
});

test('an explicit JWT secret shorter than 32 bytes is refused, naming the variable', async () => {
  const err = await rejects(() => new AuthService(openDb('/nonexistent', ':memory:'), { jwtSecret: 'too-short' }), 'VALIDATION_ERROR');
  assert.is(err.details?.field, 'DIRECTOR_JWT_SECRET');
});

test('revocation rows are purged once they expire', async () => {
  const ctx = await setup({ tokenTtlMs: 60_000 });
  ctx.auth.accessTokens.revoke('old', ctx.clock.ms + 1_000);
  ctx.clock.advance(10 * 60_000);
  ctx.auth.accessTokens.revoke('new', ctx.clock.ms + 60_000);
  const rows = ctx.db.sql.prepare('SELECT jti FROM revoked_tokens ORDER BY jti').all() as { jti: string }[];
  assert.equal(
    rows.map((r) => r.jti),
    ['new'],
  );
});

test.run();
