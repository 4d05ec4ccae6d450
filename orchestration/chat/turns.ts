import type { Db } from '../../core/db.ts';

export const TURN_STATES = ['running', 'completed', 'failed', 'cancelled'] as const;
export type TurnState = (typeof TURN_STATES)[number];

/** Tokens of a turn (or one model call), as the provider reported them. */
export interface Usage {
  inputTokens: number;
  outputTokens: number;
  totalTokens: number;
  reasoningTokens: number;
  cachedInputTokens: number;
}

export const ZERO_USAGE: Usage = Object.freeze({
  inputTokens: 0,
  outputTokens: 0,
  totalTokens: 0,
  reasoningTokens: 0,
  cachedInputTokens: 0,
});

export const addUsage = (a: Usage, b: Usage): Usage => ({
  inputTokens: a.inputTokens + b.inputTokens,
  outputTokens: a.outputTokens + b.outputTokens,
  totalTokens: a.totalTokens + b.totalTokens,
  reasoningTokens: a.reasoningTokens + b.reasoningTokens,
  cachedInputTokens: a.cachedInputTokens + b.cachedInputTokens,
});

export interface TurnRecord {
  id: string;
  workspace: string;
  sessionId: string;
  agentId: string;
  status: TurnState;
  /** How it ended beyond its state (`step_budget`, `token_budget`, `superseded`, an error message). */
  reason: string | null;
  provider: string;
  model: string;
  usage: Usage;
  /** USD, when the model is priced; null otherwise. */
  cost: number | null;
  steps: number;
  createdBy: string | null;
  startedMs: number;
  endedMs: number | null;
}

/** How one tool call ended: `ok`, `error` (it ran and failed, or could not run), `denied` (approval refused), `invalid` (unknown tool or bad input). */
export type ToolCallStatus = 'ok' | 'error' | 'denied' | 'invalid';

export interface ToolCallRecord {
  turnId: string;
  callId: string;
  workspace: string;
  sessionId: string;
  agentId: string;
  tool: string;
  status: ToolCallStatus;
  exitCode: number | null;
  durationMs: number;
  sandboxId: string | null;
  approvalId: string | null;
  endedMs: number;
}

interface TurnRow {
  id: string;
  workspace: string;
  session_id: string;
  agent_id: string;
  status: string;
  reason: string | null;
  provider: string;
  model: string;
  usage: string;
  cost: number | null;
  steps: number;
  created_by: string | null;
  started_ms: number;
  ended_ms: number | null;
}

const turnFromRow = (r: TurnRow): TurnRecord => ({
  id: r.id,
  workspace: r.workspace,
  sessionId: r.session_id,
  agentId: r.agent_id,
  status: r.status as TurnState,
  reason: r.reason,
  provider: r.provider,
  model: r.model,
  usage: JSON.parse(r.usage) as Usage,
  cost: r.cost,
  steps: r.steps,
  createdBy: r.created_by,
  startedMs: r.started_ms,
  endedMs: r.ended_ms,
});

/** A session's chat telemetry: turns, tokens, cost (when priced), tool calls. */
export interface SessionChatStats {
  turns: { total: number; completed: number; failed: number; cancelled: number; running: number };
  usage: Usage;
  /** Sum of the priced turns' costs (USD); null when no turn was priced. */
  cost: number | null;
  unpricedTurns: number;
  toolCalls: { total: number; byTool: Record<string, number>; byStatus: Record<string, number> };
  models: { provider: string; model: string; turns: number }[];
}

