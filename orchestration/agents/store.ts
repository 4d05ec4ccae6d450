import { livePage, type Db } from '../../core/db.ts';
import type { ApprovalPolicy } from '../approvals/policy.ts';
import type { ToolName } from './schemas.ts';

/** Messages of the history sent with each model call, unless the agent says otherwise. */
export const DEFAULT_MAX_HISTORY_MESSAGES = 200;

/** An agent's configuration as stored (defaults filled in). */
export interface AgentConfig {
  /** A registered provider (`prv_…`), or null for the instance's (DIRECTOR_LLM_*). */
  provider: string | null;
  /** Null: the provider's default model. */
  model: string | null;
  systemPrompt: string;
  tools: ToolName[];
  approvalPolicy: ApprovalPolicy;
  maxSteps: number;
  maxTokens: number | null;
  maxOutputTokens: number;
  /** Messages of the history sent with each model call (see `chat/history.ts`). */
  maxHistoryMessages: number;
  temperature: number | null;
  /** Environment variable → vault secret id. */
  secrets: Record<string, string>;
  image: string | null;
}

export interface AgentRecord {
  id: string;
  workspace: string;
  sessionId: string;
  departmentId: string;
  name: string;
  config: AgentConfig;
  createdBy: string | null;
  createdMs: number;
  updatedMs: number;
  deletedMs: number | null;
}

/** A stored config; agents stored before `maxHistoryMessages` existed get its default. */
function configOf(json: string): AgentConfig {
  const c = JSON.parse(json) as AgentConfig;
  c.maxHistoryMessages ??= DEFAULT_MAX_HISTORY_MESSAGES;
  return c;
}

interface Row {
  id: string;
  workspace: string;
  session_id: string;
  department_id: string;
  name: string;
  config: string;
  created_by: string | null;
  created_ms: number;
  updated_ms: number;
  deleted_ms: number | null;
}

const fromRow = (r: Row): AgentRecord => ({
  id: r.id,
  workspace: r.workspace,
  sessionId: r.session_id,
  departmentId: r.department_id,
  name: r.name,
  config: configOf(r.config),
  createdBy: r.created_by,
  createdMs: r.created_ms,
  updatedMs: r.updated_ms,
  deletedMs: r.deleted_ms,
});

/** Agents in the embedded store; deleted ones are kept (their turns, messages and approvals name them) but never read through the API. */
export class AgentStore {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }

  insert(r: AgentRecord): void {
    this.#db.sql
      .prepare(
        `INSERT INTO agents (id, workspace, session_id, department_id, name, config, created_by, created_ms, updated_ms, deleted_ms)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        r.id,
        r.workspace,
        r.sessionId,
        r.departmentId,
        r.name,
        JSON.stringify(r.config),
        r.createdBy,
        r.createdMs,
        r.updatedMs,
        r.deletedMs,
      );
  }

  byId(id: string): AgentRecord | null {
    const row = this.#db.sql.prepare('SELECT * FROM agents WHERE id = ?').get(id) as Row | undefined;
    return row ? fromRow(row) : null;
  }

  get(workspace: string, id: string): AgentRecord | null {
    const row = this.#db.sql.prepare('SELECT * FROM agents WHERE id = ? AND workspace = ? AND deleted_ms IS NULL').get(id, workspace) as
      Row | undefined;
    return row ? fromRow(row) : null;
  }

  /** Live agents of the workspace with this name (in one session when given). */
  byName(workspace: string, name: string, sessionId?: string): AgentRecord[] {
    const rows = (sessionId
      ? this.#db.sql
          .prepare('SELECT * FROM agents WHERE workspace = ? AND name = ? AND session_id = ? AND deleted_ms IS NULL')
          .all(workspace, name, sessionId)
      : this.#db.sql
          .prepare('SELECT * FROM agents WHERE workspace = ? AND name = ? AND deleted_ms IS NULL')
          .all(workspace, name)) as unknown as Row[];
    return rows.map(fromRow);
  }

  list(
    workspace: string,
    f: { sessionId?: string; departmentId?: string; limit: number; offset: number },
  ): { items: AgentRecord[]; total: number } {
    const { rows, total } = livePage<Row>(this.#db, 'agents', workspace, { session_id: f.sessionId, department_id: f.departmentId }, f);
    return { items: rows.map(fromRow), total };
  }

  /** Live agents of a session. */
  ofSession(sessionId: string): AgentRecord[] {
    return (
      this.#db.sql.prepare('SELECT * FROM agents WHERE session_id = ? AND deleted_ms IS NULL').all(sessionId) as unknown as Row[]
    ).map(fromRow);
  }

  markDeleted(id: string, nowMs: number): void {
    this.#db.sql.prepare('UPDATE agents SET deleted_ms = ?, updated_ms = ? WHERE id = ? AND deleted_ms IS NULL').run(nowMs, nowMs, id);
  }
}
