import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import tarStream from 'tar-stream';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  extractToHost,
  guardDownloadTar,
  packFile,
  readSingleFile,
  sanitizeUploadTar,
  UnsafeArchiveError,
  type UnsafeArchiveCode,
} from '../../runtime/sandbox/files.ts';

type Header = Partial<tarStream.Header> & { name: string; pax?: Record<string, string> };
type Spec = [Header, (string | Buffer)?];

const LIMITS = { maxBytes: 1024 * 1024, maxEntries: 100 };

/** Builds a tar in memory with tar-stream, which writes whatever hostile header it is given. */
async function tarOf(specs: Spec[]): Promise<Buffer> {
  const pack = tarStream.pack();
  for (const [header, body] of specs) {
    if (body === undefined) pack.entry(header).end(null);
    else pack.entry(header, body);
  }
  pack.finalize();
  return collect(pack);
}

async function collect(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const streamOf = (buf: Buffer): Readable => Readable.from([buf]);

interface Parsed {
  header: tarStream.Header;
  content: Buffer;
}
async function parseTar(buf: Buffer): Promise<Parsed[]> {
  const out: Parsed[] = [];
  const extract = tarStream.extract();
  extract.end(buf);
  for await (const entry of extract) out.push({ header: entry.header, content: await collect(entry) });
  return out;
}

async function refusal(work: Promise<unknown>, code: UnsafeArchiveCode): Promise<UnsafeArchiveError> {
  try {
    await work;
  } catch (err) {
    assert.instance(err, UnsafeArchiveError);
    const e = err as UnsafeArchiveError;
    assert.is(e.code, code, `${e.code}: ${e.message}`);
    return e;
  }
  assert.unreachable(`expected ${code}`);
  throw new Error('unreachable');
}

const tmpDirs: string[] = [];
/** A fresh scratch dir holding `dest/` (extraction target) and `outside/` (must stay empty). */
async function scratch(): Promise<{ dest: string; outside: string; base: string }> {
  const base = await fs.mkdtemp(path.join(os.tmpdir(), 'director-files-'));
  tmpDirs.push(base);
  const dest = path.join(base, 'dest');
  const outside = path.join(base, 'outside');
  await fs.mkdir(dest);
  await fs.mkdir(outside);
  return { dest, outside, base };
}

test.after.each(async () => {
  for (const dir of tmpDirs.splice(0)) await fs.rm(dir, { recursive: true, force: true });
});

async function assertNothingOutside(base: string, outside: string): Promise<void> {
  assert.equal((await fs.readdir(base)).sort(), ['dest', 'outside']);
  assert.equal(await fs.readdir(outside), []);
}

/** Walks `dir` into { relative path: content | 'dir' | 'link' }. */
async function snapshot(dir: string, rel = ''): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const ent of await fs.readdir(path.join(dir, rel), { withFileTypes: true })) {
    const p = rel ? `${rel}/${ent.name}` : ent.name;
    if (ent.isSymbolicLink()) out[p] = 'link';
    else if (ent.isDirectory()) Object.assign(out, { [p]: 'dir' }, await snapshot(dir, p));
    else out[p] = await fs.readFile(path.join(dir, p), 'utf8');
  }
  return out;
}

// --- packFile / readSingleFile ---

test('packFile then readSingleFile round-trips a file with its mode', async () => {
  const content = Buffer.from('hello sandbox\n');
  const tar = packFile('notes.txt', content, { size: content.length, mode: 0o640, uid: 1000, gid: 1000, mtimeMs: 1_700_000_000_000 });
  const file = await readSingleFile(tar, { maxBytes: 1024 });
  assert.equal(file, { name: 'notes.txt', size: content.length, mode: 0o640, content });
});

test('packFile streams a Readable source and writes ownership and mtime into the header', async () => {
  const source = Readable.from([Buffer.from('abc'), Buffer.from('def')]);
  const [entry, ...rest] = await parseTar(
    await collect(packFile('dir/f.bin', source, { size: 6, uid: 1000, gid: 1001, mtimeMs: 1_700_000_000_000 })),
  );
  assert.is(rest.length, 0);
  assert.is(entry!.header.name, 'dir/f.bin');
  assert.is(entry!.header.type, 'file');
  assert.is(entry!.header.uid, 1000);
  assert.is(entry!.header.gid, 1001);
  assert.is(entry!.header.mode, 0o644);
  assert.is(entry!.header.mtime.getTime(), 1_700_000_000_000);
  assert.is(entry!.content.toString(), 'abcdef');
});

