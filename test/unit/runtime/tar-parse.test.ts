/**
 * The tar parser behind the guard (`tar-parse.ts`) against tar-stream's extract, which it
 * replaced: over the same archives, cut into chunks of every kind of size, both must read the
 * same entries (header fields and content) and fail on the same archives. The corpus holds what
 * producers write (ustar with a name prefix, pax records for long and non-ASCII names and link
 * targets, GNU long names, old-style directory names, empty and block-sized files), archives
 * cut short, and seeded random corruptions of them.
 */
import { Readable } from 'node:stream';
import tarStream from 'tar-stream';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { guardedEntries, UnsafeArchiveError } from '../../../runtime/sandbox/tar-guard.ts';
import { parseTar, TarFormatError } from '../../../runtime/sandbox/tar-parse.ts';
import { tarBytes } from './support.ts';

interface Seen {
  entries: { name: string; type: string | null; size: number; mode: number; mtime: number; linkname: string | null; content: string }[];
  error: boolean;
}

const pack = tarBytes;

/** A raw header block (for what tar-stream's pack does not write: GNU long names, old-style names). */
function block(name: string, flag: string, size: number, magic: 'gnu' | 'ustar' = 'gnu'): Buffer {
  const b = Buffer.alloc(512);
  b.write(name.slice(0, 100), 0, 'utf8');
  b.write('0000644 \0', 100, 'latin1');
  b.write('0001750 \0', 108, 'latin1');
  b.write('0001750 \0', 116, 'latin1');
  b.write(`${size.toString(8).padStart(11, '0')} `, 124, 'latin1');
  b.write('14712345670 ', 136, 'latin1');
  b.write(flag, 156, 'latin1');
  if (magic === 'gnu') b.write('ustar  \0', 257, 'latin1');
  else b.write('ustar\x0000', 257, 'latin1');
  fixChecksum(b, 0);
  return b;
}

const pad = (n: number) => Buffer.alloc((512 - (n % 512)) % 512);

function gnuLongName(name: string, body: string): Buffer {
  const n = Buffer.from(`${name}\0`);
  const c = Buffer.from(body);
  return Buffer.concat([
    block('././@LongLink', 'L', n.length),
    n,
    pad(n.length),
    block(name.slice(0, 100), '0', c.length),
    c,
    pad(c.length),
    Buffer.alloc(1024),
  ]);
}

async function corpus(): Promise<Record<string, Buffer>> {
  const long = `${'d'.repeat(60)}/${'e'.repeat(60)}/${'f'.repeat(90)}.txt`;
  return {
    plain: await pack([
      [{ name: 'dir/', type: 'directory', mode: 0o755 }],
      [{ name: 'dir/a.txt', mode: 0o644, mtime: new Date(1_700_000_000_000) }, 'hello'],
      [{ name: 'dir/empty' }, ''],
      [{ name: 'dir/block', mode: 0o600 }, Buffer.alloc(512, 7)],
      [{ name: 'dir/block+1' }, Buffer.alloc(513, 8)],
      [{ name: 'big.bin' }, Buffer.alloc(300 * 1024, 9)],
    ]),
    links: await pack([
      [{ name: 'a' }, 'x'],
      [{ name: 'l', type: 'symlink', linkname: '/etc/shadow' }],
      [{ name: 'h', type: 'link', linkname: 'a' }],
      [{ name: 'longlink', type: 'symlink', linkname: `/${'t'.repeat(150)}` }],
    ]),
    pax: await pack([
      [{ name: long }, 'long name'],
      [{ name: 'naïve/ünïcödé.txt' }, 'non-ascii'],
      [{ name: `${'p'.repeat(120)}/x` }, 'prefix split'],
    ]),
    gnu: gnuLongName(`${'g'.repeat(150)}/name.txt`, 'gnu long name'),
    oldStyleDir: Buffer.concat([block('olddir/', '0', 0, 'ustar'), Buffer.alloc(1024)]),
    devices: await pack([[{ name: 'fifo', type: 'fifo' }], [{ name: 'chr', type: 'character-device', devmajor: 1, devminor: 3 }]]),
  };
}

async function rejects(fn: () => Promise<void>, pattern: RegExp): Promise<void> {
  try {
    await fn();
  } catch (err) {
    assert.match((err as Error).message, pattern);
    return;
  }
  assert.unreachable('no error');
}

