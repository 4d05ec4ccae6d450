import type { Db } from '../core/db.ts';
import { Where } from './store/where.ts';
import type { Clock } from '../core/clock.ts';
import { isoTime } from '../core/clock.ts';
import { newId } from '../core/ids.ts';

/**
 * Security events: one schema for everything security-relevant (policy violations, denied
 * execs, OOM/timeout/pids kills, denied packets, lifecycle). Persisted in the store and
 * published on an in-process bus the API layer subscribes to.
 */
export const SEVERITIES = ['info', 'low', 'medium', 'high', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];

export interface SecurityEvent {
  id: string;
  /** Monotonic position in the stream (cursor for paging and resume). */
  seq: number;
  type: string;
  severity: Severity;
  timestamp: string;
  workspace: string | null;
  sandboxId: string | null;
  networkId: string | null;
  sessionId: string | null;
  actor: string | null;
  details: Record<string, unknown>;
  /**
   * Only while the event is not stored: `buffered` waits in the retry buffer because the store
   * refuses inserts (seq is -1 until stored; subscribers see it once stored), `dropped` is lost
   * and counted in {@link EventSinkHealth.dropped}. Removed once the event is stored.
   */
  delivery?: 'buffered' | 'dropped';
}

export type EventInput = {
  type: string;
  severity: Severity;
  workspace?: string | null;
  sandboxId?: string | null;
  networkId?: string | null;
  sessionId?: string | null;
  actor?: string | null;
  details?: Record<string, unknown>;
};

export type EventListener = (e: SecurityEvent) => void;

export interface EventSink {
  /**
   * Accepts an event for storing and publishing. Never throws: a producer is often in the middle
   * of refusing something, and a full or locked store must not turn that refusal into a 500.
   *
   * Events are stored in groups: everything emitted during one synchronous run of the producer
   * is inserted in one transaction right after it (a microtask), or at once when the group
   * reaches {@link EventSinkOptions.groupSize} or someone calls {@link flush} or {@link list}.
   * Only stored events are published, in seq order. The returned object is the event itself:
   * its `seq` is -1 until it is stored and is filled in then. When the store refuses inserts,
   * events wait in a bounded retry buffer, in order (`delivery: 'buffered'` on what `emit`
   * returns while the store is known to refuse).
   */
  emit(input: EventInput): SecurityEvent;
  subscribe(fn: EventListener): () => void;
  /** Stores what waits first, so a reader always sees what was emitted before it read. */
  list(q: EventQuery): SecurityEvent[];
  /** Stores the waiting events now; returns how many still wait (the store refused them). */
  flush(): number;
  health(): EventSinkHealth;
}

/** Why an event was lost: the retry buffer overflowed, the store cannot take it, or the store is closed. */
export type DropReason = 'buffer_full' | 'unstorable' | 'store_closed';

export interface EventSinkHealth {
  /** Events waiting in the retry buffer. */
  pending: number;
  /** Events lost since start, by reason (exported as `director_events_dropped_total{reason}`). */
  dropped: Record<DropReason, number>;
}

export interface EventSinkOptions {
  /** Events kept for retry while the store refuses inserts; the oldest is dropped beyond. Default 10 000. */
  retryBufferSize?: number;
  /** Delay before retrying buffered events when no new emit comes. Default 1000 ms. */
  retryDelayMs?: number;
  /** Events stored per transaction at most; a burst this size is stored without waiting for the microtask. Default 1024. */
  groupSize?: number;
}

export interface EventQuery {
  workspace?: string;
  sandboxId?: string;
  networkId?: string;
  type?: string;
  severity?: Severity;
  sinceMs?: number;
  untilMs?: number;
  afterSeq?: number;
  limit: number;
}

export interface Row {
  seq: number;
  id: string;
  type: string;
  severity: string;
  ts_ms: number;
  workspace: string | null;
  sandbox_id: string | null;
  network_id: string | null;
  session_id: string | null;
  actor: string | null;
  details: string;
}

