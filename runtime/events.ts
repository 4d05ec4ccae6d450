import type { Db } from './store/db.ts';
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
  emit(input: EventInput): SecurityEvent;
  subscribe(fn: EventListener): () => void;
  list(q: EventQuery): SecurityEvent[];
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

interface Row {
  seq: number; id: string; type: string; severity: string; ts_ms: number; workspace: string | null;
  sandbox_id: string | null; network_id: string | null; session_id: string | null; actor: string | null; details: string;
}

const toEvent = (r: Row): SecurityEvent => ({
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

export function createEventSink(db: Db, clock: Clock, onEmit?: (e: SecurityEvent) => void): EventSink {
  const insert = db.sql.prepare(
    'INSERT INTO events (id, type, severity, ts_ms, workspace, sandbox_id, network_id, session_id, actor, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq',
  );
  const listeners = new Set<EventListener>();
  return {
    emit(input) {
      const id = newId('evt');
      const ts = clock.nowMs();
      const details = input.details ?? {};
      const { seq } = insert.get(id, input.type, input.severity, ts, input.workspace ?? null, input.sandboxId ?? null, input.networkId ?? null, input.sessionId ?? null, input.actor ?? null, JSON.stringify(details)) as { seq: number };
      const event: SecurityEvent = {
        id, seq, type: input.type, severity: input.severity, timestamp: isoTime(ts), workspace: input.workspace ?? null,
        sandboxId: input.sandboxId ?? null, networkId: input.networkId ?? null, sessionId: input.sessionId ?? null, actor: input.actor ?? null, details,
      };
      onEmit?.(event);
      for (const fn of listeners) {
        try {
          fn(event);
        } catch {
          // a failing subscriber must not break producers
        }
      }
      return event;
    },
    subscribe(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    list(q) {
      const where: string[] = [];
      const args: (string | number)[] = [];
      const add = (clause: string, v: string | number | undefined) => {
        if (v === undefined) return;
        where.push(clause);
        args.push(v);
      };
      add('workspace = ?', q.workspace);
      add('sandbox_id = ?', q.sandboxId);
      add('network_id = ?', q.networkId);
      add('type = ?', q.type);
      add('severity = ?', q.severity);
      add('ts_ms >= ?', q.sinceMs);
      add('ts_ms < ?', q.untilMs);
      add('seq > ?', q.afterSeq);
      const sql = `SELECT * FROM events ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq LIMIT ?`;
      return (db.sql.prepare(sql).all(...args, q.limit) as unknown as Row[]).map(toEvent);
    },
  };
}
