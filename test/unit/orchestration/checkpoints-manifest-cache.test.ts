/** Parsed manifests kept by digest, bounded by their stored bytes, frozen. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ManifestCache } from '../../../orchestration/checkpoints/manifest-cache.ts';
import { lastChangeS, settled, summarize, type Manifest } from '../../../orchestration/checkpoints/manifest.ts';

const manifest = (n: number): Manifest => ({
  version: 1,
  entries: [
    { path: '', type: 'directory', mode: 0o755 },
    { path: `f${n}`, type: 'file', mode: 0o644, size: n, digest: 'a'.repeat(64), stat: { ino: n, mtimeS: 1, ctimeS: 1 } },
  ],
  skipped: [],
});
const stored = (n: number) => Buffer.from(JSON.stringify(manifest(n)));

test('a manifest is read and parsed once; later gets come from memory', async () => {
  const c = new ManifestCache();
  const reads: string[] = [];
  const read = (d: string) => {
    reads.push(d);
    return Promise.resolve(stored(1));
  };
  const first = await c.get('d1', read);
  const again = await c.get('d1', read);
  assert.is(again, first);
  assert.equal(reads, ['d1']);
  assert.is(first.entries[1]!.size, 1);
  assert.is(c.bytes, stored(1).length);
});

test('past its byte bound the least recently used manifests go; one larger than the bound is not kept', async () => {
  const size = stored(1).length;
  const c = new ManifestCache(size * 2);
  c.put('a', manifest(1), size);
  c.put('b', manifest(2), size);
  await c.get('a', () => Promise.reject(new Error('a must be in memory'))); // a is now the most recent
  c.put('c', manifest(3), size);
  assert.is(c.bytes, size * 2);
  let read = 0;
  const counting = (n: number) => () => {
    read++;
    return Promise.resolve(stored(n));
  };
  await c.get('a', counting(1));
  await c.get('c', counting(3));
  assert.is(read, 0);
  await c.get('b', counting(2));
  assert.is(read, 1, 'b was the least recently used: dropped, read again');
  c.put('huge', manifest(4), size * 3);
  assert.ok(c.bytes <= size * 2);
  await c.get('huge', counting(4));
  assert.is(read, 2);
});

test('a cached manifest is frozen: changing a shared entry throws instead of corrupting the next capture', async () => {
  const c = new ManifestCache();
  const m = await c.get('d', () => Promise.resolve(stored(7)));
  assert.throws(() => {
    (m.entries[1] as { size?: number }).size = 8;
  }, TypeError);
  assert.throws(() => {
    m.entries[1]!.stat!.ino = 1;
  }, TypeError);
  assert.throws(() => (m.entries as unknown[]).push({}), TypeError);
  assert.is(m.entries[1]!.size, 7);
});

test('a stored document that is not a version 1 or 2 manifest is refused; both versions are read', async () => {
  const c = new ManifestCache();
  await c
    .get('x', () => Promise.resolve(Buffer.from('{"version":3,"entries":[]}')))
    .then(
      () => assert.unreachable(),
      (err: Error) => assert.match(err.message, /version 1 or 2/),
    );
  assert.is(c.bytes, 0);
  for (const version of [1, 2]) {
    const m = await c.get(`v${version}`, () => Promise.resolve(Buffer.from(`{"version":${version},"entries":[],"skipped":[]}`)));
    assert.is(m.version, version);
  }
});

test("a kept manifest's facts (summary, last change, distinct sorted file digests) are computed as it is kept, once, and are what the functions say", () => {
  const c = new ManifestCache();
  const [b, a] = ['b'.repeat(64), 'a'.repeat(64)];
  const m: Manifest = {
    version: 2,
    entries: [
      { path: '', type: 'directory', mode: 0o755 },
      { path: 'x', type: 'file', mode: 0o644, size: 3, digest: b, stat: { ino: 2, mtimeS: 5, ctimeS: 7 } },
      { path: 'y', type: 'file', mode: 0o644, size: 4, digest: a, stat: { ino: 3, mtimeS: 5, ctimeS: 9 } },
      { path: 'z', type: 'file', mode: 0o644, size: 3, digest: b, stat: { ino: 4, mtimeS: 5, ctimeS: 8 } },
      { path: 'l', type: 'symlink', mode: 0o777, target: 'x', stat: { ino: 5, mtimeS: 5, ctimeS: 6 } },
    ],
    skipped: [],
  };
  assert.is(c.facts('d'), null, 'not kept: no facts');
  c.put('d', m, 100);
  const f = c.facts('d')!;
  assert.is(c.facts('d'), f, 'computed once, when kept');
  assert.ok(Object.isFrozen(f) && Object.isFrozen(f.fileDigests) && Object.isFrozen(f.summary));
  assert.equal(f.summary, summarize(m));
  assert.equal(f.fileDigests, [a, b]);
  assert.is(f.lastChangeS, 9);
  // The rule settled() states: listed two seconds after the last change, and not before.
  assert.ok(settled(m, 11) && !settled(m, 10));
  assert.is(lastChangeS({ ...m, skipped: [{ path: 'g', kind: 'vanished' }] }), Infinity, 'a file vanished: never settled');
  assert.is(lastChangeS({ ...m, entries: [m.entries[0]!] }), -Infinity, 'directories alone: always settled');
  // Another manifest object under the same digest (a parse of the same bytes): its own facts.
  const again: Manifest = JSON.parse(JSON.stringify(m)) as Manifest;
  c.put('d', again, 100);
  assert.ok(c.facts('d') !== f);
  assert.equal(c.facts('d'), f);
});

test.run();
