import type { Db } from '../../core/db.ts';

export const PROVIDER_TYPES = ['openai-compatible', 'anthropic'] as const;
export type ProviderType = (typeof PROVIDER_TYPES)[number];

/** USD per million tokens. */
export interface Price {
  input: number;
  output: number;
}

/** An LLM provider an admin registered for a workspace; its key only sealed (write-only). */
export interface ProviderRecord {
  id: string;
  workspace: string;
  name: string;
  type: ProviderType;
  baseUrl: string;
  /** The API key sealed by the secrets box (bound to the id); null without one. */
  sealedKey: string | null;
  defaultModel: string;
  pricing: Record<string, Price>;
  createdBy: string | null;
  createdMs: number;
  updatedMs: number;
  deletedMs: number | null;
}

interface Row {
  id: string;
  workspace: string;
  name: string;
  type: string;
  base_url: string;
  api_key: string | null;
  default_model: string;
  pricing: string;
  created_by: string | null;
  created_ms: number;
  updated_ms: number;
  deleted_ms: number | null;
}

const fromRow = (r: Row): ProviderRecord => ({
  id: r.id,
  workspace: r.workspace,
  name: r.name,
  type: r.type as ProviderType,
  baseUrl: r.base_url,
  sealedKey: r.api_key,
  defaultModel: r.default_model,
  pricing: JSON.parse(r.pricing) as Record<string, Price>,
  createdBy: r.created_by,
  createdMs: r.created_ms,
  updatedMs: r.updated_ms,
  deletedMs: r.deleted_ms,
});

export class ProviderStore {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }

  insert(r: ProviderRecord): void {
    this.#db.sql
      .prepare(
        `INSERT INTO llm_providers (id, workspace, name, type, base_url, api_key, default_model, pricing, created_by, created_ms, updated_ms, deleted_ms)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        r.id,
        r.workspace,
        r.name,
        r.type,
        r.baseUrl,
        r.sealedKey,
        r.defaultModel,
        JSON.stringify(r.pricing),
        r.createdBy,
        r.createdMs,
        r.updatedMs,
        r.deletedMs,
      );
  }

  get(workspace: string, id: string): ProviderRecord | null {
    const row = this.#db.sql
      .prepare('SELECT * FROM llm_providers WHERE id = ? AND workspace = ? AND deleted_ms IS NULL')
      .get(id, workspace) as Row | undefined;
    return row ? fromRow(row) : null;
  }

  list(workspace: string): ProviderRecord[] {
    return (
      this.#db.sql
        .prepare('SELECT * FROM llm_providers WHERE workspace = ? AND deleted_ms IS NULL ORDER BY name, id')
        .all(workspace) as unknown as Row[]
    ).map(fromRow);
  }

  count(workspace: string): number {
    return (
      this.#db.sql.prepare('SELECT count(*) AS n FROM llm_providers WHERE workspace = ? AND deleted_ms IS NULL').get(workspace) as {
        n: number;
      }
    ).n;
  }

  update(r: ProviderRecord): void {
    this.#db.sql
      .prepare('UPDATE llm_providers SET name = ?, base_url = ?, api_key = ?, default_model = ?, pricing = ?, updated_ms = ? WHERE id = ?')
      .run(r.name, r.baseUrl, r.sealedKey, r.defaultModel, JSON.stringify(r.pricing), r.updatedMs, r.id);
  }

  markDeleted(id: string, nowMs: number): void {
    this.#db.sql.prepare('UPDATE llm_providers SET api_key = NULL, deleted_ms = ?, updated_ms = ? WHERE id = ?').run(nowMs, nowMs, id);
  }
}