test('packFile strips setuid, setgid and sticky bits', async () => {
  const [entry] = await parseTar(await collect(packFile('x', Buffer.from('x'), { size: 1, mode: 0o7755, uid: 0, gid: 0 })));
  assert.is(entry!.header.mode, 0o755);
});

test('packFile refuses names that are absolute, climb, or carry NUL or backslash', () => {
  for (const name of ['/etc/passwd', '../x', 'a/../../x', '..', '', '.', 'a\0b', '..\\x', 'a\nb']) {
    assert.throws(
      () => packFile(name, Buffer.from('x'), { size: 1, uid: 0, gid: 0 }),
      (e: unknown) => e instanceof UnsafeArchiveError && e.code === 'UNSAFE_ARCHIVE',
      name,
    );
  }
});

test('packFile refuses a size that does not match a Buffer and out-of-range ids', () => {
  assert.throws(() => packFile('x', Buffer.from('xy'), { size: 1, uid: 0, gid: 0 }), RangeError);
  assert.throws(() => packFile('x', Buffer.from('x'), { size: 1, uid: -1, gid: 0 }), RangeError);
  assert.throws(() => packFile('x', Buffer.from('x'), { size: 1, uid: 0, gid: 2 ** 21 }), RangeError);
});

test('packFile errors the stream before emitting bytes beyond the declared size', async () => {
  // The excess would otherwise land where the next header is parsed: a smuggled symlink entry.
  const smuggled = await tarOf([[{ name: 'evil', type: 'symlink', linkname: '/etc' }]]);
  const source = Readable.from([Buffer.alloc(512, 'a'), smuggled]);
  const out: Buffer[] = [];
  const err = await refusal(
    (async () => {
      for await (const chunk of packFile('f', source, { size: 512, uid: 0, gid: 0 })) out.push(chunk as Buffer);
    })(),
    'TOO_LARGE',
  );
  assert.is(err.entry, 'f');
  assert.not.ok(Buffer.concat(out).includes(Buffer.from('/etc')), 'smuggled header reached the output');
});

test('packFile errors the stream when the source is shorter than the declared size', async () => {
  await refusal(collect(packFile('f', Readable.from([Buffer.from('ab')]), { size: 10, uid: 0, gid: 0 })), 'UNSAFE_ARCHIVE');
});

test('readSingleFile refuses a symlink as NOT_A_FILE', async () => {
  const e = await refusal(
    readSingleFile(streamOf(await tarOf([[{ name: 'link', type: 'symlink', linkname: '/etc/passwd' }]])), { maxBytes: 1024 }),
    'NOT_A_FILE',
  );
  assert.is(e.entry, 'link');
  assert.match(e.reason, /symlink/);
});

test('readSingleFile refuses a directory, a hardlink and a fifo as NOT_A_FILE', async () => {
  for (const header of [
    { name: 'dir/', type: 'directory' },
    { name: 'hl', type: 'link', linkname: 'other' },
    { name: 'pipe', type: 'fifo' },
  ] as Header[]) {
    await refusal(readSingleFile(streamOf(await tarOf([[header]])), { maxBytes: 1024 }), 'NOT_A_FILE');
  }
});

test('readSingleFile refuses an archive holding more than one entry', async () => {
  const tar = await tarOf([
    [{ name: 'a' }, 'one'],
    [{ name: 'b' }, 'two'],
  ]);
  const e = await refusal(readSingleFile(streamOf(tar), { maxBytes: 1024 }), 'UNSAFE_ARCHIVE');
  assert.is(e.entry, 'b');
});

test('readSingleFile refuses an empty archive and an unsafe name', async () => {
  await refusal(readSingleFile(streamOf(Buffer.alloc(1024)), { maxBytes: 1024 }), 'UNSAFE_ARCHIVE');
  await refusal(readSingleFile(streamOf(await tarOf([[{ name: '/etc/shadow' }, 'x']])), { maxBytes: 1024 }), 'UNSAFE_ARCHIVE');
});

