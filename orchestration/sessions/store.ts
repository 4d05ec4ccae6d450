import type { Db } from '../../core/db.ts';
import type { PartialLimits } from '../../policies/limits.ts';
import { canTransition, OPEN_STATES, type SessionState } from './states.ts';

export interface SessionConfig {
  maxDepartments: number;
  timeout: number;
  resourceLimits?: PartialLimits;
  networkId?: string;
  environmentId?: string;
  metadata?: Record<string, unknown>;
}

export interface SessionRecord {
  id: string;
  workspace: string;
  type: string;
  name: string;
  description: string;
  status: SessionState;
  /** Why it ended (`expired after 3600000 ms`, `terminated by request`); null while open. */
  reason: string | null;
  config: SessionConfig;
  createdBy: string | null;
  createdMs: number;
  updatedMs: number;
  /** When the timeout ends it (`createdMs + config.timeout`); null once ended. */
  expiresMs: number | null;
  endedMs: number | null;
  deletedMs: number | null;
}

interface Row {
  id: string;
  workspace: string;
  type: string;
  name: string;
  description: string;
  status: string;
  reason: string | null;
  config: string;
  created_by: string | null;
  created_ms: number;
  updated_ms: number;
  expires_ms: number | null;
  ended_ms: number | null;
  deleted_ms: number | null;
}

const fromRow = (r: Row): SessionRecord => ({
  id: r.id,
  workspace: r.workspace,
  type: r.type,
  name: r.name,
  description: r.description,
  status: r.status as SessionState,
  reason: r.reason,
  config: JSON.parse(r.config) as SessionConfig,
  createdBy: r.created_by,
  createdMs: r.created_ms,
  updatedMs: r.updated_ms,
  expiresMs: r.expires_ms,
  endedMs: r.ended_ms,
  deletedMs: r.deleted_ms,
});

export type SessionPatch = Partial<
  Pick<SessionRecord, 'name' | 'description' | 'config' | 'expiresMs' | 'reason' | 'endedMs' | 'deletedMs'>
>;

const COLUMNS: Record<keyof SessionPatch, string> = {
  name: 'name',
  description: 'description',
  config: 'config',
  expiresMs: 'expires_ms',
  reason: 'reason',
  endedMs: 'ended_ms',
  deletedMs: 'deleted_ms',
};

