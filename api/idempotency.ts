import { createHash } from 'node:crypto';
import { systemClock, type Clock } from '../core/clock.ts';
import { conflict, DirectorError, validationError } from '../core/errors.ts';
import type { StatementSync } from 'node:sqlite';
import type { Db } from '../core/db.ts';

/**
 * `Idempotency-Key` on creating POSTs: the first request with a key runs; a retry with the
 * same key and the same request gets the first result again instead of creating twice.
 *
 * The API layer, for a request carrying the header:
 *  1. `key = parseIdempotencyKey(header)`, `fp = fingerprint(method, path, body)`;
 *  2. `begin(...)`: on `replay`, send the stored status and body (with {@link REPLAY_HEADER});
 *     on `new`, run the handler;
 *  3. then `complete(...)` with what it sent, or `abandon(...)` if the handler threw.
 * `complete`/`abandon` must be called only after a `begin` that returned `new`.
 */
export const IDEMPOTENCY_HEADER = 'Idempotency-Key';
/** Set to `true` on a replayed response so a client can tell it did not run again. */
export const REPLAY_HEADER = 'Idempotent-Replayed';
export const DEFAULT_IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;

export type BeginResult = { kind: 'new' } | { kind: 'replay'; statusCode: number; body: unknown };

export interface IdempotencyOptions {
  /** How long a key is remembered from its first use; default 24 h. */
  ttlMs?: number;
  clock?: Clock;
}

// Printable ASCII; no space at either end, since HTTP strips it from header values and the
// key a client meant could never arrive.
const KEY_FORMAT = /^[\x21-\x7e](?:[\x20-\x7e]{0,253}[\x21-\x7e])?$/;

/**
 * Checks a raw `Idempotency-Key` header value (Node gives a string, or an array when the
 * header was repeated): 1–255 printable ASCII characters. Throws 400 naming the header.
 */
export function parseIdempotencyKey(value: unknown): string {
  if (Array.isArray(value)) throw validationError(IDEMPOTENCY_HEADER, 'must be sent once');
  if (typeof value !== 'string' || !KEY_FORMAT.test(value)) {
    throw validationError(IDEMPOTENCY_HEADER, 'must be 1-255 printable ASCII characters');
  }
  return value;
}

/** JSON with object keys sorted at every depth, so `{a,b}` and `{b,a}` serialise alike. */
export function canonicalJson(value: unknown): string {
  if (value !== null && typeof value === 'object' && typeof (value as { toJSON?: unknown }).toJSON === 'function') {
    return canonicalJson((value as { toJSON: () => unknown }).toJSON());
  }
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v) || 'null').join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const parts: string[] = [];
    for (const k of Object.keys(value).sort()) {
      const v = canonicalJson((value as Record<string, unknown>)[k]);
      if (v) parts.push(`${JSON.stringify(k)}:${v}`);
    }
    return `{${parts.join(',')}}`;
  }
  // undefined, functions and symbols have no JSON form: '' (skipped in objects, null in arrays).
  return JSON.stringify(value) ?? '';
}

/**
 * SHA-256 (hex) of the request a key was used for. Pass the concrete request path
 * (`/v1/sandboxes/sbx_1/execute`), not the route template, so the same key sent to a
 * different resource counts as a different request.
 */
export function fingerprint(method: string, route: string, body: unknown): string {
  return createHash('sha256')
    .update(`${method.toUpperCase()}\n${route}\n${canonicalJson(body)}`)
    .digest('hex');
}

interface Row {
  fingerprint: string;
  state: 'running' | 'done';
  status_code: number | null;
  response: string | null;
}

/** Only these results are kept for replay; anything else (5xx, 429) deletes the key so a retry runs. */
const replayable = (status: number): boolean => (status >= 200 && status < 300) || (status >= 400 && status < 500 && status !== 429);

export class IdempotencyStore {
  readonly ttlMs: number;
  private readonly db: Db;
  private readonly clock: Clock;
  private readonly claim: StatementSync;
  private readonly select: StatementSync;
  private readonly finish: StatementSync;
  private readonly remove: StatementSync;
  private readonly purge: StatementSync;
  private readonly releaseAll: StatementSync;

