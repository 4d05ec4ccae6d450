import { randomBytes, randomUUID } from 'node:crypto';
import { decodeProtectedHeader, errors, jwtVerify, SignJWT } from 'jose';
import type { Clock } from '../../core/clock.ts';
import { validationError } from '../../core/errors.ts';
import type { Db } from '../../core/db.ts';
import { authFailure, type AuthFailureReason } from './failures.ts';
import { ROLES, type Role } from './types.ts';
import { AuthEpoch } from './epoch.ts';

/**
 * Short-lived access tokens: JWT, HS256 only, signed with one server secret.
 * The accepted algorithm is pinned on both sides (header check and `algorithms`), so a token
 * labelled `none`, `HS512` or `RS256` is refused before any key is used — the classic
 * algorithm-confusion attacks have nothing to work with.
 */
export const JWT_ISSUER = 'director';
export const JWT_AUDIENCE = 'director-api';
export const JWT_ALG = 'HS256';
/** Allowed clock skew between issuer and verifier, in seconds. */
export const CLOCK_TOLERANCE_S = 5;
/** Default access-token lifetime: 15 minutes. */
export const DEFAULT_TOKEN_TTL_MS = 15 * 60_000;
const SECRET_MIN_BYTES = 32;
const SECRET_ROW = 'jwt_signing_secret';
/** Tokens longer than this are refused unparsed (ours are ~400 bytes). */
const MAX_TOKEN_CHARS = 4096;

/**
 * The HS256 signing secret: `fromEnv` (`DIRECTOR_JWT_SECRET`) when given — it must be at least
 * 32 bytes — else 32 random bytes generated on first start and kept in `auth_secrets`.
 */
export function resolveSigningSecret(db: Db, fromEnv?: string): Uint8Array {
  if (fromEnv !== undefined) {
    const bytes = Buffer.from(fromEnv, 'utf8');
    if (bytes.length < SECRET_MIN_BYTES) throw validationError('DIRECTOR_JWT_SECRET', `must be at least ${SECRET_MIN_BYTES} bytes`);
    return new Uint8Array(bytes);
  }
  return db.tx(() => {
    db.sql
      .prepare('INSERT OR IGNORE INTO auth_secrets (name, value) VALUES (?, ?)')
      .run(SECRET_ROW, randomBytes(SECRET_MIN_BYTES).toString('base64url'));
    const row = db.sql.prepare('SELECT value FROM auth_secrets WHERE name = ?').get(SECRET_ROW) as { value: string };
    return new Uint8Array(Buffer.from(row.value, 'base64url'));
  });
}

/** What a verified access token says. */
export interface AccessClaims {
  userId: string;
  workspace: string;
  role: Role;
  jti: string;
  expiresAtMs: number;
}

export interface IssuedAccessToken {
  token: string;
  /** Expiry, ms since the epoch (whole seconds: JWT `exp` is in seconds). */
  expiresAtMs: number;
  jti: string;
}

export interface AccessTokenOptions {
  secret: Uint8Array;
  /** Token lifetime in ms; default 15 min. */
  ttlMs?: number;
  clock: Clock;
  /** Moved forward on every revocation (see {@link AuthEpoch}). */
  epoch?: AuthEpoch;
}

export class AccessTokens {
  readonly ttlMs: number;
  readonly #db: Db;
  readonly #secret: Uint8Array;
  readonly #verified = new Map<string, AccessClaims>();
  readonly #clock: Clock;
  readonly #epoch: AuthEpoch;
  #lastPurgeMs = 0;

  constructor(db: Db, opts: AccessTokenOptions) {
    this.#epoch = opts.epoch ?? new AuthEpoch();
    this.#db = db;
    this.#secret = opts.secret;
    this.#clock = opts.clock;
    this.ttlMs = opts.ttlMs ?? DEFAULT_TOKEN_TTL_MS;
    if (!Number.isInteger(this.ttlMs) || this.ttlMs < 1) throw validationError('tokenTtlMs', 'must be a positive integer');
  }

