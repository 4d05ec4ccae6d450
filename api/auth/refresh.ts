import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { Clock } from '../../core/clock.ts';
import { validationError } from '../../core/errors.ts';
import type { Db } from '../../core/db.ts';
import type { AuthFailureReason } from './failures.ts';

/**
 * Refresh tokens: opaque `drt_` + 32 random bytes (base64url), stored only as a SHA-256
 * digest (high-entropy, so a fast hash is enough and lookup by digest leaks nothing useful).
 *
 * Each login starts a *family* (one session). A refresh token is single-use: using it revokes
 * it and issues the next one in the same family. Presenting an already-used token means it
 * was copied, so every refresh token of that user is revoked (reuse detection), along with
 * the access tokens issued alongside them.
 */
export const DEFAULT_REFRESH_TTL_MS = 7 * 24 * 3_600_000;
const TOKEN_RE = /^drt_[A-Za-z0-9_-]{43}$/;

const digestOf = (token: string): string => createHash('sha256').update(token).digest('hex');

export interface IssuedRefreshToken {
  refreshToken: string;
  refreshExpiresAtMs: number;
  family: string;
}

export interface RefreshSession {
  userId: string;
  workspace: string;
  family: string;
}

/** Outcome of presenting a refresh token. On `reused`, the user's tokens are already revoked. */
export type ConsumeResult = { ok: true; session: RefreshSession } | { ok: false; reason: AuthFailureReason; revokedAccessJtis: string[] };

export class RefreshTokens {
  readonly ttlMs: number;
  readonly #db: Db;
  readonly #clock: Clock;

  constructor(db: Db, opts: { ttlMs?: number; clock: Clock }) {
    this.#db = db;
    this.#clock = opts.clock;
    this.ttlMs = opts.ttlMs ?? DEFAULT_REFRESH_TTL_MS;
    if (!Number.isInteger(this.ttlMs) || this.ttlMs < 1) throw validationError('refreshTtlMs', 'must be a positive integer');
  }

  /**
   * Issues a refresh token for a session (a new family unless `family` is given), linked to
   * the access token `accessJti` issued with it so logout can find the session.
   */
  issue(input: { userId: string; workspace: string; accessJti: string; family?: string }): IssuedRefreshToken {
    const nowMs = this.#clock.nowMs();
    const refreshToken = `drt_${randomBytes(32).toString('base64url')}`;
    const family = input.family ?? randomUUID();
    const expiresMs = nowMs + this.ttlMs;
    this.#db.tx(() => {
      // Expired rows are useless, even for reuse detection: an expired token is refused anyway.
      this.#db.sql.prepare('DELETE FROM refresh_tokens WHERE expires_ms < ? AND user_id = ?').run(nowMs, input.userId);
      this.#db.sql
        .prepare(
          'INSERT INTO refresh_tokens (id, digest, user_id, workspace_id, family, access_jti, created_ms, expires_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
        )
        .run(randomUUID(), digestOf(refreshToken), input.userId, input.workspace, family, input.accessJti, nowMs, expiresMs);
    });
    return { refreshToken, refreshExpiresAtMs: expiresMs, family };
  }

  /** Uses a refresh token once. Never throws for a bad token: the caller turns the reason into a 401. */
  consume(presented: string): ConsumeResult {
    if (!TOKEN_RE.test(presented)) return { ok: false, reason: 'malformed_token', revokedAccessJtis: [] };
    const nowMs = this.#clock.nowMs();
    return this.#db.tx((): ConsumeResult => {
      const row = this.#db.sql
        .prepare('SELECT id, user_id, workspace_id, family, expires_ms, revoked_ms FROM refresh_tokens WHERE digest = ?')
        .get(digestOf(presented)) as
        { id: string; user_id: string; workspace_id: string; family: string; expires_ms: number; revoked_ms: number | null } | undefined;
      if (!row) return { ok: false, reason: 'unknown_refresh_token', revokedAccessJtis: [] };
      if (row.revoked_ms !== null) {
        return { ok: false, reason: 'refresh_token_reused', revokedAccessJtis: this.revokeUser(row.user_id) };
      }
      if (row.expires_ms <= nowMs) return { ok: false, reason: 'refresh_token_expired', revokedAccessJtis: [] };
      this.#db.sql.prepare('UPDATE refresh_tokens SET revoked_ms = ? WHERE id = ?').run(nowMs, row.id);
      return { ok: true, session: { userId: row.user_id, workspace: row.workspace_id, family: row.family } };
    });
  }

  /**
   * Ends the session the access token `accessJti` belongs to. Returns the ids of the access
   * tokens issued in that session, for the caller to revoke.
   */
  revokeSessionOf(accessJti: string): string[] {
    return this.#db.tx(() => {
      const row = this.#db.sql.prepare('SELECT family FROM refresh_tokens WHERE access_jti = ?').get(accessJti) as
        { family: string } | undefined;
      if (!row) return [];
      return this.#revokeWhere('family = ?', row.family);
    });
  }

  /** Revokes every refresh token of a user; returns the access-token ids issued with them. */
  revokeUser(userId: string): string[] {
    return this.#db.tx(() => this.#revokeWhere('user_id = ?', userId));
  }

  #revokeWhere(where: 'family = ?' | 'user_id = ?', value: string): string[] {
    const nowMs = this.#clock.nowMs();
    const jtis = this.#db.sql
      .prepare(`SELECT access_jti FROM refresh_tokens WHERE ${where} AND access_jti IS NOT NULL AND expires_ms > ?`)
      .all(value, nowMs) as { access_jti: string }[];
    this.#db.sql.prepare(`UPDATE refresh_tokens SET revoked_ms = ? WHERE ${where} AND revoked_ms IS NULL`).run(nowMs, value);
    return jtis.map((r) => r.access_jti);
  }
}
