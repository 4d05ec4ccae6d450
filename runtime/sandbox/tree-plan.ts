/**
 * What a restore must change in a mount to turn the tree the sandbox has now (its listing) into
 * the wanted one, as a pure function (unit-tested without a sandbox). The caller gathers the
 * current listing and the wanted entries, and says which current file or symlink is unchanged
 * since the wanted one was recorded (`keep`); everything else is staged and swapped in with
 * renames by `mount-sync.ts`.
 *
 * The plan works per directory: a directory present as a directory on both sides is kept in
 * place and compared child by child; any other child that differs is removed (moved aside) and/or
 * added (moved in from the staged tree) as a whole. Renames are batched per directory (one `mv`
 * each way), so the cost in processes follows the number of directories with changes; past
 * `maxDirtyDirs` of them the plan replaces whole top-level entries instead.
 */
import type { ListedEntry } from './tree-listing.ts';

/** An entry of the wanted tree. */
export interface WantedEntry {
  /** Relative to the mount; '' for its root. */
  path: string;
  kind: 'file' | 'directory' | 'symlink';
  mode: number;
}

/** Changes in one directory: names moved aside, then names moved in (a replaced name is in both). */
export interface DirChange {
  /** Relative to the mount; '' for its root. */
  dir: string;
  remove: string[];
  add: string[];
}

export interface RestorePlan<W extends WantedEntry = WantedEntry> {
  /** Children before their parents (any order is correct: the changed names are disjoint). */
  dirs: DirChange[];
  /** Directories kept in place whose permission bits change. */
  chmods: { dir: string; mode: number; old: number }[];
  /** Every wanted entry to send: the added names and everything under them, parents first. */
  stage: W[];
  /** Files and symlinks left in place because they are unchanged. */
  kept: number;
}

export interface PlanOptions<W extends WantedEntry> {
  current: readonly ListedEntry[];
  wanted: readonly W[];
  /** True when the current file or symlink is unchanged since `want` was recorded (same kind on both sides). */
  keep(current: ListedEntry, want: W): boolean;
  /** Paths never touched and never descended into (other mounts inside this one). */
  exclude?: ReadonlySet<string>;
  /** Past this many directories with changes, whole top-level entries are replaced. */
  maxDirtyDirs: number;
}

/** Directories are restored with at least owner rwx, so what they hold can be put back and later removed. */
export const dirMode = (mode: number): number => (mode & 0o777) | 0o700;

const join = (dir: string, name: string) => (dir ? `${dir}/${name}` : name);

function childrenOf<E extends { path: string }>(entries: readonly E[]): Map<string, Map<string, E>> {
  const out = new Map<string, Map<string, E>>();
  for (const e of entries) {
    if (e.path === '') continue;
    const slash = e.path.lastIndexOf('/');
    const dir = slash < 0 ? '' : e.path.slice(0, slash);
    let m = out.get(dir);
    if (!m) out.set(dir, (m = new Map<string, E>()));
    m.set(e.path.slice(slash + 1), e);
  }
  return out;
}

