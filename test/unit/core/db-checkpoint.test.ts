/** The store's WAL is checkpointed on an idle timer (off the commits), and a commit is readable again after a reopen; syncWal flushes it. */
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { openDb } from '../../../core/db.ts';

const dirs: string[] = [];
test.after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('once writes stop, the WAL is copied into the database file without another commit', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'director-db-'));
  dirs.push(dir);
  const db = openDb(dir);
  try {
    db.sql.exec('CREATE TABLE t (b BLOB)');
    const before = statSync(db.file).size;
    // 400 KiB: far below SQLite's default automatic checkpoint (1000 pages), so only the idle timer moves it.
    db.tx(() => db.sql.prepare('INSERT INTO t (b) VALUES (?)').run(Buffer.alloc(400 * 1024, 7)));
    assert.ok(statSync(db.file).size < before + 400 * 1024, 'the commit itself did not checkpoint');
    await sleep(1000);
    assert.ok(statSync(db.file).size >= before + 400 * 1024, 'the idle timer checkpointed the WAL');
  } finally {
    db.close();
  }
});

test('syncWal flushes the WAL, and does nothing without one (an in-memory store, a WAL already gone)', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'director-db-'));
  dirs.push(dir);
  const db = openDb(dir);
  try {
    db.tx(() => db.sql.exec('CREATE TABLE t (x)'));
    assert.ok(existsSync(`${db.file}-wal`));
    db.syncWal();
    // Truncated and removed as a last close would leave it: nothing to flush, no error.
    db.sql.exec('PRAGMA wal_checkpoint(TRUNCATE)');
    rmSync(`${db.file}-wal`);
    db.syncWal();
  } finally {
    db.close();
  }
  const mem = openDb(dir, ':memory:');
  try {
    mem.syncWal();
  } finally {
    mem.close();
  }
});

test.run();
