import { isoTime, type Clock } from '../../core/clock.ts';
import { validationError } from '../../core/errors.ts';
import { SEVERITIES, toEvent, type Row, type SecurityEvent, type Severity } from '../events.ts';
import type { Db } from '../../core/db.ts';
import { Where } from '../store/where.ts';

/**
 * Reading the one security event stream: filtered, cursor-paged lists, summaries over a window
 * and a full export. The cursor is the event's `seq` as a string; paging asks for `seq > cursor`
 * in seq order. Why that never misses or repeats an event under concurrent writes: `seq` is
 * assigned by SQLite in the same single INSERT statement that stores the event, while that
 * statement holds the store's write lock, so an event with a higher seq can only become visible
 * after every lower one has been committed (seq order is commit order), and AUTOINCREMENT never
 * hands a seq out twice, even after retention deletes the newest rows.
 */
export interface StreamScope {
  workspace: string;
  /** Also events that belong to no workspace (host-level: `policy_tampered`, auth failures before a workspace is known). Admins only. */
  includeGlobal: boolean;
}

export interface StreamFilter {
  sandboxId?: string;
  networkId?: string;
  types?: string[];
  /** Exactly these severities (from `severity` and/or `minSeverity`). */
  severities?: Severity[];
  sinceMs?: number;
  untilMs?: number;
}

/** Severities from `severity` (exact) and `minSeverity` (at least); both: their intersection. */
export function severitiesOf(severity?: Severity, minSeverity?: Severity): Severity[] | undefined {
  let out: Severity[] | undefined;
  if (minSeverity) out = SEVERITIES.slice(SEVERITIES.indexOf(minSeverity));
  if (severity) out = (out ?? [severity]).filter((s) => s === severity);
  return out;
}

/** Parses an ISO time (query parameter `field`) to ms. */
export function parseIso(field: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const ms = Date.parse(v);
  if (!Number.isFinite(ms)) throw validationError(field, 'must be an ISO 8601 date-time', { value: v });
  return ms;
}

/** `30m`, `24h`, `7d` ... as ms (1 minute to 90 days). */
export function parseWindow(v: string): number {
  const m = /^(\d{1,5})([smhd])$/.exec(v);
  const ms = m ? Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 's' | 'm' | 'h' | 'd'] : Number.NaN;
  if (!(ms >= 60_000 && ms <= 90 * 86_400_000))
    throw validationError('window', 'must be a duration like 30m, 24h or 7d, between 1m and 90d', { value: v });
  return ms;
}

function where(scope: StreamScope, f: StreamFilter): { sql: string; args: (string | number)[] } {
  const w = new Where()
    .add(scope.includeGlobal ? '(workspace = ? OR workspace IS NULL)' : 'workspace = ?', scope.workspace)
    .add('sandbox_id = ?', f.sandboxId)
    .add('network_id = ?', f.networkId)
    .anyOf('type', f.types)
    .anyOf('severity', f.severities)
    .add('ts_ms >= ?', f.sinceMs)
    .add('ts_ms < ?', f.untilMs);
  return { sql: w.clauses.join(' AND '), args: w.args };
}

export interface EventPage {
  items: SecurityEvent[];
  /** Pass as `after` for the next page: the last seq returned (or the `after` given, when nothing was). Null only for an empty stream. */
  nextCursor: string | null;
  /** More events matched beyond this page at the time of the read. */
  hasMore: boolean;
}

export function parseCursor(after: string | undefined): number | undefined {
  if (after === undefined) return undefined;
  if (!/^\d{1,15}$/.test(after)) throw validationError('after', 'must be a cursor returned as nextCursor');
  return Number(after);
}

export function pageEvents(db: Db, scope: StreamScope, f: StreamFilter, afterSeq: number | undefined, limit: number): EventPage {
  const w = where(scope, f);
  const sql = `SELECT * FROM events WHERE ${w.sql}${afterSeq === undefined ? '' : ' AND seq > ?'} ORDER BY seq LIMIT ?`;
  const rows = db.sql.prepare(sql).all(...w.args, ...(afterSeq === undefined ? [] : [afterSeq]), limit + 1) as unknown as Row[];
  const items = rows.slice(0, limit).map(toEvent);
  const last = items.at(-1)?.seq ?? afterSeq;
  return { items, nextCursor: last === undefined ? null : String(last), hasMore: rows.length > limit };
}

/**
 * Every matching event up to the newest one at the time of the call, in seq order, read in
 * pages (the generator yields between pages, so writers are never blocked for long).
 */
export async function* exportEvents(db: Db, scope: StreamScope, f: StreamFilter, pageSize = 500): AsyncGenerator<SecurityEvent> {
  const top = (db.sql.prepare('SELECT max(seq) AS s FROM events').get() as { s: number | null }).s ?? 0;
  let after = 0;
  for (;;) {
    const page = pageEvents(db, scope, f, after, pageSize);
    for (const e of page.items) {
      if (e.seq > top) return;
      yield e;
    }
    if (!page.hasMore) return;
    after = Number(page.nextCursor);
    await new Promise<void>((r) => setImmediate(r));
  }
}