async function* chunksOf(buf: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let off = 0; off < buf.length; off += size) yield buf.subarray(off, off + size);
}

async function viaParser(buf: Buffer, chunk: number, wholeUpTo: number): Promise<Seen> {
  const seen: Seen = { entries: [], error: false };
  try {
    for await (const { header: h, content, stream } of parseTar(chunksOf(buf, chunk), {
      capBytes: 1 << 30,
      tooLarge: () => new Error('cap'),
      wholeUpTo,
      onInputError: () => undefined,
    })) {
      const parts: Buffer[] = [];
      if (content) parts.push(content);
      else for await (const c of stream) parts.push(c);
      seen.entries.push({
        name: h.name,
        type: h.type,
        size: h.size,
        mode: h.mode,
        mtime: h.mtime.getTime(),
        linkname: h.linkname,
        content: Buffer.concat(parts).toString('latin1'),
      });
    }
  } catch (err) {
    if (!(err instanceof TarFormatError)) throw err;
    lastError = err.message;
    seen.error = true;
  }
  return seen;
}

/** The message of viaParser's last refusal. */
let lastError = '';
/** Where this parser refuses on purpose and tar-stream does not (see tar-parse.ts): empty or negative long-name and pax records. */
const intendedRefusal = /record of -?\d+ bytes$/;

async function viaTarStream(buf: Buffer, chunk: number): Promise<Seen> {
  const seen: Seen = { entries: [], error: false };
  const extract = tarStream.extract();
  const input = Readable.from(chunksOf(buf, chunk));
  input.pipe(extract);
  try {
    for await (const e of extract) {
      const h = e.header;
      const parts: Buffer[] = [];
      for await (const c of e) parts.push(c as Buffer);
      seen.entries.push({
        name: h.name,
        type: h.type ?? null,
        size: h.size ?? NaN,
        mode: h.mode ?? 0,
        mtime: h.mtime?.getTime() ?? NaN,
        linkname: h.linkname ?? null,
        content: Buffer.concat(parts).toString('latin1'),
      });
    }
  } catch {
    seen.error = true;
  }
  return seen;
}

test('reads what tar-stream reads, whatever the chunk sizes and whole-content limit', async () => {
  for (const [name, buf] of Object.entries(await corpus())) {
    const want = await viaTarStream(buf, 65536);
    assert.not.ok(want.error, `${name}: tar-stream refused the corpus`);
    assert.ok(want.entries.length > 0, name);
    // Byte by byte only where it is quick (tar-stream takes a callback per chunk).
    for (const chunk of buf.length < 20_000 ? [1, 7, 511, 512, 513, 4096, buf.length] : [511, 512, 513, 4096, buf.length]) {
      for (const whole of [-1, 0, 600, 1 << 20]) {
        assert.equal(await viaParser(buf, chunk, whole), want, `${name}, chunks of ${chunk}, whole up to ${whole}`);
      }
    }
  }
});

test('the corpus covers what the guard must see: pax names, GNU long names, prefix names, old-style directories, links, devices', async () => {
  const c = await corpus();
  const names = async (k: string) => (await viaParser(c[k]!, 512, -1)).entries.map((e) => [e.name, e.type]);
  assert.equal((await names('gnu'))[0], [`${'g'.repeat(150)}/name.txt`, 'file']);
  assert.equal((await names('pax'))[1], ['naïve/ünïcödé.txt', 'file']);
  assert.equal((await names('pax'))[2], [`${'p'.repeat(120)}/x`, 'file']);
  // An old-style `name/` of type 0 is what tar-stream makes of it: a file (the guard then judges `olddir`).
  assert.equal(await names('oldStyleDir'), [['olddir/', 'file']]);
  assert.equal((await names('links')).slice(1, 3), [
    ['l', 'symlink'],
    ['h', 'link'],
  ]);
  assert.equal((await viaParser(c.links!, 512, -1)).entries[3]!.linkname, `/${'t'.repeat(150)}`);
  assert.equal(await names('devices'), [
    ['fifo', 'fifo'],
    ['chr', 'character-device'],
  ]);
});

