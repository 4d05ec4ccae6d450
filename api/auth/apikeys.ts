import { createHash, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../../core/clock.ts';
import { conflict, notFound, validationError } from '../../core/errors.ts';
import { newId } from '../../core/ids.ts';
import type { Directory } from './directory.ts';
import { forbidden, notMember } from './failures.ts';
import { isUniqueViolation, type Db } from '../../core/db.ts';
import { ROLE_SCOPES, SCOPES, type Scope } from './types.ts';
import { AuthEpoch } from './epoch.ts';

/**
 * Scoped API keys: `dk_<8-char public prefix>_<43 chars = 32 random bytes, base64url>`.
 *
 * Only a SHA-256 digest of the key is stored. A fast hash is the right choice here, unlike
 * for passwords: the secret part has 256 bits of entropy, so there is nothing to brute-force,
 * and a slow KDF would only make every API request slower. The public prefix finds the row;
 * the digests are compared with `timingSafeEqual` (against a dummy digest when the prefix
 * is unknown, so unknown and wrong keys take the same path). The full key exists only in
 * the return value of {@link ApiKeys.create} and {@link ApiKeys.rotate}.
 */
const KEY_RE = /^dk_([a-z0-9]{8})_([A-Za-z0-9_-]{43})$/;
const PREFIX_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
const LAST_USED_RESOLUTION_MS = 60_000;
const DUMMY_DIGEST = createHash('sha256').update('dk_00000000_unknown-prefix').digest();
const NAME_MAX_CHARS = 100;

const digestOf = (key: string): Buffer => createHash('sha256').update(key).digest();

/** A key as listed: never the secret or its digest. */
export interface ApiKeyInfo {
  id: string;
  /** Public, non-secret part shown to identify the key: `dk_abcd1234`. */
  prefix: string;
  name: string;
  /** The user who created the key; the key never has more power than they do. */
  userId: string;
  workspace: string;
  scopes: Scope[];
  createdMs: number;
  expiresAtMs: number | null;
  lastUsedMs: number | null;
  revokedMs: number | null;
  revoked: boolean;
  rotatedFrom: string | null;
}

/** Returned once, at creation or rotation: `key` is the full secret and is not stored. */
export interface CreatedApiKey extends ApiKeyInfo {
  key: string;
}

/** What a valid presented key stands for. */
export interface KeyIdentity {
  keyId: string;
  userId: string;
  workspace: string;
  scopes: Scope[];
  /** Null: never expires. */
  expiresAtMs: number | null;
}

export interface CreateKeyInput {
  userId: string;
  workspace: string;
  name: string;
  scopes: readonly string[];
  /** Absolute expiry (ms since the epoch); omitted or null: never expires. */
  expiresAtMs?: number | null;
}

/** Restricts revoke/rotate/list to one owner's keys (for callers without the admin scope). */
export interface OwnerFilter {
  userId?: string;
}

interface KeyRow {
  id: string;
  prefix: string;
  digest: string;
  user_id: string;
  workspace_id: string;
  name: string;
  scopes: string;
  created_ms: number;
  expires_ms: number | null;
  revoked_ms: number | null;
  last_used_ms: number | null;
  rotated_from: string | null;
}

const toInfo = (r: KeyRow): ApiKeyInfo => ({
  id: r.id,
  prefix: `dk_${r.prefix}`,
  name: r.name,
  userId: r.user_id,
  workspace: r.workspace_id,
  scopes: JSON.parse(r.scopes) as Scope[],
  createdMs: r.created_ms,
  expiresAtMs: r.expires_ms,
  lastUsedMs: r.last_used_ms,
  revokedMs: r.revoked_ms,
  revoked: r.revoked_ms !== null,
  rotatedFrom: r.rotated_from,
});

/** Validates scope names (400 naming `scopes[i]`), then that each is within `allowed` (403 naming the scope). */
export function checkScopes(scopes: unknown, allowed: readonly Scope[]): Scope[] {
  if (!Array.isArray(scopes) || scopes.length === 0) throw validationError('scopes', 'must be a non-empty array of scope names');
  const out: Scope[] = [];
  scopes.forEach((s: unknown, i) => {
    if (typeof s !== 'string' || !(SCOPES as readonly string[]).includes(s))
      throw validationError(`scopes[${i}]`, `unknown scope; expected one of ${SCOPES.join(', ')}`);
    if (!out.includes(s as Scope)) out.push(s as Scope);
  });
  for (const s of out) {
    if (!allowed.includes(s)) throw forbidden(`cannot grant scope ${s}: it exceeds your own permissions`, { scope: s });
  }
  return out;
}

function checkName(name: unknown): string {
  if (typeof name !== 'string' || name.trim() === '' || [...name].length > NAME_MAX_CHARS || /[\u0000-\u001f\u007f]/.test(name)) {
    throw validationError('name', `must be 1-${NAME_MAX_CHARS} printable characters`);
  }
  return name.trim();
}

export class ApiKeys {
  readonly #db: Db;
  readonly #directory: Directory;
  readonly #clock: Clock;
  readonly #epoch: AuthEpoch;

  constructor(db: Db, directory: Directory, clock: Clock, epoch = new AuthEpoch()) {
    this.#db = db;
    this.#directory = directory;
    this.#clock = clock;
    this.#epoch = epoch;
  }

  /** Creates a key. Scopes must be within the creator's role in `workspace`. */
  create(input: CreateKeyInput): CreatedApiKey {
    const name = checkName(input.name);
    const role = this.#directory.roleOf(input.userId, input.workspace);
    if (!role) throw notMember();
    const scopes = checkScopes(input.scopes, ROLE_SCOPES[role]);
    const nowMs = this.#clock.nowMs();
    const expiresAtMs = input.expiresAtMs ?? null;
    if (expiresAtMs !== null && (!Number.isSafeInteger(expiresAtMs) || expiresAtMs <= nowMs))
      throw validationError('expiresAtMs', 'must be a time in the future (ms since the epoch)');
    return this.#insert({ userId: input.userId, workspace: input.workspace, name, scopes, expiresAtMs, rotatedFrom: null });
  }

  list(workspace: string, filter: OwnerFilter = {}): ApiKeyInfo[] {
    const rows = filter.userId
      ? this.#db.sql
          .prepare('SELECT * FROM api_keys WHERE workspace_id = ? AND user_id = ? ORDER BY created_ms DESC, rowid DESC')
          .all(workspace, filter.userId)
      : this.#db.sql.prepare('SELECT * FROM api_keys WHERE workspace_id = ? ORDER BY created_ms DESC, rowid DESC').all(workspace);
    return (rows as unknown as KeyRow[]).map(toInfo);
  }

  /** 404 for a key of another workspace (or another owner, with a filter), as for one that does not exist. */
  get(workspace: string, id: string, filter: OwnerFilter = {}): ApiKeyInfo {
    return toInfo(this.#row(workspace, id, filter));
  }

  /** Revokes a key. Idempotent: revoking a revoked key returns it unchanged. */
  revoke(workspace: string, id: string, filter: OwnerFilter = {}): ApiKeyInfo {
    return this.#db.tx(() => {
      const row = this.#row(workspace, id, filter);
      if (row.revoked_ms === null) this.#db.sql.prepare('UPDATE api_keys SET revoked_ms = ? WHERE id = ?').run(this.#clock.nowMs(), id);
      this.#epoch.bump();
      return toInfo(this.#row(workspace, id, filter));
    });
  }

  /**
   * Replaces a key with a new secret: same name, scopes and expiry; the old key is revoked at
   * once. The scopes are re-checked against the creator's current role.
   */
  rotate(workspace: string, id: string, filter: OwnerFilter = {}): CreatedApiKey {
    return this.#db.tx(() => {
      const row = this.#row(workspace, id, filter);
      const nowMs = this.#clock.nowMs();
      if (row.revoked_ms !== null) throw conflict(`API key ${id} is revoked and cannot be rotated`, { id });
      if (row.expires_ms !== null && row.expires_ms <= nowMs) throw conflict(`API key ${id} has expired and cannot be rotated`, { id });
      const role = this.#directory.roleOf(row.user_id, workspace);
      if (!role) throw notMember();
      const scopes = checkScopes(JSON.parse(row.scopes), ROLE_SCOPES[role]);
      this.#db.sql.prepare('UPDATE api_keys SET revoked_ms = ? WHERE id = ?').run(nowMs, id);
      this.#epoch.bump();
      return this.#insert({ userId: row.user_id, workspace, name: row.name, scopes, expiresAtMs: row.expires_ms, rotatedFrom: id });
    });
  }

  /** The identity behind a presented key, or null when it is unknown, wrong, revoked or expired. */
  authenticate(presented: string): KeyIdentity | null {
    const m = KEY_RE.exec(presented);
    if (!m) return null;
    const row = this.#db.sql.prepare('SELECT * FROM api_keys WHERE prefix = ?').get(m[1]!) as KeyRow | undefined;
    const expected = row ? Buffer.from(row.digest, 'hex') : DUMMY_DIGEST;
    const match = timingSafeEqual(digestOf(presented), expected.length === 32 ? expected : DUMMY_DIGEST);
    if (!row || !match) return null;
    const nowMs = this.#clock.nowMs();
    if (row.revoked_ms !== null) return null;
    if (row.expires_ms !== null && row.expires_ms <= nowMs) return null;
    // At most one write per key per minute, so busy keys do not turn every read into a write.
    this.#db.sql
      .prepare('UPDATE api_keys SET last_used_ms = ? WHERE id = ? AND (last_used_ms IS NULL OR last_used_ms <= ?)')
      .run(nowMs, row.id, nowMs - LAST_USED_RESOLUTION_MS);
    return {
      keyId: row.id,
      userId: row.user_id,
      workspace: row.workspace_id,
      scopes: JSON.parse(row.scopes) as Scope[],
      expiresAtMs: row.expires_ms,
    };
  }

  #row(workspace: string, id: string, filter: OwnerFilter): KeyRow {
    const row = this.#db.sql.prepare('SELECT * FROM api_keys WHERE id = ? AND workspace_id = ?').get(id, workspace) as KeyRow | undefined;
    if (!row || (filter.userId !== undefined && row.user_id !== filter.userId)) throw notFound('API key', id);
    return row;
  }

  #insert(k: {
    userId: string;
    workspace: string;
    name: string;
    scopes: Scope[];
    expiresAtMs: number | null;
    rotatedFrom: string | null;
  }): CreatedApiKey {
    const id = newId('key');
    const createdMs = this.#clock.nowMs();
    for (let attempt = 0; ; attempt++) {
      let prefix = '';
      for (let i = 0; i < 8; i++) prefix += PREFIX_ALPHABET[randomInt(PREFIX_ALPHABET.length)];
      const key = `dk_${prefix}_${randomBytes(32).toString('base64url')}`;
      try {
        this.#db.sql
          .prepare(
            'INSERT INTO api_keys (id, prefix, digest, user_id, workspace_id, name, scopes, created_ms, expires_ms, rotated_from) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
          )
          .run(
            id,
            prefix,
            digestOf(key).toString('hex'),
            k.userId,
            k.workspace,
            k.name,
            JSON.stringify(k.scopes),
            createdMs,
            k.expiresAtMs,
            k.rotatedFrom,
          );
      } catch (err) {
        // 36^8 prefixes: a clash is rare; try a fresh one.
        if (isUniqueViolation(err) && attempt < 4) continue;
        throw err;
      }
      return {
        id,
        prefix: `dk_${prefix}`,
        name: k.name,
        userId: k.userId,
        workspace: k.workspace,
        scopes: k.scopes,
        createdMs,
        expiresAtMs: k.expiresAtMs,
        lastUsedMs: null,
        revokedMs: null,
        revoked: false,
        rotatedFrom: k.rotatedFrom,
        key,
      };
    }
  }
}
