import { hash } from 'node:crypto';
import type { Db } from '../../core/db.ts';
import type { SandboxOwner, StoredSpec } from '../../runtime/store/sandboxes.ts';
import type { ContextSnapshot } from '../context/store.ts';
import type { DepartmentRecord } from '../departments/store.ts';
import type { SessionConfig } from '../sessions/store.ts';
import type { MountSummary } from './manifest.ts';

/** One captured mount of a sandbox: its manifest blob and what it holds. */
export interface MountCapture extends MountSummary {
  path: string;
  /** The manifest blob's key (see `contentKey`). */
  manifest: string;
  listedAtS: number;
  /** Content bytes this checkpoint stored anew (the rest was already stored). */
  newBytes: number;
  /** Files whose content was read out of the sandbox (the others were unchanged since its previous checkpoint). */
  filesRead: number;
  /** Entries not captured (fifos, sockets, devices, files gone or unreadable while being read). */
  skipped: number;
}

/** A sandbox of the session as the checkpoint saw it: enough to recreate it (same spec) and put its files back. */
export interface SandboxCapture {
  sandboxId: string;
  name: string;
  image: string;
  status: string;
  spec: StoredSpec;
  owner: SandboxOwner;
  /** Empty when the sandbox was not running (its writable mounts are gone with its container). */
  mounts: MountCapture[];
}

/** The session's own state: its record and its departments. */
export interface StateSnapshot {
  session: { name: string; description: string; status: string; config: SessionConfig };
  departments: DepartmentRecord[];
}

export interface CheckpointRecord {
  id: string;
  workspace: string;
  sessionId: string;
  name: string;
  description: string;
  data: Record<string, unknown>;
  state: StateSnapshot;
  context: ContextSnapshot;
  messages: unknown[];
  files: SandboxCapture[];
  /** Content bytes of every captured file. */
  bytes: number;
  fileCount: number;
  createdBy: string | null;
  createdMs: number;
}

/** A checkpoint without its state, context and messages (lists). */
export type CheckpointSummary = Omit<CheckpointRecord, 'state' | 'context' | 'messages'> & {
  contextWindows: number;
  contextItems: number;
  messageCount: number;
  departments: number;
};

interface Row {
  id: string;
  workspace: string;
  session_id: string;
  name: string;
  description: string;
  data: string;
  state: string;
  context: string;
  messages: string;
  files: string;
  bytes: number;
  file_count: number;
  created_by: string | null;
  created_ms: number;
}

const fromRow = (r: Row): CheckpointRecord => ({
  id: r.id,
  workspace: r.workspace,
  sessionId: r.session_id,
  name: r.name,
  description: r.description,
  data: JSON.parse(r.data) as Record<string, unknown>,
  state: JSON.parse(r.state) as StateSnapshot,
  context: JSON.parse(r.context) as ContextSnapshot,
  messages: JSON.parse(r.messages) as unknown[],
  files: JSON.parse(r.files) as SandboxCapture[],
  bytes: r.bytes,
  fileCount: r.file_count,
  createdBy: r.created_by,
  createdMs: r.created_ms,
});

const SUMMARY_COLUMNS = `id, workspace, session_id, name, description, data, files, bytes, file_count, created_by, created_ms,
  json_array_length(json_extract(state, '$.departments')) AS departments,
  json_array_length(json_extract(context, '$.windows')) AS context_windows,
  (SELECT COALESCE(sum(json_array_length(value, '$.items')), 0) FROM json_each(context, '$.windows')) AS context_items,
  json_array_length(messages) AS message_count`;

type SummaryRow = Omit<Row, 'state' | 'context' | 'messages'> & {
  departments: number;
  context_windows: number;
  context_items: number;
  message_count: number;
};

const summaryOf = (r: SummaryRow): CheckpointSummary => ({
  id: r.id,
  workspace: r.workspace,
  sessionId: r.session_id,
  name: r.name,
  description: r.description,
  data: JSON.parse(r.data) as Record<string, unknown>,
  files: JSON.parse(r.files) as SandboxCapture[],
  bytes: r.bytes,
  fileCount: r.file_count,
  createdBy: r.created_by,
  createdMs: r.created_ms,
  departments: r.departments,
  contextWindows: r.context_windows,
  contextItems: r.context_items,
  messageCount: r.message_count,
});

