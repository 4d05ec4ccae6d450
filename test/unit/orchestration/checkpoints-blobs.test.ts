/** The checkpoint blob store: content addressing, pins, and removal of what nothing refers to. */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BlobStore } from '../../../orchestration/checkpoints/blobs.ts';

const dirs: string[] = [];
test.after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function store(referenced = new Set<string>()): { s: BlobStore; root: string; referenced: Set<string> } {
  const root = mkdtempSync(path.join(tmpdir(), 'director-blobs-'));
  dirs.push(root);
  return { s: new BlobStore(root, (d) => referenced.has(d)), root, referenced };
}
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

test('content is stored once under its sha256, files 0600 and directories 0700, and reads back', async () => {
  const { s, root } = store();
  await s.start(new Set());
  const b = s.batch();
  const one = await b.putBuffer(Buffer.from('hello'));
  const again = await b.putBuffer(Buffer.from('hello'));
  const big = Buffer.alloc(600 * 1024, 7);
  const large = await b.putStream(Readable.from([big.subarray(0, 1000), big.subarray(1000)]), big.length);
  await b.flush();
  assert.is(one, sha('hello'));
  assert.is(again, one);
  assert.is(large, sha(big));
  assert.is(b.newBytes, 5 + big.length);
  assert.is((await s.read(one)).toString(), 'hello');
  assert.ok((await s.read(large)).equals(big));
  assert.is(statSync(s.pathOf(one)).mode & 0o777, 0o600);
  assert.is(statSync(path.dirname(s.pathOf(one))).mode & 0o777, 0o700);
  assert.is(statSync(path.join(root, 'blobs')).mode & 0o777, 0o700);
  assert.equal(readdirSync(path.join(root, 'tmp')), []);
});

test('a batch released without a commit removes what it created, never what a checkpoint refers to', async () => {
  const { s, referenced } = store();
  await s.start(new Set());
  const first = s.batch();
  const kept = await first.putBuffer(Buffer.from('committed'));
  await first.flush();
  referenced.add(kept);
  await first.release();
  assert.ok(existsSync(s.pathOf(kept)));

  const failed = s.batch();
  assert.is(await failed.putBuffer(Buffer.from('committed')), kept);
  const fresh = await failed.putStream(Readable.from([Buffer.alloc(300 * 1024, 1)]), 300 * 1024);
  assert.is(failed.newBytes, 300 * 1024);
  await failed.release();
  assert.ok(existsSync(s.pathOf(kept)));
  assert.not.ok(existsSync(s.pathOf(fresh)));
});

test('a pinned blob survives its last reference going; the last unpin removes it', async () => {
  const { s, referenced } = store();
  await s.start(new Set());
  const b = s.batch();
  const d = await b.putBuffer(Buffer.from('in use'));
  await b.flush();
  referenced.add(d);
  await b.release();
  const restore = s.batch();
  assert.ok(restore.reuse(d));
  referenced.delete(d);
  assert.is(s.collect([d]), 0);
  assert.ok(existsSync(s.pathOf(d)));
  await restore.release();
  assert.not.ok(existsSync(s.pathOf(d)));
  assert.not.ok(s.batch().reuse(d), 'reuse of a removed blob must say it is gone');
});

test('start removes temp files and blobs nothing refers to (a crash mid-capture), and keeps referenced ones', async () => {
  const { s, root } = store();
  await s.start(new Set());
  const b = s.batch();
  const keep = await b.putBuffer(Buffer.from('keep'));
  const orphan = await b.putBuffer(Buffer.from('orphan'));
  await b.flush();
  writeFileSync(path.join(root, 'tmp', 'half-written'), 'x');
  mkdirSync(path.join(root, 'blobs', 'ff'), { recursive: true });
  // The batch is still pinned in this process: a store that started again (after a crash) has no pins.
  const { removed } = await new BlobStore(root, () => false).start(new Set([keep]));
  assert.is(removed, 1);
  assert.ok(existsSync(s.pathOf(keep)));
  assert.not.ok(existsSync(s.pathOf(orphan)));
  assert.equal(readdirSync(path.join(root, 'tmp')), []);
});

test('a digest that is not a sha256 never becomes a path', () => {
  const { s } = store();
  assert.throws(() => s.pathOf('../../etc/passwd'), /not a blob digest/);
});

test.run();