export const toEvent = (r: Row): SecurityEvent => ({
  id: r.id,
  seq: r.seq,
  type: r.type,
  severity: r.severity as Severity,
  timestamp: isoTime(r.ts_ms),
  workspace: r.workspace,
  sandboxId: r.sandbox_id,
  networkId: r.network_id,
  sessionId: r.session_id,
  actor: r.actor,
  details: JSON.parse(r.details) as Record<string, unknown>,
});

/** SQLite primary result codes worth retrying: BUSY, LOCKED, NOMEM, READONLY, IOERR, FULL, CANTOPEN, PROTOCOL. */
const RETRYABLE_SQLITE = new Set([5, 6, 7, 8, 10, 13, 14, 15]);

type Failure = 'retry' | DropReason;
function classify(err: unknown): Failure {
  const e = err as { code?: string; errcode?: number };
  if (e?.code === 'ERR_INVALID_STATE') return 'store_closed';
  if (typeof e?.errcode === 'number' && RETRYABLE_SQLITE.has(e.errcode & 0xff)) return 'retry';
  return 'unstorable';
}

/**
 * The event store and bus. `seq` is assigned by SQLite (AUTOINCREMENT) by the INSERT that stores
 * the event, under the store's write lock, and events are published only after the transaction
 * that stored them committed: seq order is commit order and publish order, and a seq is never
 * reused (even after retention deletes the newest rows), so a reader paging with `seq > cursor`
 * never misses or repeats an event.
 *
 * Why groups: a committed transaction costs SQLite a WAL append of every page it touched (the
 * table and three indexes), so one event per transaction tops out near 15,000/s here, while
 * a few hundred per transaction store 50,000–90,000/s.
 */