test('readSingleFile refuses an oversize file from its header without waiting for content', async () => {
  // A header announcing 1 GiB, then a stream that never delivers or ends: only a refusal
  // made from the header can settle this promise.
  const pack = tarStream.pack();
  pack.entry({ name: 'huge', size: 2 ** 30 });
  const header = (await pack[Symbol.asyncIterator]().next()).value as Buffer;
  const hanging = new Readable({ read() {} });
  hanging.push(header);
  const e = await refusal(readSingleFile(hanging, { maxBytes: 1024 }), 'TOO_LARGE');
  assert.is(e.entry, 'huge');
  assert.ok(hanging.destroyed, 'input left open');
  pack.destroy();
});

test('readSingleFile refuses garbage as a malformed archive', async () => {
  const e = await refusal(readSingleFile(streamOf(Buffer.alloc(2048, 'z')), { maxBytes: 1024 }), 'UNSAFE_ARCHIVE');
  assert.match(e.reason, /malformed/);
});

// --- extractToHost: hostile archives ---

const hostile: Array<[string, Spec[], UnsafeArchiveCode]> = [
  ['a symlink entry', [[{ name: 'link', type: 'symlink', linkname: '/etc/passwd' }]], 'UNSAFE_ARCHIVE'],
  [
    'a symlink followed by a file through it',
    [[{ name: 'out', type: 'symlink', linkname: '../outside' }], [{ name: 'out/f' }, 'x']],
    'UNSAFE_ARCHIVE',
  ],
  ['a hardlink entry', [[{ name: 'hl', type: 'link', linkname: '/etc/passwd' }]], 'UNSAFE_ARCHIVE'],
  ['an absolute name', [[{ name: '/etc/x' }, 'x']], 'UNSAFE_ARCHIVE'],
  ['a ../ name', [[{ name: '../escape' }, 'x']], 'UNSAFE_ARCHIVE'],
  ['a name climbing out through a/../../', [[{ name: 'a/../../escape' }, 'x']], 'UNSAFE_ARCHIVE'],
  ['a name climbing out with backslashes', [[{ name: '..\\..\\escape' }, 'x']], 'UNSAFE_ARCHIVE'],
  ['a character device', [[{ name: 'null', type: 'character-device', devmajor: 1, devminor: 3 }]], 'UNSAFE_ARCHIVE'],
  ['a block device', [[{ name: 'sda', type: 'block-device', devmajor: 8, devminor: 0 }]], 'UNSAFE_ARCHIVE'],
  ['a fifo', [[{ name: 'pipe', type: 'fifo' }]], 'UNSAFE_ARCHIVE'],
  [
    'an entry under a file (x, then x/y)',
    [
      [{ name: 'x' }, 'file'],
      [{ name: 'x/y' }, 'under a file'],
    ],
    'UNSAFE_ARCHIVE',
  ],
  [
    'a file repeated',
    [
      [{ name: 'x' }, 'one'],
      [{ name: 'x' }, 'two'],
    ],
    'UNSAFE_ARCHIVE',
  ],
  ['a directory over a file', [[{ name: 'x' }, 'one'], [{ name: 'x/', type: 'directory' }]], 'UNSAFE_ARCHIVE'],
  ['a pax path that climbs out', [[{ name: 'innocent', pax: { path: '../escape' } }, 'x']], 'UNSAFE_ARCHIVE'],
];

for (const [what, specs, code] of hostile) {
  test(`extractToHost refuses ${what} and writes nothing outside the destination`, async () => {
    const { dest, outside, base } = await scratch();
    await refusal(extractToHost(streamOf(await tarOf(specs)), dest, LIMITS), code);
    await assertNothingOutside(base, outside);
    const left = await snapshot(dest);
    assert.not.ok(Object.values(left).includes('link'), 'a link was created');
  });

  test(`guardDownloadTar errors its output on ${what}`, async () => {
    await refusal(collect(guardDownloadTar(streamOf(await tarOf(specs)), LIMITS)), code);
  });

  test(`sanitizeUploadTar errors its output on ${what}`, async () => {
    await refusal(collect(sanitizeUploadTar(streamOf(await tarOf(specs)), { ...LIMITS, uid: 1000, gid: 1000 })), code);
  });
}

