import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { ListedEntry } from '../../../runtime/sandbox/tree-listing.ts';
import { planRestore, planText, type WantedEntry } from '../../../runtime/sandbox/tree-plan.ts';

type Kind = 'file' | 'directory' | 'symlink';
/** `dir/` is a directory, `name@` a symlink, anything else a file; `tag` marks identity (same tag = unchanged). */
function parse(spec: string[]): { path: string; kind: Kind; tag: string; mode: number }[] {
  return [
    { path: '', kind: 'directory', tag: '', mode: 0o755 },
    ...spec.map((s) => {
      const [p, tag = ''] = s.split('#');
      if (p!.endsWith('/')) return { path: p!.slice(0, -1), kind: 'directory' as const, tag, mode: 0o755 };
      if (p!.endsWith('@')) return { path: p!.slice(0, -1), kind: 'symlink' as const, tag, mode: 0o777 };
      return { path: p!, kind: 'file' as const, tag, mode: 0o644 };
    }),
  ];
}
const current = (spec: string[]): ListedEntry[] =>
  parse(spec).map(
    (e, i) => ({ path: e.path, kind: e.kind, mode: e.mode, ino: i, nlink: 1, size: 1, mtimeS: 0, ctimeS: 0, tag: e.tag }) as ListedEntry,
  );
const wanted = (spec: string[]): (WantedEntry & { tag: string })[] => parse(spec);
const keep = (c: ListedEntry, w: WantedEntry & { tag: string }) => (c as ListedEntry & { tag: string }).tag === w.tag && w.tag !== '';

function plan(cur: string[], want: string[], maxDirtyDirs = 32, exclude?: Set<string>) {
  return planRestore({ current: current(cur), wanted: wanted(want), keep, maxDirtyDirs, ...(exclude ? { exclude } : {}) });
}

test('unchanged files stay; changed ones are replaced; added ones go; deleted ones come back', () => {
  const p = plan(['a#1', 'b#1', 'c#new', 'd/', 'd/x#1'], ['a#1', 'b#2', 'd/', 'd/x#1', 'e#1']);
  assert.equal(p.dirs, [{ dir: '', remove: ['b', 'c'], add: ['b', 'e'] }]);
  assert.is(p.kept, 2);
  assert.equal(
    p.stage.map((w) => w.path),
    ['b', 'e'],
  );
  assert.equal(p.chmods, []);
});

test('directories on both sides are compared inside; children come before their parent', () => {
  const p = plan(['src/', 'src/lib/', 'src/lib/u#1', 'src/m#1', 'top#1'], ['src/', 'src/lib/', 'src/lib/u#2', 'src/m#1', 'top#9']);
  assert.equal(p.dirs, [
    { dir: 'src/lib', remove: ['u'], add: ['u'] },
    { dir: '', remove: ['top'], add: ['top'] },
  ]);
  assert.is(p.kept, 1);
});

test('a name that changed kind is replaced whole, with everything under the wanted one staged parents first', () => {
  const p = plan(['x#1', 'y/', 'y/z#1'], ['x/', 'x/in/', 'x/in/f#1', 'y#1']);
  assert.equal(p.dirs, [{ dir: '', remove: ['x', 'y'], add: ['x', 'y'] }]);
  assert.equal(
    p.stage.map((w) => w.path),
    ['x', 'x/in', 'x/in/f', 'y'],
  );
});

test('a symlink is kept only when `keep` says so; a directory whose mode differs is chmodded with owner rwx', () => {
  const cur = current(['l@#1', 'd/']);
  cur[2] = { ...cur[2]!, mode: 0o700 };
  const want = wanted(['l@#1', 'd/']);
  want[2]!.mode = 0o555;
  const p = planRestore({ current: cur, wanted: want, keep, maxDirtyDirs: 32 });
  assert.equal(p.dirs, []);
  assert.is(p.kept, 1);
  assert.equal(p.chmods, [{ dir: 'd', mode: 0o755, old: 0o700 }]);
});

test('excluded paths (other mounts) are never removed nor entered', () => {
  const p = plan(['cache/', 'cache/x#1', 'other#1'], ['a#1'], 32, new Set(['cache']));
  assert.equal(p.dirs, [{ dir: '', remove: ['other'], add: ['a'] }]);
});

test('past maxDirtyDirs, whole top-level entries with a change inside are replaced instead', () => {
  const cur = ['p/', ...['a', 'b', 'c'].flatMap((d) => [`p/${d}/`, `p/${d}/f#1`]), 'q/', 'q/f#1'];
  const want = ['p/', ...['a', 'b', 'c'].flatMap((d) => [`p/${d}/`, `p/${d}/f#2`]), 'q/', 'q/f#1'];
  assert.is(plan(cur, want).dirs.length, 3);
  const coarse = plan(cur, want, 2);
  assert.equal(coarse.dirs, [{ dir: '', remove: ['p'], add: ['p'] }]);
  assert.is(coarse.kept, 1);
  assert.equal(
    coarse.stage.map((w) => w.path),
    ['p', 'p/a', 'p/a/f', 'p/b', 'p/b/f', 'p/c', 'p/c/f'],
  );
});

test('the plan text: D, R then A per directory, E, then chmods; paths start with `.`', () => {
  const p = plan(['-rf#1', 'd/', 'd/x#1'], ['d/', 'd/x#2', 'n#1']);
  p.chmods.push({ dir: 'd', mode: 0o755, old: 0o700 });
  assert.is(planText(p), 'D ./d\nR x\nA x\nD .\nR -rf\nA n\nE\nC 755 700 ./d\n');
});

test.run();
