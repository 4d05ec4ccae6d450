import type { Db } from '../../core/db.ts';

/** A vault entry as stored: the value only sealed (see `secrets.ts`), never in clear. */
export interface SecretRecord {
  id: string;
  workspace: string;
  name: string;
  description: string;
  /** The sealed value (AES-256-GCM, bound to the id); null once deleted. */
  sealed: string | null;
  /** 1 at creation, +1 at every rotation. */
  version: number;
  createdBy: string | null;
  createdMs: number;
  updatedMs: number;
  rotatedMs: number | null;
  deletedMs: number | null;
}

interface Row {
  id: string;
  workspace: string;
  name: string;
  description: string;
  value: string | null;
  version: number;
  created_by: string | null;
  created_ms: number;
  updated_ms: number;
  rotated_ms: number | null;
  deleted_ms: number | null;
}

const fromRow = (r: Row): SecretRecord => ({
  id: r.id,
  workspace: r.workspace,
  name: r.name,
  description: r.description,
  sealed: r.value,
  version: r.version,
  createdBy: r.created_by,
  createdMs: r.created_ms,
  updatedMs: r.updated_ms,
  rotatedMs: r.rotated_ms,
  deletedMs: r.deleted_ms,
});

/** Vault entries in the embedded store. Reads take the workspace: another workspace's entry is a missing one. */
export class VaultStore {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }

  insert(r: SecretRecord): void {
    this.#db.sql
      .prepare(
        `INSERT INTO vault_secrets (id, workspace, name, description, value, version, created_by, created_ms, updated_ms, rotated_ms, deleted_ms)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(r.id, r.workspace, r.name, r.description, r.sealed, r.version, r.createdBy, r.createdMs, r.updatedMs, r.rotatedMs, r.deletedMs);
  }

  byId(id: string): SecretRecord | null {
    const row = this.#db.sql.prepare('SELECT * FROM vault_secrets WHERE id = ?').get(id) as Row | undefined;
    return row ? fromRow(row) : null;
  }

  get(workspace: string, id: string): SecretRecord | null {
    const row = this.#db.sql
      .prepare('SELECT * FROM vault_secrets WHERE id = ? AND workspace = ? AND deleted_ms IS NULL')
      .get(id, workspace) as Row | undefined;
    return row ? fromRow(row) : null;
  }

  byName(workspace: string, name: string): SecretRecord | null {
    const row = this.#db.sql
      .prepare('SELECT * FROM vault_secrets WHERE workspace = ? AND name = ? AND deleted_ms IS NULL')
      .get(workspace, name) as Row | undefined;
    return row ? fromRow(row) : null;
  }

  list(workspace: string, f: { limit: number; offset: number }): { items: SecretRecord[]; total: number } {
    const total = (
      this.#db.sql.prepare('SELECT count(*) AS n FROM vault_secrets WHERE workspace = ? AND deleted_ms IS NULL').get(workspace) as {
        n: number;
      }
    ).n;
    const rows = this.#db.sql
      .prepare('SELECT * FROM vault_secrets WHERE workspace = ? AND deleted_ms IS NULL ORDER BY name, id LIMIT ? OFFSET ?')
      .all(workspace, f.limit, f.offset) as unknown as Row[];
    return { items: rows.map(fromRow), total };
  }

  /** Name and description. */
  rename(id: string, nowMs: number, name: string, description: string): void {
    this.#db.sql
      .prepare('UPDATE vault_secrets SET name = ?, description = ?, updated_ms = ? WHERE id = ?')
      .run(name, description, nowMs, id);
  }

  /** A new sealed value and version. */
  rotate(id: string, nowMs: number, sealed: string, version: number): void {
    this.#db.sql
      .prepare('UPDATE vault_secrets SET value = ?, version = ?, rotated_ms = ?, updated_ms = ? WHERE id = ?')
      .run(sealed, version, nowMs, nowMs, id);
  }

  /** Marks the entry deleted and drops its sealed value: nothing of it can be read again. */
  markDeleted(id: string, nowMs: number): void {
    this.#db.sql.prepare('UPDATE vault_secrets SET value = NULL, deleted_ms = ?, updated_ms = ? WHERE id = ?').run(nowMs, nowMs, id);
  }
}
