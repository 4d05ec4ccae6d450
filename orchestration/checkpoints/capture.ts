/**
 * Reads the files of a session's sandboxes into the blob store: each running sandbox's writable
 * mounts (its `allowedPaths`; `/tmp` is scratch and left out), one exec per mount through the
 * runtime's `MountSync`. Files unchanged since the same sandbox's previous checkpoint are taken
 * over without being read (see `manifest.ts`); the others are read through the tar guard and
 * stored by content.
 */
import { DirectorError } from '../../core/errors.ts';
import type { MountSync } from '../../runtime/sandbox/mount-sync.ts';
import type { TreeEntry } from '../../runtime/sandbox/tar-guard.ts';
import type { ListedEntry } from '../../runtime/sandbox/tree-listing.ts';
import type { SandboxRecord } from '../../runtime/store/sandboxes.ts';
import { SMALL_BYTES, type BlobBatch, type BlobStore } from './blobs.ts';
import type { ManifestCache } from './manifest-cache.ts';
import {
  isUnchanged,
  settledAt,
  statOf,
  summarize,
  type Manifest,
  type ManifestEntry,
  type MountSummary,
  type SkippedEntry,
} from './manifest.ts';
import type { CheckpointStore, MountCapture, SandboxCapture } from './store.ts';

export interface CaptureDeps {
  mounts: MountSync;
  blobs: BlobStore;
  /** Parsed manifests of recent captures (the previous one of a mount is read from here). */
  manifests: ManifestCache;
  store: CheckpointStore;
  maxEntries: number;
  timeoutMs: number;
}

/** The byte budget of one checkpoint (DIRECTOR_CHECKPOINT_MAX_BYTES), shared by its mounts. */
export interface Budget {
  maxBytes: number;
  used: number;
}

export const tooLarge = (max: number, detail: string): DirectorError =>
  new DirectorError(
    'PAYLOAD_TOO_LARGE',
    `the session's files exceed the checkpoint size limit of ${max} bytes (DIRECTOR_CHECKPOINT_MAX_BYTES): ${detail}; nothing was stored`,
    { limit: max, setting: 'DIRECTOR_CHECKPOINT_MAX_BYTES' },
  );

/** The writable mounts of a sandbox that a checkpoint captures. */
export const mountsOf = (rec: SandboxRecord): string[] =>
  rec.spec.securityPolicy.allowFilesystem ? [...rec.spec.securityPolicy.allowedPaths].sort() : [];

/** Other mounts of the sandbox inside `mount`, relative to it (never captured or touched as part of it). */
export function nestedIn(mount: string, all: readonly string[]): Set<string> {
  return new Set(all.filter((m) => m.startsWith(`${mount}/`)).map((m) => m.slice(mount.length + 1)));
}

export async function captureSandbox(
  d: CaptureDeps,
  sessionId: string,
  rec: SandboxRecord,
  batch: BlobBatch,
  budget: Budget,
): Promise<SandboxCapture> {
  const base = { sandboxId: rec.id, name: rec.name, image: rec.image, status: rec.status, spec: rec.spec, owner: rec.owner };
  // A stopped sandbox's tmpfs mounts went with its container: there is nothing to read.
  if (rec.status !== 'running') return { ...base, mounts: [] };
  const all = mountsOf(rec);
  const mounts: MountCapture[] = [];
  for (const mount of all) mounts.push(await captureMount(d, sessionId, rec, mount, nestedIn(mount, all), batch, budget));
  return { ...base, mounts };
}

async function previous(d: CaptureDeps, sessionId: string, sandboxId: string, mount: string) {
  const last = d.store.latestCapture(sessionId, sandboxId, mount);
  if (!last) return null;
  try {
    return {
      checkpointId: last.checkpointId,
      listedAtS: last.capture.listedAtS,
      digest: last.capture.manifest,
      manifest: await d.manifests.get(last.capture.manifest, (digest) => d.blobs.read(digest)),
    };
  } catch {
    return null;
  }
}

