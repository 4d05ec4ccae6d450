import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MIGRATIONS, openDb } from '../../../core/db.ts';
import { AuditLog } from '../../../api/audit/log.ts';
import { AuthService } from '../../../api/auth/service.ts';

const dirs: string[] = [];
test.after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function dataDir(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'director-migrate-'));
  dirs.push(d);
  return d;
}

const schemaOf = (sql: DatabaseSync): string[] =>
  (
    sql.prepare(`SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name`).all() as {
      type: string;
      name: string;
      tbl_name: string;
      sql: string | null;
    }[]
  ).map((r) => `${r.type} ${r.name} on ${r.tbl_name}: ${r.sql ?? ''}`);

test('migrations are numbered in order, one per index', () => {
  MIGRATIONS.forEach((m, i) => assert.is(m.version, i + 1, m.name));
});

test('a data dir from before migration 3 upgrades in place and keeps its auth, audit and webhook rows', async () => {
  const dir = dataDir();
  // The layout the earlier code left: migrations 1-2 numbered, the area tables made by each
  // area's own `CREATE TABLE IF NOT EXISTS` at start (the same statements migration 3 holds).
  const old = new DatabaseSync(path.join(dir, 'director.db'));
  old.exec(MIGRATIONS[0]!.sql);
  old.exec(MIGRATIONS[1]!.sql);
  old.exec('PRAGMA user_version = 2');
  old.exec(MIGRATIONS[2]!.sql);
  old.exec(`INSERT INTO workspaces (id, name, created_ms) VALUES ('wsp_old', 'legacy', 1)`);
  old.exec(
    `INSERT INTO webhooks (id, workspace, url, events, secret, created_ms) VALUES ('whk_old', 'wsp_old', 'http://127.0.0.1:9/h', '["sandbox.created"]', 's', 1)`,
  );
  old.exec(
    `INSERT INTO sandboxes (id, workspace, name, image, status, spec, labels, created_ms, updated_ms) VALUES ('sbx_old', 'wsp_old', 'n', 'img', 'stopped', '{}', '{}', 1, 1)`,
  );
  old.close();
  const before = new DatabaseSync(path.join(dir, 'director.db'));
  const auditBefore = new AuditLog(openDbFrom(before));
  auditBefore.append({ actor: 'usr_x', workspace: 'wsp_old', action: 'POST /v1/sandboxes', outcome: 'success', status: 201 });
  before.close();

  const db = openDb(dir);
  const version = (db.sql.prepare('PRAGMA user_version').get() as { user_version: number }).user_version;
  assert.is(version, MIGRATIONS.length);
  assert.is((db.sql.prepare(`SELECT name FROM workspaces WHERE id = 'wsp_old'`).get() as { name: string }).name, 'legacy');
  assert.is((db.sql.prepare(`SELECT url FROM webhooks WHERE id = 'whk_old'`).get() as { url: string }).url, 'http://127.0.0.1:9/h');
  assert.is((db.sql.prepare(`SELECT status FROM sandboxes WHERE id = 'sbx_old'`).get() as { status: string }).status, 'stopped');
  const audit = new AuditLog(db);
  assert.is(audit.list().items.length, 1);
  assert.ok(audit.verify().ok);
  // The services that used to create their own tables start on the upgraded store.
  const auth = new AuthService(db, { jwtSecret: 'x'.repeat(32) });
  assert.ok((await auth.bootstrapAdmin('a long enough password')).created);

  // The upgraded store has exactly the schema of a store created new.
  const fresh = openDb(dir, 'fresh.db');
  assert.equal(schemaOf(db.sql), schemaOf(fresh.sql));
  fresh.close();
  db.close();
});

test('opening an up-to-date store again changes nothing', () => {
  const dir = dataDir();
  const a = openDb(dir);
  a.sql.exec(`INSERT INTO workspaces (id, name, created_ms) VALUES ('wsp_a', 'a', 1)`);
  a.close();
  const b = openDb(dir);
  assert.is((b.sql.prepare('SELECT COUNT(*) AS n FROM workspaces').get() as { n: number }).n, 1);
  b.close();
});

test('a new store has 16 KiB pages; an existing one keeps its page size, and both bound their WAL at 64 MiB', () => {
  const dir = dataDir();
  const pragma = (db: ReturnType<typeof openDb>, name: string) => (db.sql.prepare(`PRAGMA ${name}`).get() as Record<string, number>)[name];
  const fresh = openDb(path.join(dir, 'new'));
  assert.is(pragma(fresh, 'page_size'), 16_384);
  assert.is(pragma(fresh, 'wal_autocheckpoint'), 4096);
  fresh.close();
  const old = new DatabaseSync(path.join(dir, 'director.db'));
  old.exec('CREATE TABLE t (x)');
  old.close();
  const upgraded = openDb(dir);
  assert.is(pragma(upgraded, 'page_size'), 4096);
  assert.is(pragma(upgraded, 'wal_autocheckpoint'), 16_384);
  upgraded.close();
});

test('a store written by a newer Director is refused, not used with tables this code does not know', () => {
  const dir = dataDir();
  openDb(dir).close();
  const raw = new DatabaseSync(path.join(dir, 'director.db'));
  raw.exec(`PRAGMA user_version = ${MIGRATIONS.length + 1}`);
  raw.close();
  assert.throws(() => openDb(dir), /schema version \d+, newer than this Director's/);
});

/** A `Db` over a raw handle, for writing rows the way the earlier code did (no migrations run). */
function openDbFrom(sql: DatabaseSync): ReturnType<typeof openDb> {
  return { sql, file: 'raw', close: () => sql.close(), tx: (fn) => fn(), checkWritable: () => undefined, syncWal: () => undefined };
}

test.run();