test('an archive cut short anywhere fails as tar-stream fails it (a cut block is an error, a cut at a block boundary is not)', async () => {
  const buf = (await corpus()).plain!;
  for (let cut = 1; cut < buf.length; cut += cut < 4096 ? 37 : 4099) {
    const part = buf.subarray(0, cut);
    const want = await viaTarStream(part, 1000);
    assert.equal(await viaParser(part, 1000, 1024), want, `cut at ${cut}`);
    assert.equal(await viaParser(part, 512, -1), want, `cut at ${cut}, blocks, all streamed`);
  }
});

/** Recomputes the checksum of the header block at `off` (so a corrupted field is parsed, not refused for its checksum). */
function fixChecksum(b: Buffer, off: number): void {
  const h = b.subarray(off, off + 512);
  h.fill(32, 148, 156);
  let sum = 0;
  for (const x of h) sum += x;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
}

/** Where the header blocks of a valid archive are (a header, its content rounded up to blocks, the next header). */
function headerOffsets(buf: Buffer): number[] {
  const out: number[] = [];
  for (let off = 0; off + 512 <= buf.length;) {
    const h = buf.subarray(off, off + 512);
    if (h.every((x) => x === 0)) break;
    out.push(off);
    off += 512 + Math.ceil(parseInt(h.toString('latin1', 124, 136), 8) / 512) * 512;
  }
  return out;
}

/** tar-stream, given up on after a while: it hangs on some corruptions (a directory with a size, a size it cannot decode). */
async function viaTarStreamOrHang(buf: Buffer, chunk: number): Promise<Seen | null> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<null>((r) => (timer = setTimeout(() => r(null), 100)));
  try {
    return await Promise.race([viaTarStream(buf, chunk), hang]);
  } finally {
    clearTimeout(timer);
  }
}

