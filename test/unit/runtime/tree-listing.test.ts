import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  ListingEnded,
  listingBytes,
  listingLines,
  MAX_LINE_BYTES,
  MAX_LISTING_BYTES,
  ParsedListings,
  parseListing,
  scanUpTo,
} from '../../../runtime/sandbox/tree-listing.ts';
import { UnsafeArchiveError } from '../../../runtime/sandbox/tar-guard.ts';

const ok = [
  'T 1700000100',
  '41ed 1 3 80 1700000000 1700000001 .',
  '41ed 2 2 60 1700000000 1700000002 ./src',
  '81a4 3 1 12 1700000003 1700000004 ./src/main file.js',
  'a1ff 4 1 11 1700000005 1700000005 ./src/link',
  '11a4 5 1 0 1700000006 1700000006 ./fifo',
  '81ed 6 2 0 1700000007 1700000007 ./exe',
];

function refuses(lines: string[], pattern: RegExp, code = 'UNSAFE_ARCHIVE') {
  try {
    parseListing(lines, 100);
  } catch (err) {
    assert.instance(err, UnsafeArchiveError);
    assert.is((err as UnsafeArchiveError).code, code);
    assert.match((err as Error).message, pattern);
    return;
  }
  assert.unreachable(`accepted ${JSON.stringify(lines)}`);
}

test('parses what the script prints: the time, then every entry with its kind, mode and stat identity', () => {
  const l = parseListing(ok, 100);
  assert.is(l.listedAtS, 1700000100);
  assert.equal(
    l.entries.map((e) => [e.path, e.kind, e.mode.toString(8)]),
    [
      ['', 'directory', '755'],
      ['src', 'directory', '755'],
      ['src/main file.js', 'file', '644'],
      ['src/link', 'symlink', '777'],
      ['fifo', 'fifo', '644'],
      ['exe', 'file', '755'],
    ],
  );
  assert.equal(l.entries[2], {
    path: 'src/main file.js',
    kind: 'file',
    mode: 0o644,
    ino: 3,
    nlink: 1,
    size: 12,
    mtimeS: 1700000003,
    ctimeS: 1700000004,
  });
});

test('a name with a line break (a forged line) is refused, not parsed as an entry', () => {
  refuses([...ok.slice(0, 3), '81a4 3 1 12 1700000003 1700000004 ./bad', 'name'], /malformed listing line/);
});

test('names with control characters, `..` or absolute paths are refused like tar names', () => {
  refuses([...ok.slice(0, 2), '81a4 9 1 1 1 1 ./a\u0007b'], /control character/);
  refuses([...ok.slice(0, 2), '81a4 9 1 1 1 1 ./../etc/passwd'], /parent-directory/);
  refuses([...ok.slice(0, 2), '81a4 9 1 1 1 1 /etc/passwd'], /malformed/);
});

test('an entry whose parent is not a directory listed before it, a path twice, or no root is refused', () => {
  refuses([...ok.slice(0, 2), '81a4 9 1 1 1 1 ./nodir/x'], /parent not listed/);
  refuses([...ok.slice(0, 4), '81a4 9 1 1 1 1 ./src/main file.js/x'], /parent not listed/);
  refuses([...ok.slice(0, 3), '41ed 2 2 60 1 1 ./src'], /listed twice/);
  refuses(['T 1', '41ed 2 2 60 1 1 ./src'], /does not start with the root/);
  refuses(['41ed 1 3 80 1 1 .'], /sandbox time/);
  refuses(['T 1', '81a4 1 3 80 1 1 .'], /not a directory/);
});

test('more entries than the cap is TOO_LARGE', () => {
  const many = ['T 1', '41ed 1 3 80 1 1 .', ...Array.from({ length: 100 }, (_, i) => `81a4 ${i + 2} 1 1 1 1 ./f${i}`)];
  refuses(many, /more than 100 entries/, 'TOO_LARGE');
});

/** Lines as the sandbox prints them: each ended by a line break. */
const bytesOf = (lines: readonly string[]) => Buffer.from(lines.map((l) => `${l}\n`).join(''));

/** `T <time>` and `n` listing lines: the root and `n - 1` files named with `tag`. */
const listing = (n: number, tag: string, time = 100) => [
  `T ${time}`,
  '41ed 1 2 40 1 1 .',
  ...Array.from({ length: n - 1 }, (_, i) => `81a4 ${i + 2} 1 3 1 1 ./${tag}${i}`),
];

