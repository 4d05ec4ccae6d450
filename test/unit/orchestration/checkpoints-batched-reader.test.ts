/** Batched reads of small checkpoint contents on restore: one SELECT per batch, right content at every position. */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { openDb, type Db } from '../../../core/db.ts';
import { BatchedReader, BATCH_BYTES, BATCH_FILES, type BatchItem } from '../../../orchestration/checkpoints/batched-reader.ts';
import { BlobStore, SMALL_BYTES } from '../../../orchestration/checkpoints/blobs.ts';

const dirs: string[] = [];
const dbs: Db[] = [];
test.after(() => {
  for (const db of dbs) db.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A blob store holding `contents` (small ones as rows, larger as files), and a count of the SELECTs the reader makes. */
async function stored(contents: Buffer[]) {
  const root = mkdtempSync(path.join(tmpdir(), 'director-batched-'));
  dirs.push(root);
  const db = openDb(root);
  dbs.push(db);
  const s = new BlobStore(path.join(root, 'checkpoints'), db, () => new Set());
  await s.start(new Set());
  const b = s.batch();
  for (const c of contents) await b.putBuffer(c);
  await b.flush();
  b.insertPending();
  const calls: string[][] = [];
  const counted = {
    readChunks: (digests: readonly string[]) => {
      calls.push([...digests]);
      return s.readChunks(digests);
    },
    read: (digest: string) => s.read(digest),
  };
  return { s, counted, calls };
}

const item = (b: Buffer): BatchItem => ({ digest: sha(b), size: b.length });

test('the same content at several positions, in one batch and across batches, comes back at each of them (in order and out of order)', async () => {
  const [a, b, c] = ['alpha', 'beta', 'gamma'].map((x) => Buffer.from(x)) as [Buffer, Buffer, Buffer];
  const { counted, calls } = await stored([a, b, c]);
  const order = [a, b, a, a, c, a, b, b];
  for (const reverse of [false, true]) {
    calls.length = 0;
    const r = new BatchedReader(counted, order.map(item), { files: 3, bytes: BATCH_BYTES });
    assert.is(r.batches, 3);
    const positions = order.map((_, i) => i);
    if (reverse) positions.reverse();
    const got: string[] = [];
    for (const i of positions) got[i] = (await r.read(i)).toString();
    assert.equal(got, order.map(String));
    // One SELECT per batch, each naming its distinct digests once: [a, b, a], [a, c, a], [b, b].
    assert.equal(calls.map((d) => [...d].sort().join()).sort(), [[a, b], [a, c], [b]].map((x) => x.map(sha).sort().join()).sort());
  }
});

test('batches close at the file count or the byte budget, whichever comes first; a file larger than the budget is a batch alone', async () => {
  const contents = Array.from({ length: 10 }, (_, i) => Buffer.alloc(100 + i, i));
  const { counted, calls } = await stored(contents);
  const byFiles = new BatchedReader(counted, contents.map(item), { files: 4, bytes: 1 << 20 });
  assert.is(byFiles.batches, 3);
  // 100 + 101 bytes fit in 250, a third file does not: pairs.
  const byBytes = new BatchedReader(counted, contents.map(item), { files: 100, bytes: 250 });
  assert.is(byBytes.batches, 5);
  const tiny = new BatchedReader(counted, contents.map(item), { files: 100, bytes: 10 });
  assert.is(tiny.batches, 10);
  for (let i = 0; i < contents.length; i++) assert.ok((await byFiles.read(i)).equals(contents[i]!));
  assert.is(calls.length, 3);
  assert.is(new BatchedReader(counted, []).batches, 0);
  assert.is(BATCH_FILES, 256);
});

test('a position read again after its batch was dropped still gets its content (the batch is fetched again)', async () => {
  const a = Buffer.from('once');
  const b = Buffer.from('twice');
  const { counted, calls } = await stored([a, b]);
  const r = new BatchedReader(counted, [item(a), item(b)]);
  assert.is((await r.read(0)).toString(), 'once');
  assert.is((await r.read(1)).toString(), 'twice');
  assert.is((await r.read(0)).toString(), 'once');
  assert.is(calls.length, 2);
});

test('content stored as a file (not a row) is read from its file; a missing one fails the read', async () => {
  const small = Buffer.from('row');
  const large = Buffer.alloc(SMALL_BYTES + 1, 7);
  const { counted } = await stored([small, large]);
  const missing = Buffer.from('never stored');
  const r = new BatchedReader(counted, [item(small), item(large), item(missing)]);
  assert.ok((await r.read(1)).equals(large));
  assert.is((await r.read(0)).toString(), 'row');
  await r.read(2).then(
    () => assert.unreachable('a missing content must fail'),
    (err: NodeJS.ErrnoException) => assert.is(err.code, 'ENOENT'),
  );
  await r.read(3).then(
    () => assert.unreachable('a position past the end must fail'),
    (err: Error) => assert.instance(err, RangeError),
  );
});

test.run();
