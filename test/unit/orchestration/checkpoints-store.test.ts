/**
 * The checkpoint store's blob references, kept per blob set (orchestration/checkpoints/store.ts):
 * checkpoints that refer to the same blobs share one set of rows, a blob stays referenced while
 * any checkpoint points at a set holding it, and the delete of a set's last checkpoint hands its
 * digests to the collector. On a real SQLite store, including one upgraded from before sets.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MIGRATIONS, openDb, type Db } from '../../../core/db.ts';
import { CheckpointStore, type CheckpointRecord } from '../../../orchestration/checkpoints/store.ts';

const dirs: string[] = [];
const dbs: Db[] = [];
test.after(() => {
  for (const db of dbs) db.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function dataDir(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'director-ckp-store-'));
  dirs.push(d);
  return d;
}

function open(dir = dataDir()): { db: Db; store: CheckpointStore } {
  const db = openDb(dir);
  dbs.push(db);
  return { db, store: new CheckpointStore(db) };
}

const digest = (s: string) => createHash('sha256').update(s).digest('hex');
const A = digest('a');
const B = digest('b');
const C = digest('c');

let seq = 0;
function record(sessionId = 'ses_1'): CheckpointRecord {
  seq++;
  return {
    id: `ckp_${String(seq).padStart(4, '0')}`,
    workspace: 'wsp_1',
    sessionId,
    name: `c${seq}`,
    description: '',
    data: {},
    state: { session: { name: 's', description: '', status: 'active', config: {} as never }, departments: [] },
    context: { windows: [] },
    messages: [],
    files: [],
    bytes: 0,
    fileCount: 0,
    createdBy: null,
    createdMs: seq,
  };
}

const refRows = (db: Db) => (db.sql.prepare('SELECT count(*) AS n FROM checkpoint_blobs').get() as { n: number }).n;
/** Sets holding reference rows. */
const sets = (db: Db) => (db.sql.prepare('SELECT count(DISTINCT blob_set) AS n FROM checkpoint_blobs').get() as { n: number }).n;
const sorted = (xs: Iterable<string>) => [...xs].sort();

test('a checkpoint referring to the blobs of an earlier one points at its set and writes no reference rows', () => {
  const { db, store } = open();
  const first = record();
  const second = record();
  assert.ok(store.insertBounded(first, [A, B, C], 10));
  assert.is(refRows(db), 3);
  // The same blobs in another order, one of them twice: the same set.
  assert.ok(store.insertBounded(second, [C, A, B, A], 10));
  assert.is(refRows(db), 3);
  assert.is(sets(db), 1);
  assert.equal(sorted(store.digestsOf(second.id)), sorted([A, B, C]));
  assert.equal(sorted(store.referenced([A, B, C, digest('other')])), sorted([A, B, C]));
  // Different blobs: a set of their own.
  const third = record();
  assert.ok(store.insertBounded(third, [A, B], 10));
  assert.is(refRows(db), 5);
  assert.is(sets(db), 2);
  assert.equal(sorted(store.digestsOf(third.id)), sorted([A, B]));
  assert.equal(sorted(store.allDigests()), sorted([A, B, C]));
});

test("deleting a checkpoint whose set another one points at frees nothing; deleting the set's last checkpoint returns its digests and removes it", () => {
  const { db, store } = open();
  const first = record();
  const second = record();
  const other = record();
  store.insertBounded(first, [A, B], 10);
  store.insertBounded(second, [A, B], 10);
  store.insertBounded(other, [B, C], 10);
  // The checkpoint that stored the set goes: the second still refers to A and B.
  assert.equal(store.delete([first.id]), []);
  assert.equal(sorted(store.digestsOf(second.id)), sorted([A, B]));
  assert.equal(sorted(store.referenced([A, B, C])), sorted([A, B, C]));
  // A third one with the same blobs joins the set the second still points at.
  const third = record();
  store.insertBounded(third, [B, A], 10);
  assert.is(refRows(db), 4);
  assert.equal(store.delete([second.id]), []);
  // Its last checkpoint goes: its digests come back to be collected (B is still used by the other set).
  assert.equal(sorted(store.delete([third.id])), sorted([A, B]));
  assert.equal(sorted(store.referenced([A, B, C])), sorted([B, C]));
  assert.is(sets(db), 1);
  // A new checkpoint with A and B again stores the set again.
  const again = record();
  store.insertBounded(again, [A, B], 10);
  assert.equal(sorted(store.digestsOf(again.id)), sorted([A, B]));
  assert.is(sets(db), 2);
  // Two checkpoints of one set and one of another, in one delete: each set's digests once.
  const twin = record();
  store.insertBounded(twin, [A, B], 10);
  assert.equal(sorted(store.delete([again.id, twin.id, other.id])), sorted([A, B, C]));
  assert.is(refRows(db), 0);
});

