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
import { parseTar, TarFormatError } from '../../../runtime/sandbox/tar-parse.ts';

interface Seen {
  entries: { name: string; type: string | null; size: number; mode: number; mtime: number; linkname: string | null; content: string }[];
  error: boolean;
}

async function pack(entries: [Partial<tarStream.Header> & { name: string }, (string | Buffer)?][]): Promise<Buffer> {
  const p = tarStream.pack();
  for (const [h, body] of entries) {
    if (body === undefined) p.entry(h).end(null);
    else p.entry(h, body);
  }
  p.finalize();
  const out: Buffer[] = [];
  for await (const c of p) out.push(c as Buffer);
  return Buffer.concat(out);
}

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
  b.fill(32, 148, 156);
  let sum = 0;
  for (const x of b) sum += x;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
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
    seen.error = true;
  }
  return seen;
}

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
  }
});

test('seeded random corruptions: the same entries and the same refusals as tar-stream', async () => {
  const c = await corpus();
  let seed = 42;
  const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  let refused = 0;
  let compared = 0;
  for (let i = 0; i < 400; i++) {
    const names = Object.keys(c);
    const src = c[names[i % names.length]!]!;
    const buf = Buffer.from(src);
    // Header fields are where a parser can go wrong: corrupt mostly the first blocks' headers.
    const at = Math.floor(rand() * Math.min(buf.length, 2048));
    buf[at] = Math.floor(rand() * 256);
    const want = await viaTarStream(buf, 333);
    // tar-stream reads a size field it cannot decode as null and goes on in ways of its own: not comparable.
    if (want.entries.some((e) => typeof e.size !== 'number' || Number.isNaN(e.size))) continue;
    const got = await viaParser(buf, 333, i % 2 ? 1024 : -1);
    if (want.error && got.error) {
      // Both refuse; what each read before its refusal may differ only in where the error is noticed.
      refused++;
      continue;
    }
    assert.equal(got, want, `corruption ${i} at byte ${at} of ${names[i % names.length]}`);
    compared++;
  }
  assert.ok(refused > 20 && compared > 20, `refused ${refused}, compared ${compared}`);
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