/**
 * Checkpoints and the blobs each refers to. A checkpoint row and its blob references are written
 * in one transaction, and removed in one; which blobs nothing refers to any more is the answer of
 * the removal (the blob store deletes them).
 *
 * References are kept per **blob set**: the distinct digests of a checkpoint, stored once as rows
 * of `checkpoint_blobs` (`blob_set`, `digest`) and named by the sha256 of their sorted list. A
 * checkpoint whose digests form a set a checkpoint already points at (`checkpoints.blob_set`)
 * writes no reference rows: the second checkpoint of an unchanged workspace, which refers to the
 * very blobs of the one before it (writing them again took 1.2 ms of its ~9.5 ms). A set's rows
 * exist exactly while a checkpoint points at it: the delete of the last one removes them, in the
 * same transaction. The references written before sets (migration 10) are a set per checkpoint,
 * named after it, which no sha256 matches: never shared.
 */
export class CheckpointStore {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }

  /**
   * Inserts `r` and its blob references unless its session already keeps `max` checkpoints (one
   * transaction, so concurrent creates cannot both take the last place). False when full.
   * `before` runs in that transaction once the count allows the checkpoint, before its row is
   * inserted (the capture's pending content rows: one commit for the whole checkpoint).
   */
  insertBounded(r: CheckpointRecord, digests: Iterable<string>, max: number, before?: () => void): boolean {
    const list = [...new Set(digests)].sort();
    const set = hash('sha256', list.join('\n'), 'hex');
    return this.#db.tx(() => {
      if (this.countOf(r.sessionId) >= max) return false;
      before?.();
      const stored = this.#db.sql.prepare('SELECT 1 FROM checkpoints WHERE blob_set = ? LIMIT 1').get(set) !== undefined;
      this.#db.sql
        .prepare(
          `INSERT INTO checkpoints (id, workspace, session_id, name, description, data, state, context, messages, files, bytes, file_count,
             created_by, created_ms, blob_set) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(
          r.id,
          r.workspace,
          r.sessionId,
          r.name,
          r.description,
          JSON.stringify(r.data),
          JSON.stringify(r.state),
          JSON.stringify(r.context),
          JSON.stringify(r.messages),
          JSON.stringify(r.files),
          r.bytes,
          r.fileCount,
          r.createdBy,
          r.createdMs,
          set,
        );
      // One statement for all references (a JSON array of digests): a row each from JS cost about a third more.
      if (!stored && list.length)
        this.#db.sql
          .prepare('INSERT OR IGNORE INTO checkpoint_blobs (blob_set, digest) SELECT ?, value FROM json_each(?)')
          .run(set, JSON.stringify(list));
      return true;
    });
  }

  countOf(sessionId: string): number {
    return (this.#db.sql.prepare('SELECT count(*) AS n FROM checkpoints WHERE session_id = ?').get(sessionId) as { n: number }).n;
  }

  /** Any checkpoint by id, whatever its workspace (internal use). */
  byId(id: string): CheckpointRecord | null {
    const row = this.#db.sql.prepare('SELECT * FROM checkpoints WHERE id = ?').get(id) as Row | undefined;
    return row ? fromRow(row) : null;
  }

  /** The workspace a checkpoint belongs to, whatever it is (to tell a foreign id from a missing one). */
  workspaceOf(id: string): string | null {
    const row = this.#db.sql.prepare('SELECT workspace FROM checkpoints WHERE id = ?').get(id) as { workspace: string } | undefined;
    return row?.workspace ?? null;
  }

  exists(id: string): boolean {
    return this.#db.sql.prepare('SELECT 1 FROM checkpoints WHERE id = ?').get(id) !== undefined;
  }

  get(workspace: string, id: string): CheckpointRecord | null {
    const r = this.byId(id);
    return r && r.workspace === workspace ? r : null;
  }

  summary(workspace: string, id: string): CheckpointSummary | null {
    const row = this.#db.sql.prepare(`SELECT ${SUMMARY_COLUMNS} FROM checkpoints WHERE id = ? AND workspace = ?`).get(id, workspace) as
      SummaryRow | undefined;
    return row ? summaryOf(row) : null;
  }

  list(workspace: string, f: { sessionId?: string; limit: number; offset: number }): { items: CheckpointSummary[]; total: number } {
    const where = f.sessionId ? 'workspace = ? AND session_id = ?' : 'workspace = ?';
    const args = f.sessionId ? [workspace, f.sessionId] : [workspace];
    const total = (this.#db.sql.prepare(`SELECT count(*) AS n FROM checkpoints WHERE ${where}`).get(...args) as { n: number }).n;
    const rows = this.#db.sql
      .prepare(`SELECT ${SUMMARY_COLUMNS} FROM checkpoints WHERE ${where} ORDER BY created_ms DESC, id LIMIT ? OFFSET ?`)
      .all(...args, f.limit, f.offset) as unknown as SummaryRow[];
    return { items: rows.map(summaryOf), total };
  }

  /** The newest checkpoint of a session that captured `mount` of `sandboxId`, and that capture. */
  latestCapture(sessionId: string, sandboxId: string, mount: string): { checkpointId: string; capture: MountCapture } | null {
    // Only the capture itself is parsed here (SQLite's JSON functions find it): the rest of
    // `files` (each sandbox's spec) is several times its size.
    const rows = this.#db.sql
      .prepare(
        `SELECT id, (SELECT m.value FROM json_each(c.files) s, json_each(s.value, '$.mounts') m
                     WHERE s.value ->> '$.sandboxId' = ? AND m.value ->> '$.path' = ? LIMIT 1) AS capture
         FROM checkpoints c WHERE session_id = ? ORDER BY created_ms DESC, id DESC`,
      )
      .iterate(sandboxId, mount, sessionId) as Iterable<{ id: string; capture: string | null }>;
    for (const row of rows) if (row.capture !== null) return { checkpointId: row.id, capture: JSON.parse(row.capture) as MountCapture };
    return null;
  }

  /** The distinct digests checkpoint `id` refers to. */
  digestsOf(id: string): string[] {
    const rows = this.#db.sql
      .prepare('SELECT b.digest FROM checkpoints c JOIN checkpoint_blobs b ON b.blob_set = c.blob_set WHERE c.id = ?')
      .all(id) as { digest: string }[];
    return rows.map((r) => r.digest);
  }

  /** Which of `digests` a checkpoint refers to (one statement for all of them). */
  referenced(digests: readonly string[]): Set<string> {
    if (!digests.length) return new Set();
    const rows = this.#db.sql
      .prepare('SELECT DISTINCT digest FROM checkpoint_blobs WHERE digest IN (SELECT value FROM json_each(?))')
      .all(JSON.stringify(digests)) as { digest: string }[];
    return new Set(rows.map((r) => r.digest));
  }

  allDigests(): Set<string> {
    return new Set(
      (this.#db.sql.prepare('SELECT DISTINCT digest FROM checkpoint_blobs').all() as { digest: string }[]).map((r) => r.digest),
    );
  }

  /**
   * Removes checkpoints, and the blob sets no checkpoint points at any more; returns the digests
   * of those sets (the caller collects the unused ones: a blob of a set still in use stays used).
   */
  delete(ids: readonly string[]): string[] {
    return this.#db.tx(() => {
      const digests = new Set<string>();
      for (const id of ids) {
        const row = this.#db.sql.prepare('DELETE FROM checkpoints WHERE id = ? RETURNING blob_set').get(id) as
          { blob_set: string | null } | undefined;
        if (row?.blob_set) for (const d of this.#dropSetIfUnused(row.blob_set)) digests.add(d);
      }
      return [...digests];
    });
  }

  /** Removes the reference rows of `set` when no checkpoint points at it; returns its digests then. */
  #dropSetIfUnused(set: string): string[] {
    if (this.#db.sql.prepare('SELECT 1 FROM checkpoints WHERE blob_set = ? LIMIT 1').get(set)) return [];
    const rows = this.#db.sql.prepare('DELETE FROM checkpoint_blobs WHERE blob_set = ? RETURNING digest').all(set) as { digest: string }[];
    return rows.map((r) => r.digest);
  }

  idsOfSession(sessionId: string): string[] {
    return (this.#db.sql.prepare('SELECT id FROM checkpoints WHERE session_id = ?').all(sessionId) as { id: string }[]).map((r) => r.id);
  }
}