test('seeded corruptions of header fields (checksums made valid again): the same entries and the same refusals as tar-stream', async () => {
  const c = await corpus();
  const sources = [
    await pack([
      [{ name: 'dir/', type: 'directory', mode: 0o755 }],
      [{ name: 'dir/a.txt', mode: 0o644 }, 'hello'],
      [{ name: `${'p'.repeat(120)}/x` }, 'prefix'],
      [{ name: 'naïve.txt' }, 'pax'],
      [{ name: 'l', type: 'symlink', linkname: 'x'.repeat(150) }],
      [{ name: 'z' }, Buffer.alloc(700, 3)],
    ]),
    c.gnu!,
    c.links!,
  ];
  // [offset, length] of name, mode, size, mtime, typeflag, link name, magic and version, prefix.
  const fields = [
    [0, 100],
    [100, 8],
    [124, 12],
    [136, 12],
    [156, 1],
    [157, 100],
    [257, 8],
    [345, 155],
  ] as const;
  // Values where parsers part ways: NUL, space, digits, 8, base-256 markers, Unicode space bytes, '/', type flags L, K, x, g.
  const values = [0, 0x20, 0x30, 0x37, 0x38, 0x80, 0xff, 0xa0, 0xc2, 0x2f, 0x31, 0x35, 0x4c, 0x4b, 0x78, 0x67];
  let seed = 7;
  const rand = (n: number) => Math.floor(((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x80000000) * n);
  const tally = { same: 0, bothRefused: 0, intended: 0, tarStreamHung: 0 };
  for (let i = 0; i < 1500; i++) {
    const src = sources[i % sources.length]!;
    const buf = Buffer.from(src);
    const offsets = headerOffsets(src);
    const off = offsets[rand(offsets.length)]!;
    const [fo, fl] = fields[rand(fields.length)]!;
    for (let k = 1 + rand(2); k > 0; k--) buf[off + fo + rand(fl)] = values[rand(values.length)]!;
    fixChecksum(buf, off);
    const chunk = [333, 512, 4096][i % 3]!;
    const want = await viaTarStreamOrHang(buf, chunk);
    if (!want) {
      tally.tarStreamHung++;
      continue;
    }
    const got = await viaParser(buf, chunk, i % 2 ? 1024 : -1);
    const where = `corruption ${i}: header at ${off}, field at ${fo}`;
    if (got.error && !want.error && intendedRefusal.test(lastError)) {
      tally.intended++;
      continue;
    }
    assert.is(got.error, want.error, `${where}: refused by one parser only`);
    // Up to a refusal, both read the same entries; this parser may notice it an entry sooner, never later.
    const n = Math.min(got.entries.length, want.entries.length);
    assert.equal(got.entries.slice(0, n), want.entries.slice(0, n), where);
    assert.ok(got.entries.length <= want.entries.length, `${where}: entries read past tar-stream's refusal`);
    if (got.error) tally.bothRefused++;
    else {
      assert.is(got.entries.length, want.entries.length, where);
      tally.same++;
    }
  }
  assert.ok(tally.same > 200 && tally.bothRefused > 100 && tally.tarStreamHung <= 20, JSON.stringify(tally));
});

/** An archive of one pax or GNU long-name record with `body`, then a file `plain` holding `x`. */
function recordThenFile(flag: 'x' | 'L' | 'K', body: Buffer): Buffer {
  return Buffer.concat([
    block('././@LongLink', flag, body.length),
    body,
    pad(body.length),
    block('plain', '0', 1),
    Buffer.from('x'),
    pad(1),
    Buffer.alloc(1024),
  ]);
}

test('odd records read as tar-stream reads them: a negative pax length, a long name starting with NUL, numbers in Uint8Array chunks', async () => {
  const cases = {
    negativePaxLength: recordThenFile('x', Buffer.from(`-30 path=../../evil\n${'A'.repeat(40)}`)),
    nulLongName: recordThenFile('L', Buffer.from('\0hidden')),
    nulLongLink: recordThenFile('K', Buffer.from('\0hidden')),
    paxSizeNotANumber: recordThenFile('x', Buffer.from('13 size=abc\n')),
    paxLengthPastTheStart: recordThenFile('x', Buffer.from('-1000 path=x\n')),
    nonAsciiMode: (() => {
      const b = Buffer.concat([block('f', '0', 0), Buffer.alloc(1024)]);
      // A no-break space before the digits: read as UTF-8 (tar-stream), not a number; as latin1, 420.
      Buffer.from([0x20, 0xa0, 0x36, 0x34, 0x34, 0x20, 0, 0]).copy(b, 100);
      fixChecksum(b, 0);
      return b;
    })(),
    nonAsciiSize: (() => {
      const b = Buffer.concat([block('f', '0', 0), Buffer.alloc(1024)]);
      b.write(' \u00a017', 124, 'latin1'); // a no-break space before the digits: tar-stream refuses it
      fixChecksum(b, 0);
      return b;
    })(),
  };
  for (const [name, buf] of Object.entries(cases)) {
    const want = await viaTarStream(buf, 512);
    assert.equal(await viaParser(buf, 512, -1), want, name);
    assert.equal(await viaParser(buf, 7, 1024), want, `${name}, chunks of 7`);
  }
  const plain = (await corpus()).plain!;
  const asUint8 = async function* () {
    for (let off = 0; off < plain.length; off += 1000) yield new Uint8Array(plain.subarray(off, off + 1000));
  };
  const seen: string[] = [];
  for await (const e of parseTar(asUint8(), {
    capBytes: 1 << 30,
    tooLarge: () => new Error('cap'),
    wholeUpTo: 1024,
    onInputError: () => undefined,
  }))
    seen.push(e.header.name);
  assert.equal(
    seen,
    (await viaTarStream(plain, 1000)).entries.map((e) => e.name),
  );
});

test('a zero-size or negative long-name or pax record is refused (tar-stream frames what follows by its chunking)', async () => {
  for (const flag of ['x', 'L'] as const) {
    const b = recordThenFile(flag, Buffer.alloc(0));
    assert.ok((await viaParser(b, 512, -1)).error, `${flag}, empty`);
    assert.match(lastError, /record of 0 bytes/);
    // Base-256 minus 512: the size a stream position must never move back by.
    b.fill(0, 124, 136);
    b[124] = 0xff;
    for (let i = 125; i < 136; i++) b[i] = 0xff;
    b[134] = 0xfd;
    fixChecksum(b, 0);
    assert.ok((await viaParser(b, 512, -1)).error, `${flag}, negative`);
    assert.match(lastError, /record of -512 bytes/);
  }
  // Past tar-stream's limit for such a record: refused from its header, before its body is read.
  const huge = Buffer.concat([block('././@LongLink', 'x', 5 * 1024 * 1024), Buffer.alloc(512)]);
  assert.ok((await viaParser(huge, 512, -1)).error);
  assert.match(lastError, /Header exceeds max size/);
  assert.ok((await viaTarStream(huge, 512)).error, 'tar-stream refuses it too');
});

test("through the guard: a failure inside a streamed file is the guard's refusal, an input failure the input's own error", async () => {
  const big = await pack([[{ name: 'big' }, Buffer.alloc(100_000, 1)]]);
  const readAll = async (input: AsyncIterable<unknown>, maxBytes = 1 << 20) => {
    for await (const e of guardedEntries(input, { maxBytes, maxEntries: 10 })) for await (const _ of e.stream) void _;
  };
  // Cut inside the file's content.
  try {
    await readAll(chunksOf(big.subarray(0, 50_000), 4096));
    assert.unreachable('no error');
  } catch (err) {
    assert.instance(err, UnsafeArchiveError);
    assert.match((err as Error).message, /malformed tar archive/);
  }
  // Over the content cap: refused from its header, before its content is read.
  await rejects(() => readAll(chunksOf(big, 4096), 20_000), /archive content exceeds/);
  // The transport failing inside the file.
  const boom = new Error('transport failed');
  async function* failing(): AsyncGenerator<Buffer> {
    yield big.subarray(0, 30_000);
    throw boom;
  }
  try {
    await readAll(failing());
    assert.unreachable('no error');
  } catch (err) {
    assert.is(err, boom);
  }
});

test('a chunk that is not bytes is refused; an input error is the input error', async () => {
  const opts = { capBytes: 1 << 20, tooLarge: () => new Error('cap'), wholeUpTo: -1 };
  await rejects(async () => {
    for await (const _ of parseTar(Readable.from(['not bytes'], { objectMode: true }), { ...opts, onInputError: () => undefined })) void _;
  }, /non-byte chunk/);
  const boom = new Error('transport failed');
  let seen: unknown;
  async function* failing(): AsyncGenerator<Buffer> {
    yield Buffer.alloc(512);
    throw boom;
  }
  try {
    for await (const _ of parseTar(failing(), { ...opts, onInputError: (e) => (seen = e) })) void _;
    assert.unreachable('no error');
  } catch (err) {
    assert.is(err, boom);
    assert.is(seen, boom);
  }
});

test('past the byte cap the input is refused with the cap error, and an input stopped early is stopped', async () => {
  const buf = (await corpus()).plain!;
  await rejects(async () => {
    for await (const _ of parseTar(chunksOf(buf, 4096), {
      capBytes: 10_000,
      tooLarge: (cap) => new Error(`over ${cap}`),
      wholeUpTo: -1,
      onInputError: () => undefined,
    }))
      void _;
  }, /over 10000/);
  let returned = false;
  async function* input(): AsyncGenerator<Buffer> {
    try {
      yield* chunksOf(buf, 1024);
    } finally {
      returned = true;
    }
  }
  for await (const e of parseTar(input(), {
    capBytes: 1 << 30,
    tooLarge: () => new Error('cap'),
    wholeUpTo: -1,
    onInputError: () => undefined,
  })) {
    if (e.header.name === 'dir/a.txt') break;
  }
  await new Promise((r) => setImmediate(r));
  assert.ok(returned, 'the input was not stopped');
});

test('a large file left unread is skipped: the next entry is read right', async () => {
  const buf = await pack([
    [{ name: 'big' }, Buffer.alloc(200_000, 1)],
    [{ name: 'after' }, 'next'],
  ]);
  const names: string[] = [];
  let after = '';
  for await (const e of parseTar(chunksOf(buf, 3000), {
    capBytes: 1 << 30,
    tooLarge: () => new Error('cap'),
    wholeUpTo: 1024,
    onInputError: () => undefined,
  })) {
    names.push(e.header.name);
    if (e.header.name === 'big') {
      assert.is(e.content, null);
      for await (const c of e.stream) {
        void c;
        break; // reads one chunk only
      }
    } else after = e.content!.toString();
  }
  assert.equal(names, ['big', 'after']);
  assert.is(after, 'next');
});

test.run();
