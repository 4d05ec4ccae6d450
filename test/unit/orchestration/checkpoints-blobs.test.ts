/** The checkpoint blob store: content addressing, pins, and removal of what nothing refers to. */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { openDb, type Db } from '../../../core/db.ts';
import { BlobStore, contentKey, SMALL_BYTES } from '../../../orchestration/checkpoints/blobs.ts';

const dirs: string[] = [];
const dbs: Db[] = [];
test.after(() => {
  for (const db of dbs) db.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/**
 * A store in a new data dir; `questions` records each "which are still referenced?" (the number of
 * digests asked). `wrap` stands in for parts of the store's `Db` (the one returned is the real one).
 */
function store(referenced = new Set<string>(), wrap: (db: Db) => Db = (db) => db) {
  const root = mkdtempSync(path.join(tmpdir(), 'director-blobs-'));
  dirs.push(root);
  const db = openDb(root);
  dbs.push(db);
  const questions: number[] = [];
  return {
    s: new BlobStore(path.join(root, 'checkpoints'), wrap(db), (ds) => {
      questions.push(ds.length);
      return new Set(ds.filter((d) => referenced.has(d)));
    }),
    root: path.join(root, 'checkpoints'),
    db,
    referenced,
    questions,
  };
}

/** {@link store}, started. */
async function countingStore() {
  const st = store();
  await st.s.start(new Set());
  return st;
}
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const chunks = (db: Db) => (db.sql.prepare('SELECT digest FROM checkpoint_chunks').all() as { digest: string }[]).map((r) => r.digest);
const big = (fill: number) => Buffer.alloc(SMALL_BYTES + 1000, fill);

test('a content key is the sha256 of the workspace id, a line feed and the content sha256 (stored on disk: it must not drift)', () => {
  assert.is(contentKey('wsp_a', sha('hello')), 'b57e1cea4ed37e2a994baba12d2d4fc3a7fcea85d1ca40613d1123174da21ae2');
  assert.is.not(contentKey('wsp_b', sha('hello')), contentKey('wsp_a', sha('hello')));
});

test('a batch of a workspace keys content by the workspace: stored once per workspace, new to another workspace', async () => {
  const { s } = await countingStore();
  const small = Buffer.from('the same file in two workspaces');
  const large = big(3);
  const put = async (ws: string) => {
    const b = s.batch(ws);
    const keys = [b.putSmall(small), await b.putBuffer(large), await b.putStream(Readable.from([large]), large.length)];
    await b.flush();
    b.insertPending();
    return { keys, newBytes: b.newBytes, b };
  };
  const a = await put('wsp_a');
  assert.equal(a.keys, [contentKey('wsp_a', sha(small)), contentKey('wsp_a', sha(large)), contentKey('wsp_a', sha(large))]);
  assert.is(a.newBytes, small.length + large.length);
  // Present for wsp_a (still pinned by its batch): nothing of it is present for wsp_b.
  const b = await put('wsp_b');
  assert.equal(b.keys, [contentKey('wsp_b', sha(small)), contentKey('wsp_b', sha(large)), contentKey('wsp_b', sha(large))]);
  assert.is(b.newBytes, small.length + large.length);
  const again = await put('wsp_a');
  assert.is(again.newBytes, 0);
  for (const x of [a, b, again]) await x.b.release(() => true);
});

test('content is stored once under its sha256: small content as a row, larger as a file (0600 in 0700 directories)', async () => {
  const { s, root, db } = store();
  await s.start(new Set());
  const b = s.batch();
  const one = await b.putBuffer(Buffer.from('hello'));
  const again = await b.putBuffer(Buffer.from('hello'));
  const large = big(7);
  const fromStream = await b.putStream(Readable.from([large.subarray(0, 1000), large.subarray(1000)]), large.length);
  const largeAgain = await b.putBuffer(large);
  await b.flush();
  b.insertPending();
  assert.is(one, sha('hello'));
  assert.is(again, one);
  assert.is(fromStream, sha(large));
  assert.is(largeAgain, fromStream);
  assert.is(b.newBytes, 5 + large.length);
  assert.equal(chunks(db), [one]);
  assert.not.ok(existsSync(s.pathOf(one)));
  assert.is((await s.read(one)).toString(), 'hello');
  assert.ok((await s.read(fromStream)).equals(large));
  assert.is(statSync(s.pathOf(fromStream)).mode & 0o777, 0o600);
  assert.is(statSync(path.dirname(s.pathOf(fromStream))).mode & 0o777, 0o700);
  assert.is(statSync(path.join(root, 'blobs')).mode & 0o777, 0o700);
  assert.equal(readdirSync(path.join(root, 'tmp')), []);
});

test("a capture's small content is written in the transaction that commits its checkpoint: rolled back with it, nothing is left", async () => {
  const { s, db } = store();
  await s.start(new Set());
  const b = s.batch();
  const d = await b.putBuffer(Buffer.from('small'));
  await b.flush();
  assert.is(await s.read(d).catch(() => null), null);
  assert.equal(chunks(db), [], 'small content must not be committed before its checkpoint');
  assert.throws(() =>
    db.tx(() => {
      b.insertPending();
      throw new Error('checkpoint refused');
    }),
  );
  assert.equal(chunks(db), []);
  await b.release();
  assert.not.ok(s.has(d));
});

test('a batch released without a commit removes what it created, never what a checkpoint refers to', async () => {
  const { s, referenced, db } = store();
  await s.start(new Set());
  const first = s.batch();
  const kept = await first.putBuffer(Buffer.from('committed'));
  await first.flush();
  first.insertPending();
  referenced.add(kept);
  await first.release();
  assert.ok(s.has(kept));

  const failed = s.batch();
  assert.is(await failed.putBuffer(Buffer.from('committed')), kept);
  const freshSmall = await failed.putBuffer(Buffer.from('fresh'));
  await failed.flush();
  failed.insertPending();
  const freshLarge = await failed.putStream(Readable.from([big(1)]), SMALL_BYTES + 1000);
  assert.is(failed.newBytes, 5 + SMALL_BYTES + 1000);
  await failed.release();
  assert.ok(s.has(kept));
  assert.not.ok(s.has(freshSmall));
  assert.not.ok(existsSync(s.pathOf(freshLarge)));
  assert.equal(chunks(db), [kept]);
});

test('a pinned blob survives its last reference going; the last unpin removes it', async () => {
  const { s, referenced } = store();
  await s.start(new Set());
  for (const content of [Buffer.from('in use'), big(3)]) {
    const b = s.batch();
    const d = await b.putBuffer(content);
    await b.flush();
    b.insertPending();
    referenced.add(d);
    await b.release();
    const restore = s.batch();
    assert.ok(restore.reuse(d));
    referenced.delete(d);
    assert.is(s.collect([d]), 0);
    assert.ok(s.has(d));
    await restore.release();
    assert.not.ok(s.has(d));
    assert.not.ok(s.batch().reuse(d), 'reuse of a removed blob must say it is gone');
  }
});

/** Stores `contents` in one batch released as committed (its checkpoint exists): their digests. */
async function stored(s: BlobStore, contents: Buffer[]): Promise<string[]> {
  const b = s.batch();
  const ds = await Promise.all(contents.map((c) => b.putBuffer(c)));
  await b.flush();
  b.insertPending();
  await b.release(() => true);
  return ds;
}

test('a group pin (a manifest taken over whole, a restore) keeps every blob of it as single pins do; the last pin of each kind decides', async () => {
  const { s, db, referenced, questions } = await countingStore();
  const all = await stored(s, [...['g1', 'g2', 'g3'].map((x) => Buffer.from(x)), big(4)]);
  const ds = all.slice(0, 3);
  const large = all[3]!;
  for (const d of all) referenced.add(d);
  // Two captures take the same manifest whole (the same array), a restore pins one of its blobs alone.
  const group = Object.freeze([...all]);
  const one = s.batch();
  const two = s.batch();
  const alone = s.batch();
  one.reuseReferencedGroup(group);
  two.reuseReferencedGroup(group);
  alone.reuseReferenced(ds[0]!);
  assert.equal([...one.digests].sort(), [...all].sort(), "a batch's digests include its groups'");
  referenced.clear();
  assert.is(s.collect(all), 0, 'pinned: nothing removed though nothing refers to them');
  await one.release();
  assert.is(chunks(db).length, 3, 'the other capture still pins the group');
  assert.ok(existsSync(s.pathOf(large)));
  await two.release();
  assert.equal(chunks(db), [ds[0]], 'the last group pin gone: all but the one pinned alone are removed');
  assert.not.ok(existsSync(s.pathOf(large)));
  await alone.release();
  assert.equal(chunks(db), []);
  // The single pin's last unpin first: the blob stays while the group still pins it.
  const [x] = (await stored(s, [Buffer.from('x')])) as [string];
  const solo = s.batch();
  const grouped = s.batch();
  solo.reuseReferenced(x);
  grouped.reuseReferencedGroup(Object.freeze([x]));
  await solo.release();
  assert.ok(s.has(x), 'its unpin leaves a blob the group pins');
  await grouped.release();
  assert.not.ok(s.has(x), 'the group unpinned, nothing refers to it: removed');
  // Released as committed (the caller saw its checkpoint exist): nothing is looked up or removed,
  // even though (here) nothing refers to the blob.
  const [kept] = (await stored(s, [Buffer.from('kept')])) as [string];
  const g = s.batch();
  g.reuseReferencedGroup(Object.freeze([kept]));
  questions.length = 0;
  await g.release(() => true);
  assert.equal(questions, [], 'no lookup');
  assert.equal(chunks(db), [kept]);
  // Released without a commit, singles and groups together: one question for all their digests.
  const [y, z] = await stored(s, [Buffer.from('y'), Buffer.from('z')]);
  const failed = s.batch();
  failed.reuseReferenced(y!);
  failed.reuseReferencedGroup(Object.freeze([y!, z!]));
  failed.reuseReferencedGroup(Object.freeze([z!, kept]));
  questions.length = 0;
  await failed.release();
  assert.equal(questions, [3], 'y, z and kept asked about once');
  assert.equal(chunks(db), [], 'nothing refers to them: all removed');
});

test('start removes temp files and blobs nothing refers to (a crash mid-capture), and keeps referenced ones', async () => {
  const { s, root, db } = store();
  await s.start(new Set());
  const b = s.batch();
  const keep = await b.putBuffer(Buffer.from('keep'));
  const orphan = await b.putBuffer(Buffer.from('orphan'));
  const orphanFile = await b.putBuffer(big(9));
  await b.flush();
  b.insertPending();
  writeFileSync(path.join(root, 'tmp', 'half-written'), 'x');
  mkdirSync(path.join(root, 'blobs', 'ff'), { recursive: true });
  // The batch is still pinned in this process: a store that starts again (after a crash) has no pins.
  const { removed } = await new BlobStore(root, db, () => new Set()).start(new Set([keep]));
  assert.is(removed, 2);
  assert.ok(s.has(keep));
  assert.not.ok(s.has(orphan));
  assert.not.ok(s.has(orphanFile));
  assert.equal(readdirSync(path.join(root, 'tmp')), []);
});

test('small contents put by a capture are looked for together (one statement): those already stored are neither inserted again nor counted as new', async () => {
  const { s, referenced, db } = store();
  await s.start(new Set());
  const first = s.batch();
  const old = await first.putBuffer(Buffer.from('stored before'));
  first.insertPending();
  referenced.add(old);
  await first.release();

  let lookups = 0;
  const present = s.present.bind(s);
  s.present = (small) => {
    lookups++;
    return present(small);
  };
  const b = s.batch();
  for (const c of ['stored before', 'new one', 'new two', 'new one']) await b.putBuffer(Buffer.from(c));
  assert.is(lookups, 0, 'nothing is looked up per put');
  assert.is(b.newBytes, 'new one'.length + 'new two'.length);
  assert.is(lookups, 1);
  b.insertPending();
  assert.is(lookups, 1, 'the contents were looked for already');
  assert.equal(chunks(db).sort(), [old, sha('new one'), sha('new two')].sort());
  await b.release();
});

test('content present when a capture puts it stays, even if its last reference goes before it is looked for', async () => {
  const { s, referenced } = store();
  await s.start(new Set());
  const first = s.batch();
  const d = await first.putBuffer(Buffer.from('shared'));
  first.insertPending();
  referenced.add(d);
  await first.release();
  const b = s.batch();
  await b.putBuffer(Buffer.from('shared'));
  referenced.delete(d);
  assert.is(s.collect([d]), 0, 'pinned by the capture');
  assert.is(b.newBytes, 0);
  b.insertPending();
  assert.ok(s.has(d));
  await b.release();
  assert.not.ok(s.has(d), 'the last unpin of an unreferenced blob removes it');
});

test('unpin and collect ask which blobs are still referenced once for all of them, and remove rows and files alike', async () => {
  const { s, db, referenced, questions } = await countingStore();
  const b = s.batch();
  const small = await Promise.all(['a', 'b', 'c'].map((x) => b.putBuffer(Buffer.from(x))));
  const large = await b.putBuffer(big(5));
  await b.flush();
  b.insertPending();
  for (const d of [...small, large]) referenced.add(d);
  await b.release();
  assert.equal(questions, [4], 'one question for the four digests the batch released (all referenced: none removed)');
  assert.equal(chunks(db).length, 3);
  questions.length = 0;
  referenced.clear();
  referenced.add(small[1]!);
  assert.is(s.collect([...small, large, small[0]!]), 3);
  assert.equal(questions, [4]);
  assert.equal(chunks(db), [small[1]]);
  assert.not.ok(existsSync(s.pathOf(large)));

  // Released pins: one question for the batch's digests.
  const r = s.batch();
  for (const d of small) r.reuse(d);
  referenced.clear();
  questions.length = 0;
  await r.release();
  assert.equal(questions, [3]);
  assert.equal(chunks(db), []);
});

test("a blob's file is removed only after the commit that left it unused is durable (the WAL flushed); rows need no flush", async () => {
  // What the file looked like each time the WAL was flushed.
  const flushes: boolean[] = [];
  let large = '';
  const { s, db: real } = store(new Set(), (db) => ({
    ...db,
    syncWal: () => void flushes.push(large !== '' && existsSync(s.pathOf(large))),
  }));
  await s.start(new Set());
  const b = s.batch();
  const small = await b.putBuffer(Buffer.from('row'));
  large = await b.putBuffer(big(9));
  await b.flush();
  b.insertPending();
  await b.release(() => true); // as if committed: both stay
  assert.equal(s.collect([small]), 1);
  assert.equal(flushes, [], 'a row goes with its own commit: no flush');
  assert.equal(s.collect([large]), 1);
  assert.equal(flushes, [true], 'flushed once, while the file was still there');
  assert.not.ok(existsSync(s.pathOf(large)));
  real.syncWal(); // and the real one flushes without error
});

test('a batch released after its checkpoint was committed asks nothing while that checkpoint exists, and everything once it is gone', async () => {
  const { s, db, referenced, questions } = await countingStore();
  const put = async () => {
    const b = s.batch();
    const ds = await Promise.all(['a', 'b'].map((x) => b.putBuffer(Buffer.from(x))));
    await b.flush();
    b.insertPending();
    return { b, ds };
  };
  // Committed and still there: the pins go without a lookup, and the content stays (it is referenced).
  const kept = await put();
  for (const d of kept.ds) referenced.add(d);
  let asked = 0;
  await kept.b.release(() => (asked++, true));
  assert.is(asked, 1, 'the commit is checked once, when the pins go');
  assert.equal(questions, [], 'no digest looked up');
  assert.equal(chunks(db).sort(), [...kept.ds].sort());
  // Its checkpoint deleted before the release (what the check is for): the unused content goes, as without a commit.
  referenced.clear();
  const gone = await put();
  await gone.b.release(() => false);
  assert.equal(questions, [2]);
  assert.equal(chunks(db), []);
});

test('a digest that is not a sha256 never becomes a path', () => {
  const { s } = store();
  assert.throws(() => s.pathOf('../../etc/passwd'), /not a blob digest/);
});

test.run();
