import type { Db } from '../../core/db.ts';
import type { RetentionPolicy, RankedItem } from './retention.ts';

export interface ContextConfig {
  maxSize: number;
  retentionPolicy: RetentionPolicy;
}

export interface ContextWindowRecord {
  id: string;
  workspace: string;
  sessionId: string;
  name: string;
  config: ContextConfig;
  createdMs: number;
  updatedMs: number;
}

export interface ContextItemRecord extends RankedItem {
  contextId: string;
  type: 'text' | 'file' | 'url';
  content: string;
  metadata: Record<string, unknown>;
  sizeBytes: number;
}

interface WindowRow {
  id: string;
  workspace: string;
  session_id: string;
  name: string;
  config: string;
  created_ms: number;
  updated_ms: number;
}
interface ItemRow {
  seq: number;
  id: string;
  context_id: string;
  type: string;
  content: string;
  metadata: string;
  importance: number;
  size_bytes: number;
  created_ms: number;
}

const windowOf = (r: WindowRow): ContextWindowRecord => ({
  id: r.id,
  workspace: r.workspace,
  sessionId: r.session_id,
  name: r.name,
  config: JSON.parse(r.config) as ContextConfig,
  createdMs: r.created_ms,
  updatedMs: r.updated_ms,
});
const itemOf = (r: ItemRow): ContextItemRecord => ({
  seq: r.seq,
  id: r.id,
  contextId: r.context_id,
  type: r.type as ContextItemRecord['type'],
  content: r.content,
  metadata: JSON.parse(r.metadata) as Record<string, unknown>,
  importance: r.importance,
  sizeBytes: r.size_bytes,
  createdMs: r.created_ms,
});

/** What a checkpoint keeps of a session's context: every window and its items, as stored. */
export interface ContextSnapshot {
  windows: (ContextWindowRecord & { items: Omit<ContextItemRecord, 'seq'>[] })[];
}

export class ContextStore {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }

  tx<T>(fn: () => T): T {
    return this.#db.tx(fn);
  }

  insertWindow(w: ContextWindowRecord): void {
    this.#db.sql
      .prepare('INSERT INTO context_windows (id, workspace, session_id, name, config, created_ms, updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(w.id, w.workspace, w.sessionId, w.name, JSON.stringify(w.config), w.createdMs, w.updatedMs);
  }

  byId(id: string): ContextWindowRecord | null {
    const row = this.#db.sql.prepare('SELECT * FROM context_windows WHERE id = ? AND deleted_ms IS NULL').get(id) as WindowRow | undefined;
    return row ? windowOf(row) : null;
  }

  anyById(id: string): ContextWindowRecord | null {
    const row = this.#db.sql.prepare('SELECT * FROM context_windows WHERE id = ?').get(id) as WindowRow | undefined;
    return row ? windowOf(row) : null;
  }

  get(workspace: string, id: string): ContextWindowRecord | null {
    const w = this.byId(id);
    return w && w.workspace === workspace ? w : null;
  }

  windowsOf(sessionId: string): ContextWindowRecord[] {
    return (
      this.#db.sql
        .prepare('SELECT * FROM context_windows WHERE session_id = ? AND deleted_ms IS NULL ORDER BY created_ms, id')
        .all(sessionId) as unknown as WindowRow[]
    ).map(windowOf);
  }

  insertItem(it: Omit<ContextItemRecord, 'seq'>): ContextItemRecord {
    const row = this.#db.sql
      .prepare(
        `INSERT INTO context_items (id, context_id, type, content, metadata, importance, size_bytes, created_ms)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING *`,
      )
      .get(
        it.id,
        it.contextId,
        it.type,
        it.content,
        JSON.stringify(it.metadata),
        it.importance,
        it.sizeBytes,
        it.createdMs,
      ) as unknown as ItemRow;
    return itemOf(row);
  }

  /** Every item's ranking fields (no content), for the retention rule. */
  ranked(contextId: string): RankedItem[] {
    return this.#db.sql
      .prepare('SELECT id, seq, importance, created_ms AS createdMs FROM context_items WHERE context_id = ?')
      .all(contextId) as unknown as RankedItem[];
  }

  deleteItems(ids: readonly string[]): void {
    const stmt = this.#db.sql.prepare('DELETE FROM context_items WHERE id = ?');
    for (const id of ids) stmt.run(id);
  }

  items(contextId: string, limit: number, offset: number): { items: ContextItemRecord[]; total: number } {
    const total = (this.#db.sql.prepare('SELECT count(*) AS n FROM context_items WHERE context_id = ?').get(contextId) as { n: number }).n;
    const rows = this.#db.sql
      .prepare('SELECT * FROM context_items WHERE context_id = ? ORDER BY seq LIMIT ? OFFSET ?')
      .all(contextId, limit, offset) as unknown as ItemRow[];
    return { items: rows.map(itemOf), total };
  }

  stats(contextId: string): { items: number; bytes: number } {
    const r = this.#db.sql
      .prepare('SELECT count(*) AS items, COALESCE(sum(size_bytes), 0) AS bytes FROM context_items WHERE context_id = ?')
      .get(contextId) as { items: number; bytes: number };
    return r;
  }

  snapshot(sessionId: string): ContextSnapshot {
    return {
      windows: this.windowsOf(sessionId).map((w) => ({
        ...w,
        items: (
          this.#db.sql.prepare('SELECT * FROM context_items WHERE context_id = ? ORDER BY seq').all(w.id) as unknown as ItemRow[]
        ).map((r) => {
          const { seq: _seq, ...rest } = itemOf(r);
          return rest;
        }),
      })),
    };
  }

  /** Replaces a session's windows and items with a snapshot's, in one transaction (ids kept). */
  restore(sessionId: string, snap: ContextSnapshot, nowMs: number): void {
    this.#db.tx(() => {
      this.deleteOfSession(sessionId, nowMs);
      for (const w of snap.windows) {
        this.#db.sql.prepare('DELETE FROM context_windows WHERE id = ?').run(w.id);
        const { items, ...win } = w;
        this.insertWindow({ ...win, updatedMs: nowMs });
        for (const it of items) this.insertItem(it);
      }
    });
  }

  /** Removes every window of a session and their items (their content is gone; the window rows stay marked). */
  deleteOfSession(sessionId: string, nowMs: number): void {
    this.#db.tx(() => {
      this.#db.sql
        .prepare('DELETE FROM context_items WHERE context_id IN (SELECT id FROM context_windows WHERE session_id = ?)')
        .run(sessionId);
      this.#db.sql
        .prepare('UPDATE context_windows SET deleted_ms = ?, updated_ms = ? WHERE session_id = ? AND deleted_ms IS NULL')
        .run(nowMs, nowMs, sessionId);
    });
  }
}