async function captureMount(
  d: CaptureDeps,
  sessionId: string,
  rec: SandboxRecord,
  mount: string,
  exclude: ReadonlySet<string>,
  batch: BlobBatch,
  budget: Budget,
): Promise<MountCapture> {
  const prev = await previous(d, sessionId, rec.id, mount);
  const newBefore = batch.newBytes;
  const entries: ManifestEntry[] = [];
  const byPath = new Map<string, ManifestEntry>();
  const skipped: SkippedEntry[] = [];
  let listedAtS = 0;
  let mountBytes = 0;
  let filesRead = 0;
  let listed: readonly ListedEntry[] = [];
  /** The previous manifest, taken whole (see below). */
  let same = null as { digest: string; manifest: Manifest; summary: Readonly<MountSummary> } | null;

  const select = (listing: { listedAtS: number; entries: readonly ListedEntry[] }) => {
    listedAtS = listing.listedAtS;
    listed = listing.entries;
    // Reuse only while the previous checkpoint exists: checked and pinned in this one synchronous
    // step. Not from a version 1 manifest: its blobs are keyed by content alone, shared across
    // workspaces (taking them over would keep them shared): its files are read once more.
    const usable = prev !== null && prev.manifest.version === 2 && d.store.exists(prev.checkpointId);
    // The very listing the previous manifest was made from (the same lines from the same
    // container's mount: MountSync hands the same entries; the same sandbox, so the same nested
    // mounts left out), none of its files changed in the second before it: every entry would be
    // taken over as it is, so the manifest is the previous one (no entry built, nothing stored).
    // (Over the budget it goes the per-entry way, which refuses it naming its largest file.)
    // (What it asks of the previous manifest was computed when it was kept: see ManifestFacts.)
    const facts = usable && d.manifests.listedFrom(prev.digest) === listing.entries ? d.manifests.facts(prev.digest) : null;
    if (usable && facts && settledAt(facts.lastChangeS, prev.listedAtS) && budget.used + facts.summary.bytes <= budget.maxBytes) {
      batch.reuseReferencedGroup(facts.fileDigests);
      batch.reuseReferenced(prev.digest);
      same = { digest: prev.digest, manifest: prev.manifest, summary: facts.summary };
      return { paths: [], maxBytes: 0 };
    }
    const old = usable ? new Map(prev.manifest.entries.map((e) => [e.path, e])) : null;
    const paths: string[] = [];
    let reusedBytes = 0;
    let largest: ListedEntry | null = null;
    for (const e of listing.entries) {
      if (exclude.has(e.path)) continue;
      let m: ManifestEntry;
      if (e.kind === 'directory') m = { path: e.path, type: 'directory', mode: e.mode };
      else if (e.kind === 'file' || e.kind === 'symlink') {
        const p = old?.get(e.path);
        // `old` is set only while the previous checkpoint exists (checked above, in this same step): its blobs are present.
        if (p && prev && isUnchanged(e, p, prev.listedAtS)) {
          if (p.type === 'file') batch.reuseReferenced(p.digest!);
          m = { ...p, stat: statOf(e) };
          reusedBytes += p.size ?? 0;
        } else {
          m = {
            path: e.path,
            type: e.kind,
            mode: e.mode,
            mtimeS: e.mtimeS,
            stat: statOf(e),
            ...(e.kind === 'file' ? { size: e.size } : {}),
          };
          paths.push(e.path);
        }
        if (e.kind === 'file') {
          mountBytes += e.size;
          if (!largest || e.size > largest.size) largest = e;
        }
      } else {
        skipped.push({ path: e.path, kind: e.kind });
        continue;
      }
      entries.push(m);
      byPath.set(m.path, m);
    }
    // Refused from the listing's sizes, before any content is read (a sparse file can claim any size).
    if (budget.used + mountBytes > budget.maxBytes) {
      const big = largest ? ` (its largest file, ${JSON.stringify(largest.path.slice(0, 200))}, holds ${largest.size} bytes)` : '';
      throw tooLarge(budget.maxBytes, `${mount} of ${rec.id} holds ${mountBytes} bytes${big}, ${budget.used} bytes captured before it`);
    }
    return { paths, maxBytes: budget.maxBytes - budget.used - reusedBytes };
  };

  const onEntry = async (e: TreeEntry) => {
    const m = byPath.get(e.path)!;
    if (e.type === 'symlink') m.target = e.linkname!;
    else if (e.type === 'hardlink') {
      const t = byPath.get(e.linkname!)!;
      if (t.size !== m.size) delete m.stat;
      m.digest = t.digest!;
      m.size = t.size!;
    } else {
      if (e.size !== m.size) {
        // Changed between the listing and the read: keep what was read, and read it again next time.
        mountBytes += e.size - (m.size ?? 0);
        delete m.stat;
      }
      m.size = e.size;
      m.mtimeS = Math.floor(e.mtime.getTime() / 1000);
      m.digest = e.content ? batch.putSmall(e.content) : await batch.putStream(e.stream, e.size);
      filesRead++;
    }
  };

  let missing: string[];
  try {
    ({ missing } = await d.mounts.capture(rec, mount, {
      maxEntries: d.maxEntries,
      timeoutMs: d.timeoutMs,
      select,
      onEntry,
      // Nothing to take over and nothing left out: every file is read, so the reader need not wait for the list.
      readAll: prev === null && exclude.size === 0,
      // Small files come whole: no stream each.
      wholeUpTo: SMALL_BYTES,
    }));
  } catch (err) {
    if (err instanceof DirectorError && err.code === 'PAYLOAD_TOO_LARGE' && err.details?.setting === undefined)
      throw tooLarge(budget.maxBytes, `${mount} of ${rec.id}: ${err.message}`);
    throw err;
  }
  if (same) {
    budget.used += same.summary.bytes;
    return {
      path: mount,
      manifest: same.digest,
      listedAtS,
      ...same.summary,
      newBytes: 0,
      filesRead: 0,
      skipped: same.manifest.skipped.length,
    };
  }
  const gone = new Set(missing);
  for (const p of missing) skipped.push({ path: p, kind: 'vanished' });
  const manifest: Manifest = {
    version: 2,
    entries: gone.size ? entries.filter((e) => !gone.has(e.path)) : entries,
    skipped,
  };
  const newBytes = batch.newBytes - newBefore;
  const stored = Buffer.from(JSON.stringify(manifest));
  const digest = await batch.putBuffer(stored);
  // The next capture of this mount starts from it (kept whether or not this checkpoint commits: it is keyed by content).
  // With the listing it was made from when MountSync kept that (frozen): only a kept listing can come again as the same array.
  d.manifests.put(digest, manifest, stored.length, Object.isFrozen(listed) ? listed : null);
  const summary = d.manifests.facts(digest)?.summary ?? summarize(manifest);
  budget.used += summary.bytes;
  return { path: mount, manifest: digest, listedAtS, ...summary, newBytes, filesRead, skipped: skipped.length };
}
