import { closeSync, fdatasyncSync, mkdirSync, openSync } from 'node:fs';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { MIGRATIONS } from './migrations.ts';

export { MIGRATIONS } from './migrations.ts';

export interface Db {
  readonly sql: DatabaseSync;
  readonly file: string;
  close(): void;
  /** Runs `fn` in one transaction (BEGIN IMMEDIATE), rolling back on throw. */
  tx<T>(fn: () => T): T;
  /** Proves the store accepts writes (for readiness). */
  checkWritable(): void;
  /**
   * Makes every committed transaction durable now (fdatasync of the WAL; the database file is
   * flushed by each WAL checkpoint). With `synchronous = NORMAL` a commit survives the process
   * dying but not a power loss until then: call it before acting outside the store on a commit
   * that must not be undone, such as removing the files of blobs a deleted checkpoint referred to.
   */
  syncWal(): void;
}

/**
 * Page size of a new store: 16 KiB instead of SQLite's 4 KiB. A commit writes the WAL a frame
 * per page, and a first checkpoint commits a megabyte of small file contents: 3.6–4.3 ms with
 * 16 KiB pages against 5.3–6.1 ms with 4 KiB, while a one-row commit stays at 0.04–0.05 ms
 * (against 0.03–0.04; 64 KiB pages save 0.4 ms more per megabyte and double that). Measured with
 * node:sqlite, WAL, synchronous NORMAL, alternated in one run.
 */
const PAGE_SIZE = 16_384;
/** What the WAL may grow to before a commit checkpoints it itself (SQLite's default is 1000 pages). */
const WAL_AUTOCHECKPOINT_BYTES = 64 * 1024 * 1024;
/** How often the idle checkpoint looks whether the store was written to and is now quiet. */
const IDLE_CHECKPOINT_MS = 200;
/** A WAL written to for this long without a quiet tick is checkpointed anyway (a steady write load). */
const MAX_CHECKPOINT_DELAY_MS = 2_000;

/**
 * The embedded store: one SQLite file through `node:sqlite` (no native addon), WAL mode,
 * migrations (`migrations.ts`, the only place tables are created or changed) applied in order
 * and tracked by `PRAGMA user_version`.
 *
 * WAL checkpoints (copying the WAL into the database file, with its fsyncs) are moved off the
 * commits: SQLite's default runs one inside whichever commit crosses 1000 pages, 45–60 ms on
 * this machine, landing on a request (a checkpoint create of a 1 MB workspace every few). Here a
 * timer owned by this object runs a PASSIVE checkpoint once the store was written to and then
 * stayed quiet for a tick (or after {@link MAX_CHECKPOINT_DELAY_MS} of steady writes); the
 * automatic one stays as a bound at {@link WAL_AUTOCHECKPOINT_BYTES}. Durability is
 * unchanged: a commit is in the WAL when it returns whichever way the WAL is checkpointed (with
 * `synchronous = NORMAL`, as before: it survives the process being killed, kill -9 included).
 */