test('a kept listing is matched on every line but the time: a later time gives the same frozen entries and its own listedAtS', () => {
  const kept = new ParsedListings();
  const a = kept.parse('k', bytesOf(listing(3, 'f', 100)), 100);
  const b = kept.parse('k', bytesOf(listing(3, 'f', 200)), 100);
  assert.ok(a.entries === b.entries);
  assert.ok(Object.isFrozen(a.entries) && Object.isFrozen(a.entries[1]));
  assert.equal([a.listedAtS, b.listedAtS], [100, 200]);
  // Another key parses for itself; one line different is parsed again.
  const other = kept.parse('other', bytesOf(listing(3, 'f', 100)), 100);
  assert.ok(other.entries !== a.entries);
  assert.equal(other.entries, a.entries);
  const c = kept.parse('k', bytesOf([...listing(2, 'f'), '81a4 9 1 3 1 1 ./g']), 100);
  assert.ok(c.entries !== b.entries);
  assert.is(c.entries[2]!.path, 'g');
  // A bad time line is refused whatever the rest.
  assert.throws(() => kept.parse('k', bytesOf(['X', ...listing(2, 'f').slice(1), '81a4 9 1 3 1 1 ./g']), 100), /sandbox time/);
  // The caller's cap holds for a kept listing as for a fresh one.
  assert.throws(() => kept.parse('k', bytesOf([...listing(2, 'f'), '81a4 9 1 3 1 1 ./g']), 2), /more than 2 entries/);
});

test('listingLines: the lines decoded each by itself, whatever the bytes (invalid UTF-8 included)', () => {
  const raw = [
    Buffer.from('T 1'),
    Buffer.from('81a4 2 1 3 1 1 ./caf\u00e9'),
    Buffer.from([0x38, 0x31, 0xc3, 0xff, 0xe2, 0x82]),
    Buffer.alloc(0),
    Buffer.from('x'),
  ];
  const body = Buffer.concat(raw.flatMap((b) => [b, Buffer.from('\n')]));
  assert.equal(
    listingLines(body),
    raw.map((b) => b.toString('utf8')),
  );
  assert.equal(listingLines(Buffer.alloc(0)), []);
});

test('a kept listing is compared by its bytes: one part of a larger buffer is kept as a copy, and a listing whose bytes differ is parsed again', () => {
  const kept = new ParsedListings();
  const lines = listing(3, 'f', 100);
  // What the sandbox sent after the listing shares its buffer: changing it later changes nothing kept.
  const chunk = Buffer.concat([bytesOf(lines), Buffer.from('tar data after the marker')]);
  const body = chunk.subarray(0, bytesOf(lines).length);
  const a = kept.parse('k', body, 100);
  chunk.fill(0x41);
  assert.ok(kept.parse('k', bytesOf(listing(3, 'f', 300)), 100).entries === a.entries);
  assert.ok(kept.bytes === listingBytes(bytesOf(lines), lines.length));
  // The same lines but one byte: a new parse (and then kept in its place).
  const other = kept.parse('k', bytesOf([...listing(2, 'f'), '81a4 4 1 3 1 1 ./F1']), 100);
  assert.ok(other.entries !== a.entries);
  assert.is(other.entries[2]!.path, 'F1');
  // No line break at all (nothing but a bad time line): refused, never matched.
  assert.throws(() => kept.parse('k', Buffer.from('T 5'), 100), /listing is empty/);
  assert.throws(() => kept.parse('k', Buffer.alloc(0), 100), /sandbox time/);
});

test('kept listings are bounded in bytes: one too large is not kept, a key parsed again and again is counted once, the least recently used go first', () => {
  const kept = new ParsedListings(256, 32 * 1024 * 1024);
  const small = kept.parse('small', bytesOf(listing(50, 'small')), 100_000);
  const smallBytes = listingBytes(bytesOf(listing(50, 'small')), 51);
  // 8 MiB is a quarter of the bound: some 34,000 lines of this length; 40,000 are more.
  const big = listing(40_000, 'big');
  assert.ok(
    kept.parse('big', bytesOf(big), 100_000).entries !== kept.parse('big', bytesOf(big), 100_000).entries,
    'too large: parsed each time',
  );
  assert.not.ok(Object.isFrozen(kept.parse('big', bytesOf(big), 100_000).entries));
  // One key's changing listings, twenty times: only the last is counted.
  let last: string[] = [];
  for (let i = 0; i < 20; i++) kept.parse('changing', bytesOf((last = listing(8000, `v${i}-`))), 100_000);
  assert.is(kept.bytes, smallBytes + listingBytes(bytesOf(last), last.length));
  assert.ok(kept.parse('small', bytesOf(listing(50, 'small')), 100_000).entries === small.entries, 'the small one was not pushed out');
  // Five keys of 7 MiB each are more than 32 MiB: the least recently parsed go first.
  const m4 = listing(29_000, 'm4-');
  let m4Entries: readonly unknown[] = [];
  for (let i = 0; i < 5; i++) m4Entries = kept.parse(`m${i}`, bytesOf(i === 4 ? m4 : listing(29_000, `m${i}-`)), 100_000).entries;
  assert.ok(kept.bytes <= 32 * 1024 * 1024 && kept.bytes > 24 * 1024 * 1024, `${kept.bytes} bytes kept`);
  assert.ok(kept.parse('small', bytesOf(listing(50, 'small')), 100_000).entries !== small.entries, 'the small one was pushed out');
  assert.ok(kept.parse('m4', bytesOf(m4), 100_000).entries === m4Entries, 'the last one stays');
  // And at most so many keys.
  const few = new ParsedListings(2);
  const a = few.parse('a', bytesOf(listing(2, 'a')), 10).entries;
  const b = few.parse('b', bytesOf(listing(2, 'b')), 10).entries;
  assert.ok(few.parse('a', bytesOf(listing(2, 'a')), 10).entries === a);
  few.parse('c', bytesOf(listing(2, 'c')), 10);
  assert.ok(few.parse('a', bytesOf(listing(2, 'a')), 10).entries === a, 'a, used since, stays');
  assert.ok(few.parse('b', bytesOf(listing(2, 'b')), 10).entries !== b, 'b, least recently used, went');
});

