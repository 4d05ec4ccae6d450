import { livePage, type Db } from '../../core/db.ts';
import type { EnvFile } from './files.ts';
import type { Template } from './template.ts';

export interface EnvironmentRecord {
  id: string;
  workspace: string;
  name: string;
  template: string;
  templateVersion: number;
  /**
   * The template as it was when the environment was made: its sandboxes keep getting that image,
   * ceiling, policy and files after a release ships a newer version of the template.
   */
  snapshot: Template;
  /** Values of the variables that are not secrets, canonical strings. */
  variables: Record<string, string>;
  /** Names of the variables whose values are sealed in {@link sealed}. */
  secretNames: string[];
  /** The secret values (`{NAME: value}`) sealed by the SecretBox with the record id as additional data; null without secrets or once deleted. */
  sealed: string | null;
  /** The environment's own files (the template's come from {@link snapshot}). */
  files: EnvFile[];
  createdBy: string | null;
  createdMs: number;
  updatedMs: number;
  deletedMs: number | null;
}

interface Row {
  id: string;
  workspace: string;
  name: string;
  template: string;
  template_version: number;
  template_snapshot: string;
  variables: string;
  secret_names: string;
  secrets: string | null;
  files: string;
  created_by: string | null;
  created_ms: number;
  updated_ms: number;
  deleted_ms: number | null;
}

const fromRow = (r: Row): EnvironmentRecord => ({
  id: r.id,
  workspace: r.workspace,
  name: r.name,
  template: r.template,
  templateVersion: r.template_version,
  snapshot: JSON.parse(r.template_snapshot) as Template,
  variables: JSON.parse(r.variables) as Record<string, string>,
  secretNames: JSON.parse(r.secret_names) as string[],
  sealed: r.secrets,
  files: JSON.parse(r.files) as EnvFile[],
  createdBy: r.created_by,
  createdMs: r.created_ms,
  updatedMs: r.updated_ms,
  deletedMs: r.deleted_ms,
});

/**
 * Environments in the embedded store. Reads take the workspace: another workspace's environment
 * is a missing one. Deleted environments keep their row (name, template, plain variables) for
 * events and audit, but their sealed secrets are erased.
 */
export class EnvironmentStore {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }

  insert(r: EnvironmentRecord): void {
    this.#db.sql
      .prepare(
        `INSERT INTO environments (id, workspace, name, template, template_version, template_snapshot, variables, secret_names, secrets,
           files, created_by, created_ms, updated_ms, deleted_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        r.id,
        r.workspace,
        r.name,
        r.template,
        r.templateVersion,
        JSON.stringify(r.snapshot),
        JSON.stringify(r.variables),
        JSON.stringify(r.secretNames),
        r.sealed,
        JSON.stringify(r.files),
        r.createdBy,
        r.createdMs,
        r.updatedMs,
        r.deletedMs,
      );
  }

  /** Any record by id, whatever its workspace or state (internal use). */
  byId(id: string): EnvironmentRecord | null {
    const row = this.#db.sql.prepare('SELECT * FROM environments WHERE id = ?').get(id) as Row | undefined;
    return row ? fromRow(row) : null;
  }

  /** An environment `workspace` can see: its own, not deleted. */
  get(workspace: string, id: string): EnvironmentRecord | null {
    const row = this.#db.sql
      .prepare('SELECT * FROM environments WHERE id = ? AND workspace = ? AND deleted_ms IS NULL')
      .get(id, workspace) as Row | undefined;
    return row ? fromRow(row) : null;
  }

  list(workspace: string, f: { template?: string; limit: number; offset: number }): { items: EnvironmentRecord[]; total: number } {
    const { rows, total } = livePage<Row>(this.#db, 'environments', workspace, { template: f.template }, f);
    return { items: rows.map(fromRow), total };
  }

  /** Marks it deleted and erases its sealed secrets; false when it was already gone. */
  markDeleted(id: string, nowMs: number): boolean {
    const r = this.#db.sql
      .prepare(
        "UPDATE environments SET deleted_ms = ?, updated_ms = ?, secrets = NULL, secret_names = '[]' WHERE id = ? AND deleted_ms IS NULL",
      )
      .run(nowMs, nowMs, id);
    return Number(r.changes) > 0;
  }
}