export interface Summary {
  window: { since: string; until: string; ms: number };
  total: number;
  byType: Record<string, number>;
  bySeverity: Record<Severity, number>;
  /** Event counts per sandbox (the 50 busiest). */
  bySandbox: { sandboxId: string; count: number }[];
  /** Sandboxes with the most high and critical events (10 at most). */
  topOffenders: { sandboxId: string; high: number; critical: number; count: number }[];
  /** Equal buckets over the window, oldest first. */
  trend: { start: string; end: string; count: number; highOrCritical: number }[];
}

export function summarize(db: Db, scope: StreamScope, nowMs: number, windowMs: number, buckets = 12): Summary {
  const sinceMs = nowMs - windowMs;
  const w = where(scope, { sinceMs, untilMs: nowMs + 1 });
  // Plain objects (node:sqlite rows have a null prototype), so they serialize and compare like any other.
  const q = <T>(sql: string, ...extra: (string | number)[]) =>
    db.sql
      .prepare(sql)
      .all(...extra, ...w.args)
      .map((r) => ({ ...r }) as T);
  const byType = Object.fromEntries(
    q<{ type: string; n: number }>(`SELECT type, count(*) AS n FROM events WHERE ${w.sql} GROUP BY type ORDER BY n DESC`).map((r) => [
      r.type,
      r.n,
    ]),
  );
  const bySeverity = Object.fromEntries(SEVERITIES.map((s) => [s, 0])) as Record<Severity, number>;
  for (const r of q<{ severity: Severity; n: number }>(`SELECT severity, count(*) AS n FROM events WHERE ${w.sql} GROUP BY severity`))
    bySeverity[r.severity] = r.n;
  const bySandbox = q<{ sandboxId: string; count: number }>(
    `SELECT sandbox_id AS sandboxId, count(*) AS count FROM events WHERE ${w.sql} AND sandbox_id IS NOT NULL GROUP BY sandbox_id ORDER BY count DESC, sandbox_id LIMIT 50`,
  );
  const topOffenders = q<{ sandboxId: string; high: number; critical: number; count: number }>(
    `SELECT sandbox_id AS sandboxId, sum(severity = 'high') AS high, sum(severity = 'critical') AS critical, count(*) AS count
     FROM events WHERE ${w.sql} AND sandbox_id IS NOT NULL AND severity IN ('high', 'critical') GROUP BY sandbox_id ORDER BY count DESC, critical DESC, sandbox_id LIMIT 10`,
  );
  const size = Math.ceil(windowMs / buckets);
  const trend = Array.from({ length: buckets }, (_, i) => ({
    start: isoTime(sinceMs + i * size),
    end: isoTime(Math.min(nowMs, sinceMs + (i + 1) * size)),
    count: 0,
    highOrCritical: 0,
  }));
  const rows = q<{ b: number; n: number; hc: number }>(
    `SELECT (ts_ms - ?) / ? AS b, count(*) AS n, sum(severity IN ('high', 'critical')) AS hc FROM events WHERE ${w.sql} GROUP BY b`,
    sinceMs,
    size,
  );
  for (const r of rows) {
    const t = trend[Math.min(buckets - 1, Math.max(0, Math.floor(r.b)))]!;
    t.count += r.n;
    t.highOrCritical += r.hc;
  }
  const total = Object.values(bySeverity).reduce((a, b) => a + b, 0);
  return {
    window: { since: isoTime(sinceMs), until: isoTime(nowMs), ms: windowMs },
    total,
    byType,
    bySeverity,
    bySandbox,
    topOffenders,
    trend,
  };
}

/** Events of `workspace` newer than `sinceMs` (exclusive), counted by severity; a severity without events is left out. */
export function countBySeverity(db: Db, workspace: string, sinceMs: number): Record<string, number> {
  const rows = db.sql
    .prepare('SELECT severity, count(*) AS n FROM events WHERE workspace = ? AND ts_ms > ? GROUP BY severity')
    .all(workspace, sinceMs) as { severity: string; n: number }[];
  return Object.fromEntries(rows.map((e) => [e.severity, e.n]));
}

/** The queries above over one runtime's store and clock: what the Security and Monitoring APIs read. */
export class EventStream {
  readonly #db: Db;
  readonly #clock: Clock;

  constructor(db: Db, clock: Clock) {
    this.#db = db;
    this.#clock = clock;
  }

  page(scope: StreamScope, f: StreamFilter, afterSeq: number | undefined, limit: number): EventPage {
    return pageEvents(this.#db, scope, f, afterSeq, limit);
  }

  /** Counts over the `windowMs` before now (the runtime's clock). */
  summary(scope: StreamScope, windowMs: number, buckets: number): Summary {
    return summarize(this.#db, scope, this.#clock.nowMs(), windowMs, buckets);
  }

  export(scope: StreamScope, f: StreamFilter): AsyncGenerator<SecurityEvent> {
    return exportEvents(this.#db, scope, f);
  }

  /** A workspace's events of the last `windowMs` (the runtime's clock), by severity. */
  recentBySeverity(workspace: string, windowMs: number): Record<string, number> {
    return countBySeverity(this.#db, workspace, this.#clock.nowMs() - windowMs);
  }
}
