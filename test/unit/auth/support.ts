import { createHmac } from 'node:crypto';
import * as assert from 'uvu/assert';
import { isDirectorError, type DirectorError } from '../../../core/errors.ts';
import { openDb, type Db } from '../../../core/db.ts';
import { AuthService, type AuthServiceOptions } from '../../../api/auth/service.ts';
import { AUTH_FAILED_MESSAGE } from '../../../api/auth/failures.ts';
import type { Role } from '../../../api/auth/types.ts';

export const SECRET = 'unit-test-signing-secret-0123456789abcdef';
export const ADMIN_PASSWORD = 'correct horse battery staple';
export const USER_PASSWORD = 'another long password';

export class ManualClock {
  ms = Date.UTC(2030, 0, 1);
  nowMs(): number {
    return this.ms;
  }
  advance(ms: number): void {
    this.ms += ms;
  }
}

export interface Ctx {
  db: Db;
  clock: ManualClock;
  auth: AuthService;
  /** Id of the bootstrapped `default` workspace. */
  ws: string;
}

/** A fresh in-memory store with the admin bootstrapped (password {@link ADMIN_PASSWORD}). */
export async function setup(opts: AuthServiceOptions = {}): Promise<Ctx> {
  const db = openDb('/nonexistent', ':memory:');
  const clock = new ManualClock();
  const auth = new AuthService(db, { jwtSecret: SECRET, clock, ...opts });
  await auth.bootstrapAdmin(ADMIN_PASSWORD);
  return { db, clock, auth, ws: auth.directory.findWorkspace('default')!.id };
}

/** Creates a user with {@link USER_PASSWORD} in `workspace` and returns its id. */
export async function addUser(ctx: Ctx, username: string, role: Role, workspace = ctx.ws): Promise<string> {
  return (await ctx.auth.createUser({ username, password: USER_PASSWORD, workspace, role })).userId;
}

export async function bearerFor(ctx: Ctx, username: string, password = USER_PASSWORD, workspace?: string): Promise<string> {
  return `Bearer ${(await ctx.auth.login(username, password, workspace)).token}`;
}

/** Awaits `fn` and asserts it throws a DirectorError with `code`; returns the error. */
export async function rejects(fn: () => unknown, code: DirectorError['code']): Promise<DirectorError> {
  try {
    await fn();
  } catch (err) {
    if (!isDirectorError(err)) throw err;
    assert.is(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`);
    return err;
  }
  assert.unreachable(`expected ${code}, but nothing was thrown`);
  throw new Error('unreachable');
}

/** Asserts a 401 with the one generic message and the given `details.reason`. */
export async function unauthenticated(fn: () => unknown, reason: string): Promise<void> {
  const err = await rejects(fn, 'AUTHENTICATION_ERROR');
  assert.is(err.message, AUTH_FAILED_MESSAGE);
  assert.is(err.details?.reason, reason);
}

const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');

/** Hand-made JWT: `sign` receives the signing input and returns the raw signature. */
export function craftJwt(header: object, payload: object, sign: (input: string) => Buffer | string): string {
  const input = `${b64(header)}.${b64(payload)}`;
  const sig = sign(input);
  return `${input}.${typeof sig === 'string' ? sig : sig.toString('base64url')}`;
}

export const hmac =
  (alg: 'sha256' | 'sha512', secret: string) =>
  (input: string): Buffer =>
    createHmac(alg, secret).update(input).digest();

/** Valid claims for `userId` in `workspace` at `nowMs` (as issued by the service). */
export function claims(userId: string, workspace: string, nowMs: number, over: Record<string, unknown> = {}): Record<string, unknown> {
  const iat = Math.floor(nowMs / 1000);
  return {
    iss: 'director',
    aud: 'director-api',
    sub: userId,
    jti: `jti-${Math.random()}`,
    iat,
    exp: iat + 600,
    wsp: workspace,
    role: 'admin',
    ...over,
  };
}
