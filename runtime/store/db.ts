import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';

/**
 * The embedded store: one SQLite file through `node:sqlite` (no native addon), WAL mode,
 * migrations applied in order and tracked by `PRAGMA user_version`. Other areas add their
 * migrations by appending to {@link MIGRATIONS}; never edit a released one.
 */
export const MIGRATIONS: readonly string[] = [
  `CREATE TABLE sandboxes (
     id TEXT PRIMARY KEY,
     workspace TEXT NOT NULL,
     name TEXT NOT NULL,
     image TEXT NOT NULL,
     status TEXT NOT NULL,
     reason TEXT,
     spec TEXT NOT NULL,
     labels TEXT NOT NULL,
     container_id TEXT,
     network_id TEXT,
     ip_address TEXT,
     pooled INTEGER NOT NULL DEFAULT 0,
     pool_key TEXT,
     exit_code INTEGER,
     created_ms INTEGER NOT NULL,
     updated_ms INTEGER NOT NULL,
     started_ms INTEGER,
     deadline_ms INTEGER,
     stopped_ms INTEGER,
     deleted_ms INTEGER
   );
   CREATE INDEX sandboxes_ws_status ON sandboxes (workspace, status, created_ms);
   CREATE INDEX sandboxes_pool ON sandboxes (pool_key, status) WHERE pooled = 1;
   CREATE TABLE events (
     seq INTEGER PRIMARY KEY AUTOINCREMENT,
     id TEXT NOT NULL UNIQUE,
     type TEXT NOT NULL,
     severity TEXT NOT NULL,
     ts_ms INTEGER NOT NULL,
     workspace TEXT,
     sandbox_id TEXT,
     network_id TEXT,
     session_id TEXT,
     actor TEXT,
     details TEXT NOT NULL
   );
   CREATE INDEX events_ts ON events (ts_ms);
   CREATE INDEX events_sandbox ON events (sandbox_id, seq);
   CREATE INDEX events_type ON events (type, seq);`,
  `CREATE TABLE networks (
     id TEXT PRIMARY KEY,
     workspace TEXT NOT NULL,
     name TEXT NOT NULL,
     short TEXT NOT NULL UNIQUE,
     bridge TEXT NOT NULL UNIQUE,
     subnet TEXT NOT NULL,
     gateway TEXT NOT NULL,
     enable_dns INTEGER NOT NULL,
     internal INTEGER NOT NULL,
     isolated INTEGER NOT NULL DEFAULT 0,
     private_for TEXT,
     engine_id TEXT,
     policy TEXT,
     labels TEXT NOT NULL DEFAULT '{}',
     status TEXT NOT NULL,
     created_ms INTEGER NOT NULL,
     updated_ms INTEGER NOT NULL,
     deleted_ms INTEGER
   );
   CREATE INDEX networks_ws ON networks (workspace, status, created_ms);
   CREATE INDEX sandboxes_ip ON sandboxes (network_id, ip_address);
   CREATE TABLE net_observations (
     network_id TEXT NOT NULL,
     direction TEXT NOT NULL,
     proto TEXT NOT NULL,
     remote TEXT NOT NULL,
     port INTEGER NOT NULL,
     count INTEGER NOT NULL,
     first_ms INTEGER NOT NULL,
     last_ms INTEGER NOT NULL,
     PRIMARY KEY (network_id, direction, proto, remote, port)
   );
   CREATE TABLE dns_observations (
     network_id TEXT NOT NULL,
     name TEXT NOT NULL,
     address TEXT NOT NULL,
     last_ms INTEGER NOT NULL,
     PRIMARY KEY (network_id, name, address)
   );`,
];

export interface Db {
  readonly sql: DatabaseSync;
  readonly file: string;
  close(): void;
  /** Runs `fn` in one transaction (BEGIN IMMEDIATE), rolling back on throw. */
  tx<T>(fn: () => T): T;
  /** Proves the store accepts writes (for readiness). */
  checkWritable(): void;
}

export function openDb(dataDir: string, file = 'director.db'): Db {
  const full = file === ':memory:' ? file : path.join(dataDir, file);
  if (file !== ':memory:') mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const sql = new DatabaseSync(full);
  sql.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;');
  sql.exec('CREATE TABLE IF NOT EXISTS _health (k INTEGER PRIMARY KEY, ms INTEGER)');
  const version = (sql.prepare('PRAGMA user_version').get() as { user_version: number }).user_version;
  for (let v = version; v < MIGRATIONS.length; v++) {
    sql.exec('BEGIN IMMEDIATE');
    try {
      sql.exec(MIGRATIONS[v]!);
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
  sql.prepare = ((text: string) => {
    let st = statements.get(text);
    if (!st) {
      if (statements.size >= 1000) statements.clear();
      st = prepareRaw(text);
      statements.set(text, st);
    }
    return st;
  });
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