test('a checkpoint refused for the count, or whose transaction fails, leaves no reference; checkpoints without blobs write none', () => {
  const { db, store } = open();
  store.insertBounded(record('ses_full'), [A], 1);
  assert.is(store.insertBounded(record('ses_full'), [B], 1), false);
  assert.equal(store.referenced([B]), new Set());
  const failing = record();
  assert.throws(
    () =>
      store.insertBounded(failing, [C], 10, () => {
        throw new Error('the pending content could not be written');
      }),
    /could not be written/,
  );
  assert.is(store.exists(failing.id), false);
  assert.equal(store.referenced([C]), new Set());
  assert.is(refRows(db), 1);
  const e1 = record();
  const e2 = record();
  store.insertBounded(e1, [], 10);
  store.insertBounded(e2, [], 10);
  assert.is(refRows(db), 1);
  assert.equal(store.digestsOf(e2.id), []);
  assert.equal(store.delete([e1.id, e2.id]), []);
});

test('a store from before sets upgrades in place: each checkpoint keeps its references as a set of its own, never shared', () => {
  const dir = dataDir();
  const old = new DatabaseSync(path.join(dir, 'director.db'));
  for (const m of MIGRATIONS.slice(0, 9)) old.exec(m.sql);
  old.exec('PRAGMA user_version = 9');
  const oldRecord = record();
  const oldEmpty = record();
  const insert = old.prepare(
    `INSERT INTO checkpoints (id, workspace, session_id, name, description, data, state, context, messages, files, bytes, file_count, created_ms)
     VALUES (?, 'wsp_1', 'ses_1', 'old', '', '{}', '{}', '{}', '[]', '[]', 0, 0, 1)`,
  );
  insert.run(oldRecord.id);
  insert.run(oldEmpty.id);
  for (const d of [A, B]) old.prepare('INSERT INTO checkpoint_blobs (checkpoint_id, digest) VALUES (?, ?)').run(oldRecord.id, d);
  old.close();

  const { db, store } = open(dir);
  assert.equal(sorted(store.digestsOf(oldRecord.id)), sorted([A, B]));
  assert.equal(sorted(store.allDigests()), sorted([A, B]));
  const fresh = record();
  store.insertBounded(fresh, [A, B], 10);
  assert.is(refRows(db), 4, 'a set named after an old checkpoint is not shared');
  // Its only checkpoint goes: its digests are handed over; the new set still refers to them.
  assert.equal(sorted(store.delete([oldRecord.id])), sorted([A, B]));
  assert.equal(sorted(store.referenced([A, B])), sorted([A, B]));
  assert.is(refRows(db), 2);
  assert.equal(store.delete([oldEmpty.id]), []);
});

test('reference rows left behind under a set name do not stop that set from being stored again', () => {
  const { db, store } = open();
  db.sql
    .prepare(`INSERT INTO checkpoint_blobs (blob_set, digest) VALUES (?, ?)`)
    .run(createHash('sha256').update([B, C].sort().join('\n')).digest('hex'), B);
  const again = record();
  store.insertBounded(again, [B, C], 10);
  assert.equal(sorted(store.digestsOf(again.id)), sorted([B, C]));
});

test("latestCapture: the newest checkpoint of the session that captured that sandbox's mount, and that capture as stored", () => {
  const { store } = open();
  const cap = (p: string, manifest: string, listedAtS = 1) => ({
    path: p,
    manifest,
    listedAtS,
    files: 1,
    directories: 0,
    symlinks: 0,
    bytes: 3,
    newBytes: 0,
    filesRead: 1,
    skipped: 0,
  });
  const sandbox = (sandboxId: string, mounts: ReturnType<typeof cap>[]) => ({
    sandboxId,
    name: sandboxId,
    image: 'i',
    status: 'running',
    spec: { securityPolicy: { allowedPaths: ['/tmp', '/workspace'] } } as never,
    owner: { sessionId: 'ses_1', departmentId: null, environmentId: null },
    mounts,
  });
  const with_ = (files: ReturnType<typeof sandbox>[], sessionId = 'ses_1') => {
    const r = { ...record(sessionId), files };
    store.insertBounded(r, [], 100);
    return r.id;
  };
  assert.is(store.latestCapture('ses_1', 'sbx_a', '/workspace'), null);
  const old = with_([sandbox('sbx_a', [cap('/workspace', A, 7), cap('/data', B)])]);
  // Newer ones that did not capture it: another sandbox's mount of the same path, a stopped sandbox, another session.
  with_([sandbox('sbx_b', [cap('/workspace', C)]), sandbox('sbx_a', [])]);
  with_([sandbox('sbx_a', [cap('/workspace', C)])], 'ses_2');
  assert.equal(store.latestCapture('ses_1', 'sbx_a', '/workspace'), { checkpointId: old, capture: cap('/workspace', A, 7) });
  assert.equal(store.latestCapture('ses_1', 'sbx_a', '/data')?.capture.manifest, B);
  assert.equal(store.latestCapture('ses_1', 'sbx_b', '/workspace')?.capture.manifest, C);
  assert.is(store.latestCapture('ses_1', 'sbx_a', '/work'), null, 'a path is matched whole');
  const newer = with_([sandbox('sbx_a', [cap('/workspace', B, 9)])]);
  assert.equal(store.latestCapture('ses_1', 'sbx_a', '/workspace'), { checkpointId: newer, capture: cap('/workspace', B, 9) });
  store.delete([newer]);
  assert.is(store.latestCapture('ses_1', 'sbx_a', '/workspace')?.checkpointId, old, 'the newest gone: the one before it');
});

test.run();
