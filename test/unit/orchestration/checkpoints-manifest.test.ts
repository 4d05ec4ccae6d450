import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { isUnchanged, settled, type Manifest, type ManifestEntry } from '../../../orchestration/checkpoints/manifest.ts';
import type { ListedEntry } from '../../../runtime/sandbox/tree-listing.ts';

const rec: ManifestEntry = {
  path: 'f',
  type: 'file',
  mode: 0o644,
  size: 10,
  digest: 'x'.repeat(64),
  stat: { ino: 7, mtimeS: 100, ctimeS: 100 },
};
const cur: ListedEntry = { path: 'f', kind: 'file', mode: 0o644, ino: 7, nlink: 1, size: 10, mtimeS: 100, ctimeS: 100 };

test('a file listed with the recorded type, mode, size, inode, mtime and ctime is unchanged', () => {
  assert.ok(isUnchanged(cur, rec, 102));
});

test('any difference in size, inode, mtime, ctime, mode or type means it is read again', () => {
  for (const change of [{ size: 11 }, { ino: 8 }, { mtimeS: 99 }, { ctimeS: 101 }, { mode: 0o600 }, { kind: 'symlink' as const }]) {
    assert.not.ok(isUnchanged({ ...cur, ...change }, rec, 200), JSON.stringify(change));
  }
});

test('a file whose recorded ctime is within a second of the listing is racy: read again whatever it looks like', () => {
  assert.not.ok(isUnchanged(cur, rec, 100));
  assert.not.ok(isUnchanged(cur, rec, 101));
  assert.ok(isUnchanged(cur, rec, 102));
});

test('an entry recorded without a stat (it changed while read) is always read again', () => {
  const { stat: _stat, ...noStat } = rec;
  assert.not.ok(isUnchanged(cur, noStat, 1000));
});

test('symlinks follow the same rule (their size is their target length)', () => {
  const link: ManifestEntry = { path: 'l', type: 'symlink', mode: 0o777, target: '/etc/shadow', stat: { ino: 3, mtimeS: 5, ctimeS: 5 } };
  const now: ListedEntry = { path: 'l', kind: 'symlink', mode: 0o777, ino: 3, nlink: 1, size: 11, mtimeS: 5, ctimeS: 5 };
  assert.ok(isUnchanged(now, link, 50));
  assert.not.ok(isUnchanged({ ...now, ctimeS: 6 }, link, 50));
});

test('settled: a manifest whose every file and symlink would be taken over from the same listing, and from which nothing vanished', () => {
  const dir: ManifestEntry = { path: '', type: 'directory', mode: 0o755 };
  const link: ManifestEntry = { path: 'l', type: 'symlink', mode: 0o777, target: 'f', stat: { ino: 3, mtimeS: 90, ctimeS: 90 } };
  const m = (entries: ManifestEntry[], skipped: Manifest['skipped'] = []): Manifest => ({
    version: 2,
    entries: [dir, ...entries],
    skipped,
  });
  assert.ok(settled(m([rec, link]), 102));
  assert.ok(settled(m([rec], [{ path: 'p', kind: 'fifo' }]), 102), 'a fifo is skipped alike every time');
  assert.ok(settled(m([]), 0), 'directories alone');
  // The same rule as isUnchanged: a ctime within a second of the listing is racy.
  assert.is(settled(m([rec]), 101), isUnchanged(cur, rec, 101));
  assert.not.ok(settled(m([rec]), 101));
  assert.not.ok(settled(m([rec, { ...link, stat: { ino: 3, mtimeS: 90, ctimeS: 101 } }]), 102));
  assert.not.ok(settled(m([{ ...rec, stat: undefined }]), 102), 'a file that changed while read');
  assert.not.ok(settled(m([rec], [{ path: 'g', kind: 'vanished' }]), 102), 'a file gone after the listing');
});

test.run();
