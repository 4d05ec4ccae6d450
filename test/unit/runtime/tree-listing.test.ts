import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseListing } from '../../../runtime/sandbox/tree-listing.ts';
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

test.run();