  /** Signs a token for `userId` acting in `workspace` with `role`. */
  async issue(input: { userId: string; workspace: string; role: Role }): Promise<IssuedAccessToken> {
    const nowMs = this.#clock.nowMs();
    const iatS = Math.floor(nowMs / 1000);
    const expS = Math.max(iatS + 1, Math.floor((nowMs + this.ttlMs) / 1000));
    const jti = randomUUID();
    const token = await new SignJWT({ wsp: input.workspace, role: input.role })
      .setProtectedHeader({ alg: JWT_ALG, typ: 'JWT' })
      .setIssuer(JWT_ISSUER)
      .setAudience(JWT_AUDIENCE)
      .setSubject(input.userId)
      .setJti(jti)
      .setIssuedAt(iatS)
      .setExpirationTime(expS)
      .sign(this.#secret);
    return { token, expiresAtMs: expS * 1000, jti };
  }

  /** Verifies signature, algorithm, issuer, audience, expiry, claims and revocation; throws a 401. */
  async verify(token: string): Promise<AccessClaims> {
    if (token.length > MAX_TOKEN_CHARS) throw authFailure('malformed_token');
    let alg: unknown;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch {
      throw authFailure('malformed_token');
    }
    if (alg !== JWT_ALG) throw authFailure('algorithm_not_allowed');
    // A token whose signature and claims were verified before is not verified again until it
    // expires (verification is an async WebCrypto round trip on every request otherwise).
    // Only exact strings that passed are cached; revocation is still checked every time.
    const hit = this.#verified.get(token);
    if (hit && hit.expiresAtMs + CLOCK_TOLERANCE_S * 1000 > this.#clock.nowMs()) {
      if (this.isRevoked(hit.jti)) throw authFailure('token_revoked');
      return hit;
    }
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, this.#secret, {
        algorithms: [JWT_ALG],
        issuer: JWT_ISSUER,
        audience: JWT_AUDIENCE,
        typ: 'JWT',
        clockTolerance: CLOCK_TOLERANCE_S,
        // Also bounds tokens minted under a longer TTL than the one configured now.
        maxTokenAge: Math.ceil(this.ttlMs / 1000),
        requiredClaims: ['sub', 'jti', 'iat', 'exp'],
        currentDate: new Date(this.#clock.nowMs()),
      }));
    } catch (err) {
      throw authFailure(reasonOf(err));
    }
    const { sub, jti, exp, wsp, role } = payload;
    if (typeof sub !== 'string' || typeof jti !== 'string' || typeof exp !== 'number' || typeof wsp !== 'string' || !isRole(role)) {
      throw authFailure('invalid_claims');
    }
    if (this.isRevoked(jti)) throw authFailure('token_revoked');
    const claims: AccessClaims = { userId: sub, workspace: wsp, role, jti, expiresAtMs: exp * 1000 };
    if (this.#verified.size >= 10_000) this.#verified.clear();
    this.#verified.set(token, claims);
    return claims;
  }

  /**
   * Revokes a token id until `expiresAtMs` (after which the token is refused for being
   * expired anyway, so the row can go). Expired rows are purged here, at most once a minute.
   */
  revoke(jti: string, expiresAtMs: number): void {
    const nowMs = this.#clock.nowMs();
    this.#db.sql
      .prepare(
        'INSERT INTO revoked_tokens (jti, expires_ms) VALUES (?, ?) ON CONFLICT (jti) DO UPDATE SET expires_ms = max(expires_ms, excluded.expires_ms)',
      )
      .run(jti, expiresAtMs);
    this.#epoch.bump();
    if (nowMs - this.#lastPurgeMs >= 60_000) {
      this.#lastPurgeMs = nowMs;
      this.#db.sql.prepare('DELETE FROM revoked_tokens WHERE expires_ms < ?').run(nowMs - CLOCK_TOLERANCE_S * 1000);
    }
  }

  /** The latest moment a token issued now (or earlier) can still be accepted. */
  maxAcceptedUntilMs(): number {
    return this.#clock.nowMs() + this.ttlMs + CLOCK_TOLERANCE_S * 1000 + 1000;
  }

  isRevoked(jti: string): boolean {
    return this.#db.sql.prepare('SELECT 1 AS x FROM revoked_tokens WHERE jti = ?').get(jti) !== undefined;
  }
}

const isRole = (v: unknown): v is Role => typeof v === 'string' && (ROLES as readonly string[]).includes(v);

function reasonOf(err: unknown): AuthFailureReason {
  if (err instanceof errors.JWTExpired) return 'token_expired';
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'aud') return 'wrong_audience';
    if (err.claim === 'iss') return 'wrong_issuer';
    return 'invalid_claims';
  }
  if (err instanceof errors.JOSEAlgNotAllowed) return 'algorithm_not_allowed';
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'bad_signature';
  return 'malformed_token';
}