/** Computes the changes; both sides must hold their root ('' as a directory). */
export function planRestore<W extends WantedEntry>(o: PlanOptions<W>): RestorePlan<W> {
  const cur = childrenOf(o.current);
  const want = childrenOf(o.wanted);
  const exclude = o.exclude ?? new Set<string>();
  const dirs: DirChange[] = [];
  const chmods: RestorePlan['chmods'] = [];
  /** Top-level names with any change inside (for the coarse plan). */
  const dirtyTop = new Set<string>();
  let kept = 0;
  const top = (p: string) => p.split('/', 1)[0]!;

  const diff = (dir: string): void => {
    const c = cur.get(dir) ?? new Map<string, ListedEntry>();
    const w = want.get(dir) ?? new Map<string, W>();
    const names = [...new Set([...c.keys(), ...w.keys()])].sort();
    const remove: string[] = [];
    const add: string[] = [];
    for (const name of names) {
      const p = join(dir, name);
      if (exclude.has(p)) continue;
      const ce = c.get(name);
      const we = w.get(name);
      if (!we) remove.push(name);
      else if (!ce) add.push(name);
      else if (ce.kind === 'directory' && we.kind === 'directory') {
        diff(p);
        if (ce.mode !== dirMode(we.mode)) {
          chmods.push({ dir: p, mode: dirMode(we.mode), old: ce.mode });
          dirtyTop.add(top(p));
        }
      } else if (ce.kind === we.kind && o.keep(ce, we)) kept++;
      else {
        remove.push(name);
        add.push(name);
      }
    }
    if (remove.length || add.length) {
      dirs.push({ dir, remove, add });
      for (const n of new Set([...remove, ...add])) dirtyTop.add(top(join(dir, n)));
    }
  };
  diff('');
  const rootNow = o.current.find((e) => e.path === '');
  const rootWanted = o.wanted.find((e) => e.path === '');
  const rootChmod =
    rootNow && rootWanted && rootNow.mode !== dirMode(rootWanted.mode)
      ? [{ dir: '', mode: dirMode(rootWanted.mode), old: rootNow.mode }]
      : [];

  if (dirs.length > o.maxDirtyDirs) {
    // Coarse: every top-level name with a change inside is replaced whole.
    const c = cur.get('') ?? new Map<string, ListedEntry>();
    const w = want.get('') ?? new Map<string, W>();
    const names = [...dirtyTop].sort();
    const coarse: DirChange = { dir: '', remove: names.filter((n) => c.has(n)), add: names.filter((n) => w.has(n)) };
    const keptCoarse = countKept(o, cur, want, names);
    return { dirs: [coarse], chmods: rootChmod, stage: stageOf([coarse], want), kept: keptCoarse };
  }
  return { dirs, chmods: [...chmods, ...rootChmod], stage: stageOf(dirs, want), kept };
}

/** Files and symlinks kept by a coarse plan: those of the top-level names it leaves alone. */
function countKept<W extends WantedEntry>(
  o: PlanOptions<W>,
  cur: Map<string, Map<string, ListedEntry>>,
  want: Map<string, Map<string, W>>,
  replaced: readonly string[],
): number {
  const skip = new Set(replaced);
  let n = 0;
  const walk = (dir: string) => {
    const c = cur.get(dir);
    const w = want.get(dir);
    if (!c || !w) return;
    for (const [name, ce] of c) {
      const p = join(dir, name);
      const we = w.get(name);
      if (!we || (dir === '' && skip.has(name))) continue;
      if (ce.kind === 'directory' && we.kind === 'directory') walk(p);
      else if (ce.kind === we.kind && o.keep(ce, we)) n++;
    }
  };
  walk('');
  return n;
}

/** The wanted entries under every added name, parents first. */
function stageOf<W extends WantedEntry>(dirs: readonly DirChange[], want: Map<string, Map<string, W>>): W[] {
  const out: W[] = [];
  const walk = (e: W) => {
    out.push(e);
    if (e.kind !== 'directory') return;
    for (const name of [...(want.get(e.path)?.keys() ?? [])].sort()) walk(want.get(e.path)!.get(name)!);
  };
  for (const d of dirs) for (const name of d.add) walk(want.get(d.dir)!.get(name)!);
  return out;
}

/** A mount-relative path as the restore script addresses it: always starting with `.` (never taken for an option). */
export const scriptPath = (p: string): string => (p ? `./${p}` : '.');

/**
 * The plan as the restore script reads it: `D <dir>` then `R <name>` lines, then `A <name>`
 * lines, per changed directory; `E`; then `C <mode> <old mode> <dir>` per chmod (octal). Names
 * never hold a line break (the listing and the manifest refuse control characters).
 */
export function planText(plan: RestorePlan): string {
  const lines: string[] = [];
  for (const d of plan.dirs) {
    lines.push(`D ${scriptPath(d.dir)}`);
    for (const n of d.remove) lines.push(`R ${n}`);
    for (const n of d.add) lines.push(`A ${n}`);
  }
  lines.push('E');
  for (const c of plan.chmods) lines.push(`C ${c.mode.toString(8)} ${c.old.toString(8)} ${scriptPath(c.dir)}`);
  return `${lines.join('\n')}\n`;
}
