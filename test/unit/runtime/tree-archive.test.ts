/** The tar guard's tree mode (checkpoint capture) and packTree (checkpoint restore). */
import { Readable } from 'node:stream';
import tarStream from 'tar-stream';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { packTree, type TreePackEntry } from '../../../runtime/sandbox/files.ts';
import { encodeHeader } from '../../../runtime/sandbox/tar-format.ts';
import { guardedEntries, guardedTree, UnsafeArchiveError, type TreeEntry } from '../../../runtime/sandbox/tar-guard.ts';
import { tarBytes, type TarSpec } from './support.ts';

const LIMITS = { maxBytes: 1 << 20, maxEntries: 100 };

const tarOf = async (specs: TarSpec[]): Promise<Readable> => Readable.from([await tarBytes(specs)]);

async function read(
  tar: AsyncIterable<unknown>,
): Promise<(Omit<TreeEntry, 'stream' | 'segments' | 'mtime' | 'content'> & { content: string })[]> {
  const out = [];
  for await (const e of guardedTree(tar, LIMITS)) {
    const chunks: Buffer[] = [];
    for await (const c of e.stream) chunks.push(c);
    out.push({ path: e.path, type: e.type, linkname: e.linkname, size: e.size, mode: e.mode, content: Buffer.concat(chunks).toString() });
  }
  return out;
}

async function refused(specs: TarSpec[], pattern: RegExp): Promise<void> {
  try {
    await read(await tarOf(specs));
  } catch (err) {
    assert.instance(err, UnsafeArchiveError);
    assert.match((err as Error).message, pattern);
    return;
  }
  assert.unreachable('accepted');
}

test('links pass as records: a symlink with its target as text (even /etc/shadow), a hard link to an earlier file', async () => {
  const got = await read(
    await tarOf([
      [{ name: 'a.txt', mode: 0o644 }, 'hello'],
      [{ name: 'shadow', type: 'symlink', linkname: '/etc/shadow' }],
      [{ name: 'up', type: 'symlink', linkname: '../../..' }],
      [{ name: 'b.txt', type: 'link', linkname: './a.txt' }],
    ]),
  );
  assert.equal(
    got.map((e) => [e.path, e.type, e.linkname, e.content]),
    [
      ['a.txt', 'file', null, 'hello'],
      ['shadow', 'symlink', '/etc/shadow', ''],
      ['up', 'symlink', '../../..', ''],
      ['b.txt', 'hardlink', 'a.txt', ''],
    ],
  );
});

test('an entry under a symlink, a hard link to anything but an earlier file, devices and fifos are refused', async () => {
  await refused([[{ name: 'l', type: 'symlink', linkname: '/etc' }], [{ name: 'l/passwd' }, 'x']], /parent of this entry is a file/);
  await refused([[{ name: 'h', type: 'link', linkname: '/etc/passwd' }]], /absolute path/);
  await refused([[{ name: 'h', type: 'link', linkname: 'later' }], [{ name: 'later' }, 'x']], /not earlier in the archive/);
  await refused([[{ name: 'd', type: 'directory' }], [{ name: 'h', type: 'link', linkname: 'd' }]], /not earlier in the archive/);
  await refused([[{ name: 'p', type: 'fifo' }]], /fifo entry/);
  await refused([[{ name: 'c', type: 'character-device' }]], /device entry/);
  await refused([[{ name: 's', type: 'symlink', linkname: 'a\nb' }]], /unusable link target/);
});

test('the download guard still refuses links', async () => {
  try {
    for await (const _ of guardedEntries(await tarOf([[{ name: 's', type: 'symlink', linkname: 'x' }]]), LIMITS));
    assert.unreachable();
  } catch (err) {
    assert.match((err as Error).message, /symlink entry/);
  }
});

test('packTree packs files, directories and symlinks that read back the same, with special mode bits dropped', async () => {
  const tar = packTree(
    [
      { name: 'd', type: 'directory', mode: 0o1777 },
      { name: 'd/f', type: 'file', mode: 0o4755, size: 3, content: () => Promise.resolve(Buffer.from('abc')) },
      { name: 'd/l', type: 'symlink', mode: 0o777, linkname: '/etc/shadow' },
      { name: 'empty', type: 'file', mode: 0o600, size: 0 },
    ],
    { uid: 1000, gid: 1000 },
  );
  const got = await read(tar);
  assert.equal(
    got.map((e) => [e.path, e.type, e.mode.toString(8), e.linkname, e.content]),
    [
      ['d', 'directory', '777', null, ''],
      ['d/f', 'file', '755', null, 'abc'],
      ['d/l', 'symlink', '777', '/etc/shadow', ''],
      ['empty', 'file', '600', null, ''],
    ],
  );
});

test('packTree errors the stream on content that does not match its size, is not bytes, or an unsafe name', async () => {
  for (const [entry, pattern] of [
    [{ name: 'f', type: 'file', mode: 0o644, size: 5, content: () => Promise.resolve(Buffer.from('abc')) }, /ended after 3 of 5/],
    [
      { name: 'g', type: 'file', mode: 0o644, size: 2, content: () => Promise.resolve(Buffer.from('abc')) },
      /exceeds the declared size of 2/,
    ],
    [
      {
        name: 'h',
        type: 'file',
        mode: 0o644,
        size: 3,
        content: () =>
          Promise.resolve(
            (async function* () {
              yield 'abc';
            })(),
          ),
      },
      /non-byte chunk/,
    ],
    [{ name: '../x', type: 'file', mode: 0o644, size: 0 }, /parent-directory/],
  ] as const) {
    try {
      for await (const _ of packTree([entry], { uid: 1000, gid: 1000 }));
      assert.unreachable();
    } catch (err) {
      assert.match((err as Error).message, pattern);
    }
  }
});

