import type { Clock } from '../../core/clock.ts';
import type { Db } from '../../core/db.ts';

/**
 * The chat stream's event types, as the Denkeeper seed names them: `content` and `thinking`
 * (text deltas), `tool_start`, `tool_approval`, `tool_end`, `usage` (after each model call),
 * `done` (the turn's answer, usage and cost) and `error` (how a turn failed). Every turn ends
 * with exactly one `done` or `error`.
 */
export const CHAT_EVENT_TYPES = ['content', 'thinking', 'tool_start', 'tool_approval', 'tool_end', 'usage', 'done', 'error'] as const;
export type ChatEventType = (typeof CHAT_EVENT_TYPES)[number];

export interface ChatEvent {
  /** Position in the one chat stream of this instance (all sessions): the SSE id and the WebSocket cursor. */
  seq: number;
  workspace: string;
  sessionId: string;
  turnId: string;
  agentId: string;
  type: ChatEventType;
  data: Record<string, unknown>;
  tsMs: number;
}

interface Row {
  seq: number;
  workspace: string;
  session_id: string;
  turn_id: string;
  agent_id: string;
  type: string;
  data: string;
  ts_ms: number;
}

const fromRow = (r: Row): ChatEvent => ({
  seq: r.seq,
  workspace: r.workspace,
  sessionId: r.session_id,
  turnId: r.turn_id,
  agentId: r.agent_id,
  type: r.type as ChatEventType,
  data: JSON.parse(r.data) as Record<string, unknown>,
  tsMs: r.ts_ms,
});

export const isTerminal = (e: Pick<ChatEvent, 'type'>): boolean => e.type === 'done' || e.type === 'error';

/**
 * The chat stream: every event of every turn, stored as it is emitted (one insert, so its seq
 * is known at once and an SSE client that reconnects with `Last-Event-ID` or a WebSocket that
 * resumes with `after` misses nothing) and published to in-process listeners in seq order.
 * Kept for DIRECTOR_CHAT_EVENT_RETENTION_MS; a terminated session's events go with it.
 */
export class ChatEventLog {
  readonly #db: Db;
  readonly #clock: Clock;
  readonly #listeners = new Set<(e: ChatEvent) => void>();
  /** Events stored inside {@link batch}'s transaction, published once it committed. */
  #held: ChatEvent[] | null = null;

  constructor(db: Db, clock: Clock) {
    this.#db = db;
    this.#clock = clock;
  }

  append(e: Omit<ChatEvent, 'seq' | 'tsMs'>): ChatEvent {
    const tsMs = this.#clock.nowMs();
    const res = this.#db.sql
      .prepare('INSERT INTO chat_events (workspace, session_id, turn_id, agent_id, type, data, ts_ms) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(e.workspace, e.sessionId, e.turnId, e.agentId, e.type, JSON.stringify(e.data), tsMs);
    const event: ChatEvent = { ...e, seq: Number(res.lastInsertRowid), tsMs };
    if (this.#held) this.#held.push(event);
    else this.#publish(event);
    return event;
  }

  /**
   * Runs `fn` in one transaction (one commit for the events it appends and whatever else it
   * writes, a tool call's end and its record say); the events are published once it committed,
   * in seq order, and not at all when it threw (nothing was stored).
   */
  batch<T>(fn: () => T): T {
    if (this.#held) return fn();
    const held: ChatEvent[] = [];
    this.#held = held;
    let out: T;
    try {
      out = this.#db.tx(fn);
    } finally {
      this.#held = null;
    }
    for (const e of held) this.#publish(e);
    return out;
  }

  #publish(event: ChatEvent): void {
    for (const fn of this.#listeners) {
      try {
        fn(event);
      } catch {
        // a failing listener must not break the turn
      }
    }
  }

  subscribe(fn: (e: ChatEvent) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** A session's events after `after`, oldest first. */
  after(sessionId: string, after: number, limit: number): ChatEvent[] {
    return (
      this.#db.sql
        .prepare('SELECT * FROM chat_events WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT ?')
        .all(sessionId, after, limit) as unknown as Row[]
    ).map(fromRow);
  }

  /** A workspace's events after `after` (the WebSocket channel's replay). */
  ofWorkspace(workspace: string, after: number, limit: number): ChatEvent[] {
    return (
      this.#db.sql
        .prepare('SELECT * FROM chat_events WHERE workspace = ? AND seq > ? ORDER BY seq LIMIT ?')
        .all(workspace, after, limit) as unknown as Row[]
    ).map(fromRow);
  }

  /** The newest seq (0 when empty). */
  head(): number {
    return Number((this.#db.sql.prepare('SELECT COALESCE(MAX(seq), 0) AS seq FROM chat_events').get() as { seq: number | bigint }).seq);
  }

  /** The first seq of a turn minus one (where to replay a turn from), or null when none of its events is kept. */
  turnStart(turnId: string): number | null {
    const row = this.#db.sql.prepare('SELECT MIN(seq) AS seq FROM chat_events WHERE turn_id = ?').get(turnId) as { seq: number | null };
    return row.seq === null ? null : row.seq - 1;
  }

  purgeOlderThan(cutoffMs: number): number {
    return Number(this.#db.sql.prepare('DELETE FROM chat_events WHERE ts_ms < ?').run(cutoffMs).changes);
  }

  deleteOfSession(sessionId: string): void {
    this.#db.sql.prepare('DELETE FROM chat_events WHERE session_id = ?').run(sessionId);
  }
}