test('extractToHost refuses to write through a symlink planted in the destination', async () => {
  const { dest, outside, base } = await scratch();
  await fs.symlink(outside, path.join(dest, 'out'));
  const e = await refusal(extractToHost(streamOf(await tarOf([[{ name: 'out/file' }, 'pwned']])), dest, LIMITS), 'UNSAFE_ARCHIVE');
  assert.is(e.entry, 'out/file');
  assert.match(e.reason, /symlink/);
  await assertNothingOutside(base, outside);
});

test('extractToHost refuses a file or directory entry whose name is a planted symlink', async () => {
  const { dest, outside, base } = await scratch();
  await fs.symlink(path.join(outside, 'target'), path.join(dest, 'out'));
  await refusal(extractToHost(streamOf(await tarOf([[{ name: 'out' }, 'pwned']])), dest, LIMITS), 'UNSAFE_ARCHIVE');
  await refusal(extractToHost(streamOf(await tarOf([[{ name: 'out/', type: 'directory' }]])), dest, LIMITS), 'UNSAFE_ARCHIVE');
  await refusal(
    extractToHost(streamOf(await tarOf([[{ name: 'out/', type: 'directory' }], [{ name: 'out/f' }, 'x']])), dest, LIMITS),
    'UNSAFE_ARCHIVE',
  );
  await assertNothingOutside(base, outside);
});

test('extractToHost refuses to overwrite a file already in the destination', async () => {
  const { dest } = await scratch();
  await fs.writeFile(path.join(dest, 'keep'), 'original');
  await refusal(extractToHost(streamOf(await tarOf([[{ name: 'keep' }, 'replaced']])), dest, LIMITS), 'UNSAFE_ARCHIVE');
  assert.is(await fs.readFile(path.join(dest, 'keep'), 'utf8'), 'original');
});

test('extractToHost refuses content over maxBytes', async () => {
  const { dest, outside, base } = await scratch();
  const tar = await tarOf([
    [{ name: 'a' }, Buffer.alloc(600)],
    [{ name: 'b' }, Buffer.alloc(600)],
  ]);
  const e = await refusal(extractToHost(streamOf(tar), dest, { maxBytes: 1000, maxEntries: 10 }), 'TOO_LARGE');
  assert.is(e.entry, 'b');
  await assertNothingOutside(base, outside);
});

test('extractToHost refuses more than maxEntries entries', async () => {
  const { dest } = await scratch();
  const tar = await tarOf(Array.from({ length: 4 }, (_, i): Spec => [{ name: `f${i}` }, 'x']));
  const e = await refusal(extractToHost(streamOf(tar), dest, { maxBytes: 1024, maxEntries: 3 }), 'TOO_LARGE');
  assert.is(e.entry, 'f3');
});

test('a huge pax header is refused by the raw stream cap before it is buffered', async () => {
  const tar = await tarOf([[{ name: 'f', pax: { comment: 'x'.repeat(200_000) } }, 'x']]);
  const e = await refusal(collect(guardDownloadTar(streamOf(tar), { maxBytes: 1024, maxEntries: 2 })), 'TOO_LARGE');
  assert.match(e.reason, /archive stream exceeds/);
});

test('limits that are not non-negative integers are rejected rather than ignored', async () => {
  const tar = await tarOf([[{ name: 'f' }, 'x']]);
  assert.throws(() => guardDownloadTar(streamOf(tar), { maxBytes: NaN, maxEntries: 10 }), RangeError);
  assert.throws(() => sanitizeUploadTar(streamOf(tar), { maxBytes: 10, maxEntries: -1, uid: 0, gid: 0 }), RangeError);
  try {
    await readSingleFile(streamOf(tar), { maxBytes: Infinity });
    assert.unreachable('accepted an infinite cap');
  } catch (err) {
    assert.instance(err, RangeError);
  }
});

// --- happy paths ---