export function openDb(dataDir: string, file = 'director.db'): Db {
  const full = file === ':memory:' ? file : path.join(dataDir, file);
  if (file !== ':memory:') mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const sql = new DatabaseSync(full);
  // Takes effect only in a new store, and only before `journal_mode = WAL`, which writes a new file's header; an existing store keeps its size.
  sql.exec(`PRAGMA page_size = ${PAGE_SIZE}`);
  sql.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;');
  const version = (sql.prepare('PRAGMA user_version').get() as { user_version: number }).user_version;
  if (version > MIGRATIONS.length) {
    // Written by a newer Director: its tables are not the ones this code knows (a downgrade).
    sql.close();
    throw new Error(
      `store ${full} is at schema version ${version}, newer than this Director's ${MIGRATIONS.length}: run the newer Director`,
    );
  }
  for (let v = version; v < MIGRATIONS.length; v++) {
    sql.exec('BEGIN IMMEDIATE');
    try {
      sql.exec(MIGRATIONS[v]!.sql);
      sql.exec(`PRAGMA user_version = ${v + 1}`);
      sql.exec('COMMIT');
    } catch (err) {
      sql.exec('ROLLBACK');
      throw new Error(`store migration ${v + 1} failed`, { cause: err });
    }
  }
  // Statements are prepared once per distinct SQL text and reused (preparing dominated hot
  // paths). The cache is bounded: a workload with unbounded distinct SQL just re-prepares.
  const prepareRaw = sql.prepare.bind(sql);
  const statements = new Map<string, ReturnType<typeof prepareRaw>>();
  sql.prepare = (text: string) => {
    let st = statements.get(text);
    if (!st) {
      if (statements.size >= 1000) statements.clear();
      st = prepareRaw(text);
      statements.set(text, st);
    }
    return st;
  };
  let depth = 0;
  let timer: NodeJS.Timeout | null = null;
  if (file !== ':memory:') {
    const pageSize = (sql.prepare('PRAGMA page_size').get() as { page_size: number }).page_size;
    sql.exec(`PRAGMA wal_autocheckpoint = ${Math.ceil(WAL_AUTOCHECKPOINT_BYTES / pageSize)}`);
    const changesStmt = sql.prepare('SELECT total_changes() AS n');
    const changes = () => (changesStmt.get() as { n: number }).n;
    let seen = changes();
    let checkpointed = seen;
    let pendingSince = 0;
    timer = setInterval(() => {
      if (!sql.isOpen || depth > 0) return;
      const now = changes();
      if (now === checkpointed) return;
      const quiet = now === seen;
      if (!pendingSince) pendingSince = Date.now();
      seen = now;
      if (!quiet && Date.now() - pendingSince < MAX_CHECKPOINT_DELAY_MS) return;
      try {
        sql.exec('PRAGMA wal_checkpoint(PASSIVE)');
      } catch {
        return; // busy or closing: the next tick (or the automatic checkpoint) does it
      }
      checkpointed = now;
      pendingSince = 0;
    }, IDLE_CHECKPOINT_MS);
    timer.unref();
  }
  const healthStmt = sql.prepare('INSERT INTO _health (k, ms) VALUES (1, ?) ON CONFLICT(k) DO UPDATE SET ms = excluded.ms');
  return {
    sql,
    file: full,
    close: () => {
      if (timer) clearInterval(timer);
      if (sql.isOpen) sql.close();
    },
    tx<T>(fn: () => T): T {
      if (depth > 0) return fn();
      sql.exec('BEGIN IMMEDIATE');
      depth++;
      try {
        const out = fn();
        sql.exec('COMMIT');
        return out;
      } catch (err) {
        sql.exec('ROLLBACK');
        throw err;
      } finally {
        depth--;
      }
    },
    checkWritable: () => {
      healthStmt.run(Date.now());
    },
    syncWal: () => {
      if (file === ':memory:') return;
      let fd: number;
      try {
        fd = openSync(`${full}-wal`, 'r');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // no WAL: every commit is in the (flushed) file
        throw err;
      }
      try {
        fdatasyncSync(fd);
      } finally {
        closeSync(fd);
      }
    },
  };
}

/** True when `err` is SQLite refusing a duplicate value in a UNIQUE or PRIMARY KEY column. */
export const isUniqueViolation = (err: unknown): boolean =>
  err instanceof Error && /UNIQUE constraint failed|PRIMARY KEY constraint failed/.test(err.message);

/**
 * A workspace's live rows of `table` (not `deleted_ms`), filtered by equality on the given
 * columns (undefined values are no filter), newest first, one page of them and the total.
 * `table` and the column names are the caller's constants, never request input.
 */
export function livePage<R>(
  db: Db,
  table: string,
  workspace: string,
  equal: Record<string, string | undefined>,
  page: { limit: number; offset: number },
): { rows: R[]; total: number } {
  const where = ['workspace = ?', 'deleted_ms IS NULL'];
  const args: string[] = [workspace];
  for (const [column, value] of Object.entries(equal)) {
    if (value === undefined || value === '') continue;
    where.push(`${column} = ?`);
    args.push(value);
  }
  const w = where.join(' AND ');
  const total = (db.sql.prepare(`SELECT count(*) AS n FROM ${table} WHERE ${w}`).get(...args) as { n: number }).n;
  const rows = db.sql
    .prepare(`SELECT * FROM ${table} WHERE ${w} ORDER BY created_ms DESC, id LIMIT ? OFFSET ?`)
    .all(...args, page.limit, page.offset) as unknown as R[];
  return { rows, total };
}
