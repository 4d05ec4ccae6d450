import { livePage, type Db } from '../../core/db.ts';
import type { PartialLimits } from '../../policies/limits.ts';

export interface DepartmentConfig {
  maxConcurrentTasks: number;
  resourceLimits?: PartialLimits;
}

export interface DepartmentRecord {
  id: string;
  workspace: string;
  sessionId: string;
  name: string;
  domain: string;
  capabilities: string[];
  config: DepartmentConfig;
  createdMs: number;
  updatedMs: number;
  deletedMs: number | null;
}

interface Row {
  id: string;
  workspace: string;
  session_id: string;
  name: string;
  domain: string;
  capabilities: string;
  config: string;
  created_ms: number;
  updated_ms: number;
  deleted_ms: number | null;
}

const fromRow = (r: Row): DepartmentRecord => ({
  id: r.id,
  workspace: r.workspace,
  sessionId: r.session_id,
  name: r.name,
  domain: r.domain,
  capabilities: JSON.parse(r.capabilities) as string[],
  config: JSON.parse(r.config) as DepartmentConfig,
  createdMs: r.created_ms,
  updatedMs: r.updated_ms,
  deletedMs: r.deleted_ms,
});

/** Departments in the embedded store; deleted ones are kept (for events and audit) but never read through the API. */
export class DepartmentStore {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }

  insert(r: DepartmentRecord): void {
    this.#db.sql
      .prepare(
        `INSERT INTO departments (id, workspace, session_id, name, domain, capabilities, config, created_ms, updated_ms, deleted_ms)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        r.id,
        r.workspace,
        r.sessionId,
        r.name,
        r.domain,
        JSON.stringify(r.capabilities),
        JSON.stringify(r.config),
        r.createdMs,
        r.updatedMs,
        r.deletedMs,
      );
  }

  byId(id: string): DepartmentRecord | null {
    const row = this.#db.sql.prepare('SELECT * FROM departments WHERE id = ?').get(id) as Row | undefined;
    return row ? fromRow(row) : null;
  }

  get(workspace: string, id: string): DepartmentRecord | null {
    const row = this.#db.sql
      .prepare('SELECT * FROM departments WHERE id = ? AND workspace = ? AND deleted_ms IS NULL')
      .get(id, workspace) as Row | undefined;
    return row ? fromRow(row) : null;
  }

  list(
    workspace: string,
    f: { sessionId?: string; domain?: string; limit: number; offset: number },
  ): { items: DepartmentRecord[]; total: number } {
    const { rows, total } = livePage<Row>(this.#db, 'departments', workspace, { session_id: f.sessionId, domain: f.domain }, f);
    return { items: rows.map(fromRow), total };
  }

  /** A session's departments that are not deleted, oldest first. */
  ofSession(sessionId: string): DepartmentRecord[] {
    const rows = this.#db.sql
      .prepare('SELECT * FROM departments WHERE session_id = ? AND deleted_ms IS NULL ORDER BY created_ms, id')
      .all(sessionId) as unknown as Row[];
    return rows.map(fromRow);
  }

  countOf(sessionId: string): number {
    return (
      this.#db.sql.prepare('SELECT count(*) AS n FROM departments WHERE session_id = ? AND deleted_ms IS NULL').get(sessionId) as {
        n: number;
      }
    ).n;
  }

  /**
   * Inserts `r` unless its session already has `max` departments, in one transaction, so
   * concurrent creates cannot both take the last place. Returns false when full.
   */
  insertBounded(r: DepartmentRecord, max: number): boolean {
    return this.#db.tx(() => {
      if (this.countOf(r.sessionId) >= max) return false;
      this.insert(r);
      return true;
    });
  }

  markDeleted(id: string, nowMs: number): void {
    this.#db.sql.prepare('UPDATE departments SET deleted_ms = ?, updated_ms = ? WHERE id = ? AND deleted_ms IS NULL').run(nowMs, nowMs, id);
  }

  deleteOfSession(sessionId: string, nowMs: number): void {
    this.#db.sql
      .prepare('UPDATE departments SET deleted_ms = ?, updated_ms = ? WHERE session_id = ? AND deleted_ms IS NULL')
      .run(nowMs, nowMs, sessionId);
  }

  /**
   * Makes `records` a session's departments (a checkpoint restore), in one transaction: the ones
   * not among them are marked deleted; these are put back as recorded (same ids), deleted or not.
   */
  restoreOfSession(sessionId: string, records: readonly DepartmentRecord[], nowMs: number): void {
    this.#db.tx(() => {
      this.deleteOfSession(sessionId, nowMs);
      for (const r of records) {
        this.#db.sql.prepare('DELETE FROM departments WHERE id = ?').run(r.id);
        this.insert({ ...r, sessionId, deletedMs: null, updatedMs: nowMs });
      }
    });
  }
}