/** Sessions in the embedded store. Reads take the workspace: another workspace's session is a missing one. */
export class SessionStore {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }

  insert(r: SessionRecord): void {
    this.#db.sql
      .prepare(
        `INSERT INTO sessions (id, workspace, type, name, description, status, reason, config, created_by, created_ms, updated_ms,
           expires_ms, ended_ms, deleted_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        r.id,
        r.workspace,
        r.type,
        r.name,
        r.description,
        r.status,
        r.reason,
        JSON.stringify(r.config),
        r.createdBy,
        r.createdMs,
        r.updatedMs,
        r.expiresMs,
        r.endedMs,
        r.deletedMs,
      );
  }

  /** Any record by id, whatever its workspace or state (internal use). */
  byId(id: string): SessionRecord | null {
    const row = this.#db.sql.prepare('SELECT * FROM sessions WHERE id = ?').get(id) as Row | undefined;
    return row ? fromRow(row) : null;
  }

  /** A session `workspace` can see: not another workspace's, not terminated. */
  get(workspace: string, id: string): SessionRecord | null {
    const row = this.#db.sql
      .prepare("SELECT * FROM sessions WHERE id = ? AND workspace = ? AND status != 'terminated'")
      .get(id, workspace) as Row | undefined;
    return row ? fromRow(row) : null;
  }

  list(workspace: string, f: { status?: SessionState; limit: number; offset: number }): { items: SessionRecord[]; total: number } {
    const where = f.status ? 'workspace = ? AND status = ?' : "workspace = ? AND status != 'terminated'";
    const args = f.status ? [workspace, f.status] : [workspace];
    const total = (this.#db.sql.prepare(`SELECT count(*) AS n FROM sessions WHERE ${where}`).get(...args) as { n: number }).n;
    const rows = this.#db.sql
      .prepare(`SELECT * FROM sessions WHERE ${where} ORDER BY created_ms DESC, id LIMIT ? OFFSET ?`)
      .all(...args, f.limit, f.offset) as unknown as Row[];
    return { items: rows.map(fromRow), total };
  }

  patch(id: string, nowMs: number, patch: SessionPatch): SessionRecord | null {
    const sets = ['updated_ms = ?'];
    const args: (string | number | null)[] = [nowMs];
    for (const [k, v] of Object.entries(patch) as [keyof SessionPatch, unknown][]) {
      sets.push(`${COLUMNS[k]} = ?`);
      args.push(k === 'config' ? JSON.stringify(v) : (v as string | number | null));
    }
    this.#db.sql.prepare(`UPDATE sessions SET ${sets.join(', ')} WHERE id = ?`).run(...args, id);
    return this.byId(id);
  }

  /**
   * Moves a session to `to` if the lifecycle allows it from its current state; returns the
   * updated record, or null when it does not (someone else moved it first).
   */
  transition(id: string, to: SessionState, nowMs: number, patch: SessionPatch = {}): SessionRecord | null {
    return this.#db.tx(() => {
      const cur = this.byId(id);
      if (!cur || !canTransition(cur.status, to)) return null;
      this.#db.sql.prepare('UPDATE sessions SET status = ? WHERE id = ?').run(to, id);
      return this.patch(id, nowMs, patch);
    });
  }

  /** Open sessions whose timeout has passed at `nowMs`. */
  overdue(nowMs: number): SessionRecord[] {
    const rows = this.#db.sql
      .prepare(`SELECT * FROM sessions WHERE status IN (${OPEN_STATES.map(() => '?').join(',')}) AND expires_ms <= ? ORDER BY expires_ms`)
      .all(...OPEN_STATES, nowMs) as unknown as Row[];
    return rows.map(fromRow);
  }

  /** The soonest timeout among open sessions, or null. */
  nextExpiry(): number | null {
    const row = this.#db.sql
      .prepare(`SELECT min(expires_ms) AS ms FROM sessions WHERE status IN (${OPEN_STATES.map(() => '?').join(',')})`)
      .get(...OPEN_STATES) as { ms: number | null };
    return row.ms;
  }

  /** Ended sessions whose cascade may not have finished (a crash between the transition and the cleanup). */
  ended(): SessionRecord[] {
    const rows = this.#db.sql
      .prepare("SELECT * FROM sessions WHERE status IN ('completed', 'expired', 'terminated')")
      .all() as unknown as Row[];
    return rows.map(fromRow);
  }

  /** Counts tasks (executes and workflow steps) of a session and, when given, one of its departments. */
  countTask(sessionId: string, departmentId: string | null, failed: boolean): void {
    const stmt = this.#db.sql.prepare(
      `INSERT INTO session_counters (session_id, department_id, tasks_total, tasks_failed) VALUES (?, ?, 1, ?)
       ON CONFLICT (session_id, department_id) DO UPDATE SET tasks_total = tasks_total + 1, tasks_failed = tasks_failed + excluded.tasks_failed`,
    );
    this.#db.tx(() => {
      stmt.run(sessionId, '', failed ? 1 : 0);
      if (departmentId) stmt.run(sessionId, departmentId, failed ? 1 : 0);
    });
  }

  /** Task counts of a session (`departmentId` omitted) or of one department. */
  tasks(sessionId: string, departmentId = ''): { total: number; failed: number } {
    const row = this.#db.sql
      .prepare('SELECT tasks_total AS total, tasks_failed AS failed FROM session_counters WHERE session_id = ? AND department_id = ?')
      .get(sessionId, departmentId) as { total: number; failed: number } | undefined;
    return row ?? { total: 0, failed: 0 };
  }

  deleteCounters(sessionId: string): void {
    this.#db.sql.prepare('DELETE FROM session_counters WHERE session_id = ?').run(sessionId);
  }
}
