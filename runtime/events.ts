import type { Db } from './store/db.ts';
import { Where } from './store/where.ts';
import type { Clock } from './clock.ts';
import { isoTime } from './clock.ts';
import { newId } from './ids.ts';

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
   * Only on what `emit` returns, when the store refused the insert: `buffered` waits in the
   * retry buffer (seq is -1 until stored; subscribers see it once stored), `dropped` is lost
   * and counted in {@link EventSinkHealth.dropped}. Absent: stored.
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
   * Stores and publishes an event. Never throws: a producer is often in the middle of refusing
   * something, and a full or locked store must not turn that refusal into a 500. When the insert
   * fails the event goes to a bounded retry buffer (in order, ahead of newer events) and the
   * returned event says so in `delivery`.
   */
  emit(input: EventInput): SecurityEvent;
  subscribe(fn: EventListener): () => void;
  list(q: EventQuery): SecurityEvent[];
  /** Retries the buffered events now; returns how many still wait. */
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
  seq: number; id: string; type: string; severity: string; ts_ms: number; workspace: string | null;
  sandbox_id: string | null; network_id: string | null; session_id: string | null; actor: string | null; details: string;
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
 * The event store and bus. `seq` is assigned by SQLite (AUTOINCREMENT) inside the single INSERT
 * statement that stores the event, under the store's write lock, so seq order is commit order
 * and a seq is never reused (even after retention deletes the newest rows): a reader paging with
 * `seq > cursor` never misses or repeats an event.
 */
export function createEventSink(db: Db, clock: Clock, onEmit?: (e: SecurityEvent) => void, opts: EventSinkOptions = {}): EventSink {
  const insert = db.sql.prepare(
    'INSERT INTO events (id, type, severity, ts_ms, workspace, sandbox_id, network_id, session_id, actor, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq',
  );
  const listeners = new Set<EventListener>();
  const capacity = Math.max(1, opts.retryBufferSize ?? 10_000);
  const retryDelayMs = opts.retryDelayMs ?? 1000;
  const buffer: { event: SecurityEvent; tsMs: number; json: string }[] = [];
  const dropped: Record<DropReason, number> = { buffer_full: 0, unstorable: 0, store_closed: 0 };
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
  /** Inserts one event; returns the failure class instead of throwing. */
  const store = (item: { event: SecurityEvent; tsMs: number; json: string }): Failure | null => {
    const e = item.event;
    try {
      const { seq } = insert.get(e.id, e.type, e.severity, item.tsMs, e.workspace, e.sandboxId, e.networkId, e.sessionId, e.actor, item.json) as { seq: number };
      e.seq = seq;
      return null;
    } catch (err) {
      return classify(err);
    }
  };
  const schedule = () => {
    if (!buffer.length || timer) return;
    timer = setTimeout(() => {
      timer = null;
      flush();
    }, retryDelayMs);
    timer.unref();
  };
  const flush = (): number => {
    while (buffer.length) {
      const failure = store(buffer[0]!);
      if (failure === 'retry') break;
      const { event } = buffer.shift()!;
      delete event.delivery;
      if (failure) dropped[failure]++;
      else publish(event);
    }
    schedule();
    return buffer.length;
  };

  return {
    emit(input) {
      const tsMs = clock.nowMs();
      const event: SecurityEvent = {
        id: newId('evt'), seq: -1, type: input.type, severity: input.severity, timestamp: isoTime(tsMs), workspace: input.workspace ?? null,
        sandboxId: input.sandboxId ?? null, networkId: input.networkId ?? null, sessionId: input.sessionId ?? null, actor: input.actor ?? null, details: input.details ?? {},
      };
      let json: string;
      try {
        json = JSON.stringify(event.details);
      } catch {
        dropped.unstorable++;
        return { ...event, delivery: 'dropped' };
      }
      const item = { event, tsMs, json };
      // Older buffered events go first, so seq order stays emit order.
      const failure = flush() === 0 ? store(item) : 'retry';
      if (failure === null) {
        publish(event);
        return event;
      }
      if (failure !== 'retry') {
        dropped[failure]++;
        return { ...event, delivery: 'dropped' };
      }
      if (buffer.length >= capacity) {
        buffer.shift();
        dropped.buffer_full++;
      }
      event.delivery = 'buffered';
      buffer.push(item);
      schedule();
      return { ...event };
    },
    flush,
    health: () => ({ pending: buffer.length, dropped: { ...dropped } }),
    subscribe(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    list(q) {
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