/** Turns and tool calls in the embedded store. */
export class TurnStore {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }

  insert(t: TurnRecord): void {
    this.#db.sql
      .prepare(
        `INSERT INTO chat_turns (id, workspace, session_id, agent_id, status, reason, provider, model, usage, cost, steps, created_by, started_ms, ended_ms)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        t.id,
        t.workspace,
        t.sessionId,
        t.agentId,
        t.status,
        t.reason,
        t.provider,
        t.model,
        JSON.stringify(t.usage),
        t.cost,
        t.steps,
        t.createdBy,
        t.startedMs,
        t.endedMs,
      );
  }

  get(id: string): TurnRecord | null {
    const row = this.#db.sql.prepare('SELECT * FROM chat_turns WHERE id = ?').get(id) as TurnRow | undefined;
    return row ? turnFromRow(row) : null;
  }

  /** Ends a running turn (only a running one: an end is final). */
  finish(
    id: string,
    p: { status: Exclude<TurnState, 'running'>; reason: string | null; usage: Usage; cost: number | null; steps: number; nowMs: number },
  ) {
    this.#db.sql
      .prepare(
        "UPDATE chat_turns SET status = ?, reason = ?, usage = ?, cost = ?, steps = ?, ended_ms = ? WHERE id = ? AND status = 'running'",
      )
      .run(p.status, p.reason, JSON.stringify(p.usage), p.cost, p.steps, p.nowMs, id);
  }

  /** Turns a crash left running: they cannot go on, so they failed. */
  failInterrupted(nowMs: number): number {
    return Number(
      this.#db.sql
        .prepare(
          "UPDATE chat_turns SET status = 'failed', reason = 'interrupted: the server restarted', ended_ms = ? WHERE status = 'running'",
        )
        .run(nowMs).changes,
    );
  }

  recordToolCall(c: ToolCallRecord): void {
    this.#db.sql
      .prepare(
        `INSERT OR REPLACE INTO tool_calls (turn_id, call_id, workspace, session_id, agent_id, tool, status, exit_code, duration_ms, sandbox_id, approval_id, ended_ms)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        c.turnId,
        c.callId,
        c.workspace,
        c.sessionId,
        c.agentId,
        c.tool,
        c.status,
        c.exitCode,
        c.durationMs,
        c.sandboxId,
        c.approvalId,
        c.endedMs,
      );
  }

  stats(sessionId: string): SessionChatStats {
    const turns = (
      this.#db.sql.prepare('SELECT * FROM chat_turns WHERE session_id = ? ORDER BY started_ms').all(sessionId) as unknown as TurnRow[]
    ).map(turnFromRow);
    const count = (s: TurnState) => turns.filter((t) => t.status === s).length;
    const priced = turns.filter((t) => t.cost !== null);
    const models = new Map<string, { provider: string; model: string; turns: number }>();
    for (const t of turns) {
      const k = `${t.provider}\n${t.model}`;
      const m = models.get(k) ?? { provider: t.provider, model: t.model, turns: 0 };
      m.turns++;
      models.set(k, m);
    }
    const calls = this.#db.sql
      .prepare('SELECT tool, status, count(*) AS n FROM tool_calls WHERE session_id = ? GROUP BY tool, status')
      .all(sessionId) as unknown as { tool: string; status: string; n: number }[];
    const byTool: Record<string, number> = {};
    const byStatus: Record<string, number> = {};
    for (const c of calls) {
      byTool[c.tool] = (byTool[c.tool] ?? 0) + c.n;
      byStatus[c.status] = (byStatus[c.status] ?? 0) + c.n;
    }
    return {
      turns: {
        total: turns.length,
        completed: count('completed'),
        failed: count('failed'),
        cancelled: count('cancelled'),
        running: count('running'),
      },
      usage: turns.reduce((u, t) => addUsage(u, t.usage), { ...ZERO_USAGE }),
      cost: priced.length ? Math.round(priced.reduce((s, t) => s + t.cost!, 0) * 1e8) / 1e8 : null,
      unpricedTurns: turns.length - priced.length,
      toolCalls: { total: calls.reduce((s, c) => s + c.n, 0), byTool, byStatus },
      models: [...models.values()],
    };
  }

  deleteOfSession(sessionId: string): void {
    this.#db.tx(() => {
      this.#db.sql.prepare('DELETE FROM chat_turns WHERE session_id = ?').run(sessionId);
      this.#db.sql.prepare('DELETE FROM tool_calls WHERE session_id = ?').run(sessionId);
    });
  }
}