/** What tar-stream's pack writes for the entries, with the headers packTree gave it before it wrote its own. */
async function tarStreamBytes(entries: TreePackEntry[], uid: number, gid: number): Promise<Buffer> {
  const pack = tarStream.pack();
  const out = (async () => {
    const chunks: Buffer[] = [];
    for await (const c of pack) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  })();
  for (const e of entries) {
    const base = { mode: e.mode & 0o777, uid, gid, mtime: new Date(e.mtimeMs!) };
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error | null) => (err ? reject(err) : resolve());
      if (e.type === 'directory') pack.entry({ ...base, name: `${e.name}/`, type: 'directory' }, done).end(null);
      else if (e.type === 'symlink') pack.entry({ ...base, name: e.name, type: 'symlink', linkname: e.linkname! }, done).end(null);
      else void e.content!().then((c) => pack.entry({ ...base, name: e.name, type: 'file', size: e.size! }, c as Buffer, done));
    });
  }
  pack.finalize();
  return out;
}

test("packTree's archive is byte for byte tar-stream's: long and non-ASCII names and targets (pax), modes, mtimes, empty files, directories, symlinks", async () => {
  const deep = Array.from({ length: 12 }, (_, i) => `directory-${i}`).join('/'); // > 100 bytes, splits into prefix + name
  const file = (name: string, size: number, mode = 0o644, mtimeMs = 1_700_000_000_123): TreePackEntry => {
    const body = Buffer.alloc(size, name.length % 251);
    return { name, type: 'file', mode, size, mtimeMs, content: () => Promise.resolve(body) };
  };
  const entries: TreePackEntry[] = [
    { name: 'd', type: 'directory', mode: 0o1777, mtimeMs: 0 },
    { name: 'zero-mode-dir', type: 'directory', mode: 0, mtimeMs: 5_000 },
    file('d/plain.txt', 5, 0o4755),
    file('d/empty', 0, 0o600),
    file('zero-mode', 3, 0),
    file('block', 512),
    file('block-and-one', 513),
    file('large.bin', 200_000, 0o640, 1_234),
    file('old', 1, 0o644, -86_400_000),
    file('far-future', 1, 0o644, 4_102_444_800_000),
    { name: deep, type: 'directory', mode: 0o755, mtimeMs: 1_000 },
    file(`${deep}/a-file-in-a-deep-directory.txt`, 10),
    file(`${'x'.repeat(101)}`, 2), // one segment over 100: pax
    file(`${'p/'.repeat(80)}name`, 2), // prefix over 155: pax
    file('naïve-ünïcode.txt', 4), // not ASCII: pax
    { name: 'link', type: 'symlink', mode: 0o777, linkname: '/etc/shadow', mtimeMs: 2_000 },
    { name: 'long-link', type: 'symlink', mode: 0o777, linkname: `/${'t'.repeat(120)}`, mtimeMs: 2_000 },
    { name: 'utf-link', type: 'symlink', mode: 0o777, linkname: 'ziel-ü', mtimeMs: 2_000 },
    { name: `${'l'.repeat(120)}`, type: 'symlink', mode: 0o777, linkname: `${'m'.repeat(120)}`, mtimeMs: 2_000 },
  ];
  for (const [uid, gid] of [
    [1000, 1000],
    [0, 0],
    [0o777777, 12345],
  ] as const) {
    const ours = Buffer.concat(await Readable.from(packTree(entries, { uid, gid })).toArray());
    const theirs = await tarStreamBytes(entries, uid, gid);
    assert.is(ours.length, theirs.length);
    for (let off = 0; off < ours.length; off += 512)
      if (!ours.subarray(off, off + 512).equals(theirs.subarray(off, off + 512)))
        assert.unreachable(`block at ${off} differs (uid ${uid})`);
  }
  // And it reads back through the guard as what was packed.
  const got = await read(packTree(entries.slice(0, 9), { uid: 1000, gid: 1000 }));
  assert.equal(
    got.map((e) => [e.path, e.type, e.size]),
    [
      ['d', 'directory', 0],
      ['zero-mode-dir', 'directory', 0],
      ['d/plain.txt', 'file', 5],
      ['d/empty', 'file', 0],
      ['zero-mode', 'file', 3],
      ['block', 'file', 512],
      ['block-and-one', 'file', 513],
      ['large.bin', 'file', 200_000],
      ['old', 'file', 1],
    ],
  );
});

test('encodeHeader: a file past 8 GiB gets the base-256 size tar-stream writes', async () => {
  const h = { name: 'huge', type: 'file', mode: 0o644, uid: 1, gid: 1, size: 2 ** 34 + 3, mtimeMs: 0 } as const;
  // tar-stream writes an entry's header before its content: its first block, without sending 16 GiB.
  const pack = tarStream.pack();
  pack.entry({ name: h.name, type: 'file', mode: h.mode, uid: h.uid, gid: h.gid, size: h.size, mtime: new Date(0) });
  const first = await new Promise<Buffer>((resolve) => pack.once('data', (c: unknown) => resolve(c as Buffer)));
  pack.destroy();
  const ours = encodeHeader(h);
  assert.is(ours[124], 0x80);
  assert.ok(ours.equals(first.subarray(0, 512)));
});

test.run();