test('a directory tar passes guardDownloadTar and extractToHost reproduces its contents', async () => {
  const { dest, outside, base } = await scratch();
  const sandboxTar = await tarOf([
    [{ name: 'work/', type: 'directory', mode: 0o755 }],
    [{ name: 'work/a.txt', mode: 0o644 }, 'alpha'],
    [{ name: 'work/bin/run.sh', mode: 0o4755 }, '#!/bin/sh\n'],
    [{ name: 'work/empty', mode: 0o600 }, ''],
    [{ name: 'work/deep/er/c.txt' }, 'gamma'],
    [{ name: 'work/ünïcode-name-that-is-long-enough-to-need-a-pax-header-'.padEnd(140, 'x') }, 'pax'],
  ]);
  const guarded = await collect(guardDownloadTar(streamOf(sandboxTar), LIMITS));
  const written = await extractToHost(streamOf(guarded), dest, LIMITS);
  const long = 'work/ünïcode-name-that-is-long-enough-to-need-a-pax-header-'.padEnd(140, 'x');
  assert.equal(written, ['work', 'work/a.txt', 'work/bin/run.sh', 'work/empty', 'work/deep/er/c.txt', long]);
  assert.equal(await snapshot(dest), {
    work: 'dir',
    'work/a.txt': 'alpha',
    'work/bin': 'dir',
    'work/bin/run.sh': '#!/bin/sh\n',
    'work/empty': '',
    'work/deep': 'dir',
    'work/deep/er': 'dir',
    'work/deep/er/c.txt': 'gamma',
    [long]: 'pax',
  });
  const mode = (await fs.stat(path.join(dest, 'work/bin/run.sh'))).mode & 0o7777;
  assert.is(mode & 0o7000, 0, 'setuid survived');
  assert.is(mode & 0o100, 0o100, 'owner exec bit lost');
  await assertNothingOutside(base, outside);
});

test('guardDownloadTar re-packs with uid/gid 0, masked modes and no link names', async () => {
  const tar = await tarOf([
    [{ name: './', type: 'directory' }],
    [{ name: './d/', type: 'directory', mode: 0o1777, uid: 1000, gid: 1000 }],
    [{ name: './d/f', mode: 0o6777, uid: 1000, gid: 1000, uname: 'sandbox', gname: 'sandbox', pax: { linkpath: '/etc/passwd' } }, 'data'],
    [{ name: './d/private', mode: 0o400 }, 'key'],
  ]);
  const entries = await parseTar(await collect(guardDownloadTar(streamOf(tar), LIMITS)));
  assert.equal(
    entries.map((e) => [e.header.name, e.header.type, e.header.mode, e.header.uid, e.header.gid, e.header.linkname ?? '', e.header.uname]),
    [
      ['d/', 'directory', 0o755, 0, 0, '', ''],
      ['d/f', 'file', 0o755, 0, 0, '', ''],
      ['d/private', 'file', 0o600, 0, 0, '', ''],
    ],
  );
  assert.is(entries[1]!.content.toString(), 'data');
});

test('sanitizeUploadTar forces ownership, drops special bits and skips the archive root', async () => {
  const tar = await tarOf([
    [{ name: './', type: 'directory', mode: 0o777 }],
    [{ name: './app/', type: 'directory', mode: 0o2775, uid: 0 }],
    [{ name: './app/tool', mode: 0o4755, uid: 0, gid: 0 }, 'bin'],
  ]);
  const entries = await parseTar(await collect(sanitizeUploadTar(streamOf(tar), { ...LIMITS, uid: 1000, gid: 1001 })));
  assert.equal(
    entries.map((e) => [e.header.name, e.header.type, e.header.mode, e.header.uid, e.header.gid]),
    [
      ['app/', 'directory', 0o775, 1000, 1001],
      ['app/tool', 'file', 0o755, 1000, 1001],
    ],
  );
  assert.is(entries[1]!.content.toString(), 'bin');
});

test('destroying a guardDownloadTar output destroys its input', async () => {
  const input = new Readable({ read() {} });
  input.push(await tarOf([[{ name: 'f' }, Buffer.alloc(64 * 1024)]]));
  const out = guardDownloadTar(input, LIMITS);
  await new Promise((resolve) => out.once('readable', resolve));
  out.destroy();
  for (let i = 0; i < 50 && !input.destroyed; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.ok(input.destroyed);
});

test.run();
