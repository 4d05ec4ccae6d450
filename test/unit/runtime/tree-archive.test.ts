/** The tar guard's tree mode (checkpoint capture) and packTree (checkpoint restore). */
import { Readable } from 'node:stream';
import tarStream from 'tar-stream';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { packTree } from '../../../runtime/sandbox/files.ts';
import { guardedEntries, guardedTree, UnsafeArchiveError, type TreeEntry } from '../../../runtime/sandbox/tar-guard.ts';

type Spec = [Partial<tarStream.Header> & { name: string }, string?];
const LIMITS = { maxBytes: 1 << 20, maxEntries: 100 };

async function tarOf(specs: Spec[]): Promise<Readable> {
  const pack = tarStream.pack();
  for (const [h, body] of specs) {
    if (body === undefined) pack.entry(h).end(null);
    else pack.entry(h, body);
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return Readable.from([Buffer.concat(chunks)]);
}

async function read(tar: Readable): Promise<(Omit<TreeEntry, 'stream' | 'segments' | 'mtime'> & { content: string })[]> {
  const out = [];
  for await (const e of guardedTree(tar, LIMITS)) {
    const chunks: Buffer[] = [];
    for await (const c of e.stream) chunks.push(c);
    out.push({ path: e.path, type: e.type, linkname: e.linkname, size: e.size, mode: e.mode, content: Buffer.concat(chunks).toString() });
  }
  return out;
}

async function refused(specs: Spec[], pattern: RegExp): Promise<void> {
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

test('packTree errors the stream on content that does not match its size, or an unsafe name', async () => {
  for (const [entry, pattern] of [
    [{ name: 'f', type: 'file', mode: 0o644, size: 5, content: () => Promise.resolve(Buffer.from('abc')) }, /ended after 3 of 5/],
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

test.run();
