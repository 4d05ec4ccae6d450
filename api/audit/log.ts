import type { StatementSync } from 'node:sqlite';
import { isoTime, systemClock, type Clock } from '../../core/clock.ts';
import { newId } from '../../core/ids.ts';
import type { Db } from '../../core/db.ts';
import { chainHash, GENESIS_HASH, type ChainedFields, type Outcome } from './chain.ts';
import { Where } from '../../runtime/store/where.ts';

/** What a caller records; the log adds id, seq, time and the hashes. */
export interface AuditInput {
  /** `usr_x` or `key_y (usr_x)` (see `actorOf`); null when anonymous. */
  actor: string | null;
  username?: string | null;
  workspace: string | null;
  /** `METHOD /route/template`, never the raw URL. */
  action: string;
  target?: string | null;
  outcome: Outcome;
  status: number;
  requestId?: string | null;
  source?: string | null;
  userAgent?: string | null;
  /** Defaults to the log's clock. */
  tsMs?: number;
}

/** A stored entry: the chained fields (time as ISO text) and the hashes. */
export interface AuditEntry extends Omit<ChainedFields, 'tsMs'> {
  ts: string;
  prevHash: string;
  hash: string;
}

export interface AuditQuery {
  /** Absent: every entry (internal use). Else the caller's workspace; `admin` adds entries with no workspace. */
  visibleTo?: { workspace: string; admin: boolean };
  /** Exact actor, or a user id, which also matches that user's API keys (`key_y (usr_x)`). */
  actor?: string;
  action?: string;
  outcome?: Outcome;
  target?: string;
  sinceMs?: number;
  untilMs?: number;
  /** Cursor: entries with a greater seq. */
  after?: number;
  /** Default 50. */
  limit?: number;
}

export interface AuditPage {
  items: AuditEntry[];
  /** Pass as `after` for the next page; null on the last page. */
  nextCursor: number | null;
}

export type VerifyResult =
  | { ok: true; entries: number; head: string }
  | { ok: false; brokenAt: { seq: number; id: string }; reason: 'hash_mismatch' | 'prev_mismatch' | 'gap' };

interface Row {
  seq: number;
  id: string;
  ts_ms: number;
  actor: string | null;
  username: string | null;
  workspace: string | null;
  action: string;
  target: string | null;
  outcome: string;
  status: number;
  request_id: string | null;
  source: string | null;
  user_agent: string | null;
  prev_hash: string;
  hash: string;
}

const fieldsOf = (r: Row): ChainedFields => ({
  id: r.id,
  seq: r.seq,
  tsMs: r.ts_ms,
  actor: r.actor,
  username: r.username,
  workspace: r.workspace,
  action: r.action,
  target: r.target,
  outcome: r.outcome as Outcome,
  status: r.status,
  requestId: r.request_id,
  source: r.source,
  userAgent: r.user_agent,
});

const toEntry = (r: Row): AuditEntry => {
  const { tsMs, ...rest } = fieldsOf(r);
  return { ...rest, ts: isoTime(tsMs), prevHash: r.prev_hash, hash: r.hash };
};

/**
 * The tamper-evident audit log: an append-only, hash-chained table. Appends read the head and
 * insert in one `BEGIN IMMEDIATE` transaction, so writers through any connection stay chained;
 * nothing about the head is cached in memory.
 */
export class AuditLog {
  readonly #db: Db;
  readonly #clock: Clock;
  readonly #head: StatementSync;
  readonly #insert: StatementSync;
  readonly #all: StatementSync;

  constructor(db: Db, opts: { clock?: Clock } = {}) {
    this.#db = db;
    this.#clock = opts.clock ?? systemClock;
    this.#head = db.sql.prepare('SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1');
    this.#insert = db.sql.prepare(
      `INSERT INTO audit_log (seq, id, ts_ms, actor, username, workspace, action, target, outcome, status, request_id, source, user_agent, prev_hash, hash)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.#all = db.sql.prepare('SELECT * FROM audit_log ORDER BY seq');
  }

  /** Appends one entry, chained to the current head. */
  append(input: AuditInput): AuditEntry {
    return this.#db.tx(() => {
      const head = this.#head.get() as { seq: number; hash: string } | undefined;
      const prevHash = head?.hash ?? GENESIS_HASH;
      const f: ChainedFields = {
        id: newId('aud'),
        seq: (head?.seq ?? 0) + 1,
        tsMs: input.tsMs ?? this.#clock.nowMs(),
        actor: input.actor,
        username: input.username ?? null,
        workspace: input.workspace,
        action: input.action,
        target: input.target ?? null,
        outcome: input.outcome,
        status: input.status,
        requestId: input.requestId ?? null,
        source: input.source ?? null,
        userAgent: input.userAgent ?? null,
      };
      const hash = chainHash(prevHash, f);
      this.#insert.run(
        f.seq,
        f.id,
        f.tsMs,
        f.actor,
        f.username,
        f.workspace,
        f.action,
        f.target,
        f.outcome,
        f.status,
        f.requestId,
        f.source,
        f.userAgent,
        prevHash,
        hash,
      );
      const { tsMs, ...rest } = f;
      return { ...rest, ts: isoTime(tsMs), prevHash, hash };
    });
  }

  /** Entries in seq order, filtered, one page at a time. */
  list(q: AuditQuery = {}): AuditPage {
    const w = new Where()
      .add(q.visibleTo?.admin ? '(workspace = ? OR workspace IS NULL)' : 'workspace = ?', q.visibleTo?.workspace)
      // An actor filter also matches that user's API keys (`key_x (usr_y)`).
      .add(`(actor = ? OR (instr(actor, ' (') > 0 AND substr(actor, instr(actor, ' (')) = ' (' || ? || ')'))`, q.actor, q.actor)
      .add('action = ?', q.action)
      .add('outcome = ?', q.outcome)
      .add('target = ?', q.target)
      .add('ts_ms >= ?', q.sinceMs)
      .add('ts_ms <= ?', q.untilMs)
      .add('seq > ?', q.after);
    const limit = q.limit ?? 50;
    const sql = `SELECT * FROM audit_log${w.sql} ORDER BY seq LIMIT ?`;
    // One extra row tells whether another page exists without a second query.
    const rows = this.#db.sql.prepare(sql).all(...w.args, limit + 1) as unknown as Row[];
    const more = rows.length > limit;
    const items = rows.slice(0, limit).map(toEntry);
    return { items, nextCursor: more ? items[items.length - 1]!.seq : null };
  }

  /**
   * Walks the whole chain in seq order and reports the first break: a missing seq (`gap`), a
   * `prevHash` that is not the previous entry's hash (`prev_mismatch`, e.g. rows reordered or
   * a row's hash rewritten), or a hash that does not match the row's fields (`hash_mismatch`,
   * e.g. a field edited). Truncating the newest entries is not detectable from the table
   * alone: compare `head` with a copy kept elsewhere.
   */
  verify(): VerifyResult {
    let prevHash = GENESIS_HASH;
    let expected = 1;
    for (const raw of this.#all.iterate()) {
      const r = raw as unknown as Row;
      const at = { seq: r.seq, id: r.id };
      if (r.seq !== expected) return { ok: false, brokenAt: at, reason: 'gap' };
      if (r.prev_hash !== prevHash) return { ok: false, brokenAt: at, reason: 'prev_mismatch' };
      if (chainHash(prevHash, fieldsOf(r)) !== r.hash) return { ok: false, brokenAt: at, reason: 'hash_mismatch' };
      prevHash = r.hash;
      expected++;
    }
    return { ok: true, entries: expected - 1, head: prevHash };
  }
}
