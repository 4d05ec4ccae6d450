import type { ModelMessage } from 'ai';
import type { Db } from '../../core/db.ts';
import { newId } from '../../core/ids.ts';

/** One message of a session's conversation: what the user said, what an agent answered or called, and the tool results. */
export interface MessageRecord {
  seq: number;
  id: string;
  workspace: string;
  sessionId: string;
  turnId: string | null;
  agentId: string | null;
  role: ModelMessage['role'];
  /** The message's content as the model sees it (text, or parts: text, reasoning, tool calls, tool results); secrets redacted. */
  content: unknown;
  createdMs: number;
}

interface Row {
  seq: number;
  id: string;
  workspace: string;
  session_id: string;
  turn_id: string | null;
  agent_id: string | null;
  role: string;
  content: string;
  created_ms: number;
}

const fromRow = (r: Row): MessageRecord => ({
  seq: r.seq,
  id: r.id,
  workspace: r.workspace,
  sessionId: r.session_id,
  turnId: r.turn_id,
  agentId: r.agent_id,
  role: r.role as ModelMessage['role'],
  content: JSON.parse(r.content) as unknown,
  createdMs: r.created_ms,
});

const historyKey = (sessionId: string, agentId: string) => `${sessionId}\n${agentId}`;
const asModelMessage = (r: { role: string; content: string }): ModelMessage =>
  ({ role: r.role, content: JSON.parse(r.content) as unknown }) as ModelMessage;

/** What a checkpoint keeps of one message. */
export interface MessageSnapshot {
  id: string;
  turnId: string | null;
  agentId: string | null;
  role: string;
  content: unknown;
  createdMs: number;
}

/**
 * A session's messages, in order: each turn's user message, then what each model call returned
 * (assistant messages with text, reasoning and tool calls; tool messages with results) as the
 * AI SDK's model messages, so a later turn sends the same history back to the model.
 */
export class MessageStore {
  readonly #db: Db;
  /**
   * Histories as {@link history} reads them, by session and agent, kept in step with every write
   * made here (the only writer of the table): a turn then sends its history without re-reading
   * and re-parsing every row of a long session. The oldest entry goes past `historyCacheMax`.
   */
  readonly #histories = new Map<string, ModelMessage[]>();
  readonly #historyCacheMax: number;

  constructor(db: Db, opts: { historyCacheMax?: number } = {}) {
    this.#db = db;
    this.#historyCacheMax = opts.historyCacheMax ?? 64;
  }

  append(
    at: { workspace: string; sessionId: string; turnId: string | null; agentId: string | null; nowMs: number },
    messages: readonly ModelMessage[],
  ): void {
    const stmt = this.#db.sql.prepare(
      'INSERT INTO chat_messages (id, workspace, session_id, turn_id, agent_id, role, content, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    );
    const stored = messages.map((m) => ({ role: m.role, content: JSON.stringify(m.content) }));
    this.#db.tx(() => {
      for (const m of stored) stmt.run(newId('msg'), at.workspace, at.sessionId, at.turnId, at.agentId, m.role, m.content, at.nowMs);
    });
    const cached = at.agentId === null ? undefined : this.#histories.get(historyKey(at.sessionId, at.agentId));
    // What a read of the rows would give: the stored JSON parsed back.
    if (cached) for (const m of stored) cached.push(asModelMessage(m));
  }

  /** The history an agent's next turn sends: its own turns' messages in this session, in order. */
  history(sessionId: string, agentId: string): ModelMessage[] {
    const key = historyKey(sessionId, agentId);
    let h = this.#histories.get(key);
    if (h) this.#histories.delete(key);
    else {
      const rows = this.#db.sql
        .prepare('SELECT role, content FROM chat_messages WHERE session_id = ? AND agent_id = ? ORDER BY seq')
        .all(sessionId, agentId) as unknown as { role: string; content: string }[];
      h = rows.map(asModelMessage);
      if (this.#histories.size >= this.#historyCacheMax) this.#histories.delete(this.#histories.keys().next().value!);
    }
    // Most recently used last; the caller gets its own array (the messages are never changed).
    this.#histories.set(key, h);
    return [...h];
  }

  list(sessionId: string, f: { after?: number; limit: number; offset: number }): { items: MessageRecord[]; total: number } {
    const total = (
      this.#db.sql.prepare('SELECT count(*) AS n FROM chat_messages WHERE session_id = ?').get(sessionId) as {
        n: number;
      }
    ).n;
    const rows = this.#db.sql
      .prepare('SELECT * FROM chat_messages WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT ? OFFSET ?')
      .all(sessionId, f.after ?? 0, f.limit, f.offset) as unknown as Row[];
    return { items: rows.map(fromRow), total };
  }

  count(sessionId: string): number {
    return (this.#db.sql.prepare('SELECT count(*) AS n FROM chat_messages WHERE session_id = ?').get(sessionId) as { n: number }).n;
  }

  snapshot(sessionId: string): MessageSnapshot[] {
    return this.list(sessionId, { limit: -1, offset: 0 }).items.map((m) => ({
      id: m.id,
      turnId: m.turnId,
      agentId: m.agentId,
      role: m.role,
      content: m.content,
      createdMs: m.createdMs,
    }));
  }

  /** Replaces a session's messages with a snapshot's, in one transaction. */
  restore(workspace: string, sessionId: string, messages: readonly MessageSnapshot[]): void {
    const stmt = this.#db.sql.prepare(
      'INSERT INTO chat_messages (id, workspace, session_id, turn_id, agent_id, role, content, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
    );
    this.#db.tx(() => {
      this.deleteOfSession(sessionId);
      for (const m of messages) {
        stmt.run(m.id, workspace, sessionId, m.turnId, m.agentId, m.role, JSON.stringify(m.content), m.createdMs);
      }
    });
    this.#forget(sessionId);
  }

  deleteOfSession(sessionId: string): void {
    this.#db.sql.prepare('DELETE FROM chat_messages WHERE session_id = ?').run(sessionId);
    this.#forget(sessionId);
  }

  #forget(sessionId: string): void {
    const prefix = historyKey(sessionId, '');
    for (const k of this.#histories.keys()) if (k.startsWith(prefix)) this.#histories.delete(k);
  }
}