  constructor(db: Db, opts: IdempotencyOptions = {}) {
    this.ttlMs = opts.ttlMs ?? DEFAULT_IDEMPOTENCY_TTL_MS;
    if (!Number.isSafeInteger(this.ttlMs) || this.ttlMs < 1)
      throw new RangeError(`idempotency: ttlMs must be a positive integer, got ${this.ttlMs}`);
    this.db = db;
    this.clock = opts.clock ?? systemClock;
    // Inserts a new key, or takes over one whose time is up; leaves a live key alone.
    this.claim = db.sql.prepare(`INSERT INTO idempotency_keys
        (workspace, key, fingerprint, method, route, state, status_code, response, created_ms, expires_ms)
      VALUES (?, ?, ?, ?, ?, 'running', NULL, NULL, ?, ?)
      ON CONFLICT (workspace, key) DO UPDATE SET
        fingerprint = excluded.fingerprint, method = excluded.method, route = excluded.route, state = 'running',
        status_code = NULL, response = NULL, created_ms = excluded.created_ms, expires_ms = excluded.expires_ms
      WHERE idempotency_keys.expires_ms <= excluded.created_ms`);
    this.select = db.sql.prepare('SELECT fingerprint, state, status_code, response FROM idempotency_keys WHERE workspace = ? AND key = ?');
    this.finish = db.sql.prepare(`UPDATE idempotency_keys SET state = 'done', status_code = ?, response = ?
      WHERE workspace = ? AND key = ? AND state = 'running'`);
    this.remove = db.sql.prepare(`DELETE FROM idempotency_keys WHERE workspace = ? AND key = ? AND state = 'running'`);
    this.purge = db.sql.prepare('DELETE FROM idempotency_keys WHERE expires_ms <= ?');
    this.releaseAll = db.sql.prepare(`DELETE FROM idempotency_keys WHERE state = 'running'`);
  }

  /**
   * Claims `key` in `workspace` for a request with `fingerprint` (see {@link fingerprint}).
   * Returns `new` (run it), or `replay` with the first request's result. Throws 400 for a
   * malformed key, 422 when the key was used for a different request, 409 while the first
   * request with the key is still running (retry later).
   *
   * Atomic: node:sqlite is synchronous, so this whole sequence runs without yielding to the
   * event loop and two requests in this process cannot interleave inside it; the
   * transaction (BEGIN IMMEDIATE) covers another process sharing the file.
   */
  begin(workspace: string, key: string, fp: string, method: string, route: string): BeginResult {
    parseIdempotencyKey(key);
    const nowMs = this.clock.nowMs();
    return this.db.tx((): BeginResult => {
      const claimed = this.claim.run(workspace, key, fp, method.toUpperCase(), route, nowMs, nowMs + this.ttlMs);
      if (Number(claimed.changes) === 1) return { kind: 'new' };
      const row = this.select.get(workspace, key) as Row | undefined;
      // Unreachable: the conflicting row is live and nothing can delete it mid-transaction.
      if (!row) throw new DirectorError('INTERNAL_ERROR', 'idempotency key vanished while being claimed');
      if (row.fingerprint !== fp) {
        throw new DirectorError('UNPROCESSABLE', `${IDEMPOTENCY_HEADER} was already used for a different request`, {
          field: IDEMPOTENCY_HEADER,
          issue: 'reused with a different request',
        });
      }
      if (row.state === 'running') {
        throw conflict(`A request with this ${IDEMPOTENCY_HEADER} is still in progress; retry later`, { field: IDEMPOTENCY_HEADER });
      }
      return { kind: 'replay', statusCode: row.status_code ?? 200, body: row.response === null ? null : JSON.parse(row.response) };
    });
  }

  /**
   * Records the result of the request that `begin` let run. 2xx and 4xx (but 429) results
   * are kept for replay and `true` is returned; any other status abandons the key. `body`
   * must be JSON-serialisable; it is replayed as stored.
   */
  complete(workspace: string, key: string, statusCode: number, responseBody: unknown): boolean {
    if (!replayable(statusCode)) {
      this.abandon(workspace, key);
      return false;
    }
    const json = (JSON.stringify(responseBody) as string | undefined) ?? null;
    return Number(this.finish.run(statusCode, json, workspace, key).changes) === 1;
  }

  /** Forgets a key whose request failed (5xx or threw) so a retry runs afresh. Completed keys are kept. */
  abandon(workspace: string, key: string): void {
    this.remove.run(workspace, key);
  }

  /** Deletes expired keys (call periodically); returns how many. */
  purgeExpired(): number {
    return Number(this.purge.run(this.clock.nowMs()).changes);
  }

  /**
   * Deletes every `running` key; call once at startup. A key left running by a process
   * that died can never complete and would otherwise answer 409 until it expires.
   * (Director runs one API process per store.)
   */
  releaseRunning(): number {
    return Number(this.releaseAll.run().changes);
  }
}