export function createEventSink(db: Db, clock: Clock, onEmit?: (e: SecurityEvent) => void, opts: EventSinkOptions = {}): EventSink {
  const insert = db.sql.prepare(
    'INSERT INTO events (id, type, severity, ts_ms, workspace, sandbox_id, network_id, session_id, actor, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
  );
  const listeners = new Set<EventListener>();
  const capacity = Math.max(1, opts.retryBufferSize ?? 10_000);
  const retryDelayMs = opts.retryDelayMs ?? 1000;
  const groupSize = Math.max(1, opts.groupSize ?? 1024);
  /** Waiting events, oldest first: the current group and, while the store refuses, the retry buffer. */
  let waiting: Item[] = [];
  const dropped: Record<DropReason, number> = { buffer_full: 0, unstorable: 0, store_closed: 0 };
  /** The last attempt to store was refused with a retryable error. */
  let refusing = false;
  let microtask = false;
  let timer: NodeJS.Timeout | null = null;

  const publish = (event: SecurityEvent) => {
    onEmit?.(event);
    for (const fn of listeners) {
      try {
        fn(event);
      } catch {
        // a failing subscriber must not break producers
      }
    }
  };
  const insertOne = (item: Item): void => {
    const e = item.event;
    // seq is the rowid (INTEGER PRIMARY KEY): the insert's rowid, without a RETURNING row to build.
    e.seq = Number(
      insert.run(e.id, e.type, e.severity, item.tsMs, e.workspace, e.sandboxId, e.networkId, e.sessionId, e.actor, item.json)
        .lastInsertRowid,
    );
  };
  /** Marks the event lost and counts it: every lost event is counted exactly once, here. */
  const drop = (item: Item, reason: DropReason) => {
    if (item.event.delivery === 'dropped') return;
    item.event.delivery = 'dropped';
    dropped[reason]++;
  };
  /**
   * Stores up to one group in one transaction. Returns the stored events, or the failure that
   * stopped it: `retry` leaves the events waiting (and unstored). An event the store rejects
   * by itself (a constraint, say) is dropped alone — whatever happens to the rest of the group,
   * so a retry never tries it again — and the rest of the group still goes in.
   */
  const storeGroup = (group: Item[]): { stored: Item[]; failure: Failure | null } => {
    const stored: Item[] = [];
    try {
      db.tx(() => {
        for (const item of group) {
          if (item.event.delivery === 'dropped') continue;
          try {
            insertOne(item);
            stored.push(item);
          } catch (err) {
            if (classify(err) !== 'unstorable') throw err;
            drop(item, 'unstorable');
          }
        }
      });
      return { stored, failure: null };
    } catch (err) {
      for (const item of stored) item.event.seq = -1;
      return { stored: [], failure: classify(err) };
    }
  };
  /** Stores the waiting events right after the current synchronous run. */
  const soon = () => {
    if (microtask) return;
    microtask = true;
    queueMicrotask(() => {
      microtask = false;
      if (!refusing) flush();
    });
  };
  const schedule = () => {
    if (!waiting.length || timer) return;
    timer = setTimeout(() => {
      timer = null;
      flush();
    }, retryDelayMs);
    timer.unref();
  };
  const flush = (): number => {
    // Inside someone else's transaction the group would commit (or roll back) with it, after
    // being published: leave it to the microtask, which runs once that transaction is over.
    if (db.sql.isTransaction) {
      if (waiting.length) soon();
      return waiting.length;
    }
    while (waiting.length) {
      const group = waiting.length <= groupSize ? waiting : waiting.slice(0, groupSize);
      const { stored, failure } = storeGroup(group);
      if (failure === 'retry') {
        waiting = waiting.filter((item) => item.event.delivery !== 'dropped');
        if (!refusing) for (const item of waiting) item.event.delivery = 'buffered';
        refusing = true;
        break;
      }
      waiting = group === waiting ? [] : waiting.slice(group.length);
      refusing = false;
      if (failure) {
        // store_closed (or a failure of the transaction itself): nothing of the group can be stored.
        for (const item of group) drop(item, failure);
        continue;
      }
      for (const { event } of stored) {
        delete event.delivery;
        publish(event);
      }
    }
    schedule();
    return waiting.length;
  };

  return {
    emit(input) {
      const tsMs = clock.nowMs();
      const event: SecurityEvent = {
        id: newId('evt'),
        seq: -1,
        type: input.type,
        severity: input.severity,
        timestamp: isoTime(tsMs),
        workspace: input.workspace ?? null,
        sandboxId: input.sandboxId ?? null,
        networkId: input.networkId ?? null,
        sessionId: input.sessionId ?? null,
        actor: input.actor ?? null,
        details: input.details ?? {},
      };
      let json: string;
      try {
        json = JSON.stringify(event.details);
      } catch {
        dropped.unstorable++;
        return { ...event, delivery: 'dropped' };
      }
      if (!db.sql.isOpen) {
        dropped.store_closed++;
        return { ...event, delivery: 'dropped' };
      }
      if (refusing) {
        if (waiting.length >= capacity) drop(waiting.shift()!, 'buffer_full');
        event.delivery = 'buffered';
      }
      waiting.push({ event, tsMs, json });
      if (refusing) schedule();
      else if (waiting.length >= groupSize) flush();
      else soon();
      return event;
    },
    flush,
    health: () => ({ pending: waiting.length, dropped: { ...dropped } }),
    subscribe(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    list(q) {
      if (!refusing) flush();
      const w = new Where()
        .add('workspace = ?', q.workspace)
        .add('sandbox_id = ?', q.sandboxId)
        .add('network_id = ?', q.networkId)
        .add('type = ?', q.type)
        .add('severity = ?', q.severity)
        .add('ts_ms >= ?', q.sinceMs)
        .add('ts_ms < ?', q.untilMs)
        .add('seq > ?', q.afterSeq);
      const sql = `SELECT * FROM events${w.sql} ORDER BY seq LIMIT ?`;
      const args = w.args;
      return (db.sql.prepare(sql).all(...args, q.limit) as unknown as Row[]).map(toEvent);
    },
  };
}

interface Item {
  event: SecurityEvent;
  tsMs: number;
  json: string;
}
