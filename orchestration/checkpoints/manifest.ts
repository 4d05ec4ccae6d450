/**
 * The manifest of one captured mount: every directory, file and symlink the sandbox had there
 * (path, type, permission bits, size, content digest or link target) and the `stat` identity
 * each file had when listed. Stored as a blob itself (JSON), so an unchanged mount's manifest is
 * the same blob as last time and costs nothing.
 *
 * **Which files are read again.** A file (or symlink) is taken over from the previous manifest
 * of the same sandbox and mount, without reading its content, when the listing shows it with
 * the same type, permission bits, size, inode, mtime and ctime as recorded, and the recorded
 * ctime is more than one second older than the listing that recorded it. The kernel sets ctime
 * on every change to a file (content, mode, rename, `utime`), and no unprivileged process can set
 * it back; the second of margin covers timestamps that have whole-second resolution in the
 * listing (busybox `stat`) and the coarse clock that stamps them. A file changed in the second
 * or so before a listing is therefore read again next time (like git's "racily clean" entries).
 *
 * **A mount listed exactly as last time** (every line but the time: MountSync hands the very same
 * parsed entries) whose previous manifest is `settled` (every file and symlink would pass the rule
 * above against itself, nothing vanished) is that manifest again: taken whole, no entry built, no
 * manifest stored (capture.ts). The same result as the rule applied entry by entry, without it.
 *
 * **What a hostile sandbox can fake.** The listing comes from inside the sandbox. A sandbox that
 * forges it (or, with a remote engine, its clock tool's output: with a local one the listing's time
 * is read on the host) can make a changed file look unchanged: that
 * checkpoint then holds the previous content of its own file, taken from its own previous
 * checkpoint. It can never make a checkpoint hold content it did not have: reuse only ever takes
 * an entry of the same sandbox's previous manifest.
 */
import type { ListedEntry } from '../../runtime/sandbox/tree-listing.ts';

export interface FileStat {
  ino: number;
  mtimeS: number;
  ctimeS: number;
}

export interface ManifestEntry {
  /** Relative to the mount; '' for its root. */
  path: string;
  type: 'file' | 'directory' | 'symlink';
  /** Permission bits as listed. */
  mode: number;
  /** Files: content bytes. */
  size?: number;
  /** Files: the blob's key (version 2: the workspace's `contentKey` of the content; version 1: its sha256). */
  digest?: string;
  /** Symlinks: the target, as text. */
  target?: string;
  mtimeS?: number;
  /** The identity the file had when its content was taken; absent when it changed while being read. */
  stat?: FileStat;
}

export interface SkippedEntry {
  path: string;
  /** `fifo`, `socket`, `device`, `unknown`, or `vanished` (gone or unreadable after the listing). */
  kind: string;
}

/**
 * What a mount held. When it lists the mount is kept beside it (`MountCapture.listedAtS`), not in
 * it, so an unchanged mount's manifest is the same blob as last time.
 */
export interface Manifest {
  /**
   * 2: digests are keys of the workspace (`contentKey`). 1: plain sha256, written before content
   * was kept per workspace; still read for restores, never taken over by a capture.
   */
  version: 1 | 2;
  /** In listing order: the root first, every directory before what it holds. */
  entries: ManifestEntry[];
  skipped: SkippedEntry[];
}

/** True when `cur` is unchanged since `rec` was recorded in a manifest listed at `listedAtS`. */
export function isUnchanged(cur: ListedEntry, rec: ManifestEntry, listedAtS: number): boolean {
  const st = rec.stat;
  if (!st || cur.kind !== rec.type || (cur.kind !== 'file' && cur.kind !== 'symlink')) return false;
  if (rec.type === 'file' && cur.size !== rec.size) return false;
  return (
    cur.mode === rec.mode &&
    cur.ino === st.ino &&
    cur.mtimeS === st.mtimeS &&
    cur.ctimeS === st.ctimeS &&
    // Racily clean: a change right after the listing may carry the same whole-second stamp.
    st.ctimeS + 1 < listedAtS
  );
}

export const statOf = (e: ListedEntry): FileStat => ({ ino: e.ino, mtimeS: e.mtimeS, ctimeS: e.ctimeS });

/**
 * True when every file and symlink of `m` (listed at `listedAtS`) would be taken over by the next
 * capture if the listing were the same (isUnchanged of each against itself: recorded identity,
 * not changed in the second before the listing) and nothing vanished while it was read. A
 * manifest made from a listing, captured again from the same listing, is then itself.
 */
export function settled(m: Manifest, listedAtS: number): boolean {
  return settledAt(lastChangeS(m), listedAtS);
}

/** {@link settled} from the manifest's {@link lastChangeS} (kept with it: ManifestFacts). */
export const settledAt = (lastChange: number, listedAtS: number): boolean => lastChange + 1 < listedAtS;

/**
 * The newest change time (ctime, seconds) of `m`'s files and symlinks: {@link settled} for every
 * listing time after the second that follows it. Infinity when one has no recorded identity (it
 * changed while it was read) or a file vanished; -Infinity with none.
 */
export function lastChangeS(m: Manifest): number {
  if (m.skipped.some((s) => s.kind === 'vanished')) return Infinity;
  let last = -Infinity;
  for (const e of m.entries) {
    if (e.type === 'directory') continue;
    if (!e.stat) return Infinity;
    if (e.stat.ctimeS > last) last = e.stat.ctimeS;
  }
  return last;
}

/** Parses a stored manifest, refusing anything this version did not write. */
export function parseManifest(buf: Buffer): Manifest {
  const m = JSON.parse(buf.toString('utf8')) as Manifest;
  if ((m?.version !== 1 && m?.version !== 2) || !Array.isArray(m.entries)) throw new Error('not a version 1 or 2 manifest');
  return m;
}

export interface MountSummary {
  files: number;
  directories: number;
  symlinks: number;
  bytes: number;
}

export function summarize(m: Manifest): MountSummary {
  const s: MountSummary = { files: 0, directories: 0, symlinks: 0, bytes: 0 };
  for (const e of m.entries) {
    if (e.type === 'file') {
      s.files++;
      s.bytes += e.size ?? 0;
    } else if (e.type === 'directory') {
      if (e.path !== '') s.directories++;
    } else s.symlinks++;
  }
  return s;
}
