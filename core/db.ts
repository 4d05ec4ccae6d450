import { mkdirSync } from 'node:fs';
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
}

/**
 * The embedded store: one SQLite file through `node:sqlite` (no native addon), WAL mode,
 * migrations (`migrations.ts`, the only place tables are created or changed) applied in order
 * and tracked by `PRAGMA user_version`.
 */
export function openDb(dataDir: string, file = 'director.db'): Db {
  const full = file === ':memory:' ? file : path.join(dataDir, file);
  if (file !== ':memory:') mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const sql = new DatabaseSync(full);
  sql.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;');
  const version = (sql.prepare('PRAGMA user_version').get() as { user_version: number }).user_version;
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
  const healthStmt = sql.prepare('INSERT INTO _health (k, ms) VALUES (1, ?) ON CONFLICT(k) DO UPDATE SET ms = excluded.ms');
  return {
    sql,
    file: full,
    close: () => {
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