/** scanUpTo over `chunks` as the stream's reads; `rest` with the reads it left unread after it. */
const scan = async (chunks: Buffer[], marker: string, maxLines = 1000) => {
  const it = chunks[Symbol.iterator]();
  const { body, rest } = await scanUpTo(Buffer.alloc(0), () => Promise.resolve(it.next()), marker, maxLines);
  return { body, rest: Buffer.concat([rest, ...it]) };
};
const failure = (p: Promise<unknown>) =>
  p.then(
    () => null,
    (e: unknown) => e as Error & { code?: string },
  );

test('scanUpTo: the bytes before the marker line and what follows it, however the reads are cut (every split of the output, one byte at a time)', async () => {
  const marker = '--director-0123456789abcdef--';
  const listing = 'T 5\n41ed 1 2 40 5 5 .\n81a4 2 1 3 5 5 ./a\n';
  const out = Buffer.from(`${listing}${marker}\ntar data after it`);
  for (let cut = 0; cut <= out.length; cut++) {
    const { body, rest } = await scan([out.subarray(0, cut), out.subarray(cut)], marker);
    assert.is(body.toString(), listing, `cut at ${cut}`);
    assert.is(rest.toString(), 'tar data after it', `cut at ${cut}`);
  }
  const bytes = await scan(
    [...out].map((b) => Buffer.from([b])),
    marker,
  );
  assert.is(bytes.body.toString(), listing, 'one byte a read');
  // The marker as the first line: an empty listing (parsed and refused by the caller).
  assert.is((await scan([Buffer.from(`${marker}\n`)], marker)).body.length, 0);
  // A line that only starts or ends with the marker is a listing line.
  const near = await scan([Buffer.from(`${marker}x\nx${marker}\n${marker}\n`)], marker);
  assert.is(near.body.toString(), `${marker}x\nx${marker}\n`);
});

test('scanUpTo: bounded in lines, line length and bytes; an output that ends first is ListingEnded', async () => {
  const m = '--m--';
  const lines = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => `l${i}\n`).join('') + `${m}\n`);
  assert.is(listingLines((await scan([lines(10)], m, 10)).body).length, 10, 'exactly the cap');
  assert.match((await failure(scan([lines(11)], m, 10)))!.message, /more than 9 entries/);
  // A whole line too long inside one read, and one too long still unfinished.
  const long = Buffer.alloc(MAX_LINE_BYTES + 1, 0x61);
  assert.match((await failure(scan([Buffer.concat([long, Buffer.from(`\n${m}\n`)])], m)))!.message, /line too long/);
  assert.match((await failure(scan([long, Buffer.from(`\n${m}\n`)], m)))!.message, /line too long/);
  assert.ok(await scan([Buffer.concat([Buffer.alloc(MAX_LINE_BYTES, 0x61), Buffer.from(`\n${m}\n`)])], m), 'the longest line passes');
  // More bytes than a listing may take, in lines each short enough.
  const line = Buffer.from(`${'x'.repeat(4000)}\n`);
  const chunk = Buffer.concat(Array.from({ length: 256 }, () => line));
  const many = Array.from({ length: Math.ceil(MAX_LISTING_BYTES / chunk.length) + 1 }, () => chunk);
  const big = await failure(scan(many, m, 1_000_000));
  assert.is(big!.code, 'TOO_LARGE');
  assert.match(big!.message, /more than 67108864 bytes/);
  const ended = await failure(scan([Buffer.from('T 5\n41ed')], m));
  assert.ok(ended instanceof ListingEnded && !ended.empty);
  const nothing = await failure(scan([], m));
  assert.ok(nothing instanceof ListingEnded && nothing.empty, 'nothing at all printed');
});

test.run();
