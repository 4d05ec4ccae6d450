/**
 * Puts a checkpoint's files back into the session's sandboxes. Each captured sandbox is restored
 * in place when it still runs; a sandbox that stopped or was deleted is recreated from its
 * recorded spec (same image, limits, policy, mounts) and filled. Per mount the runtime's
 * `MountSync` stages the files inside the mount and swaps them in with renames, undoing the swap
 * if any step fails. When several mounts are restored, every swap is kept undoable until all of
 * them (and the rest of the restore) succeeded, so a failure leaves every sandbox as it was.
 * `inPlace` (workflow rollbacks) refuses to recreate: the sandbox must still run.
 */
import type { Logger } from 'pino';
import { conflict } from '../../core/errors.ts';
import type { Caller } from '../../runtime/sandbox/manager.ts';
import type { MountSync, SyncWanted } from '../../runtime/sandbox/mount-sync.ts';
import { planRestore } from '../../runtime/sandbox/tree-plan.ts';
import type { SandboxOwner, SandboxRecord, SandboxStore, StoredSpec } from '../../runtime/store/sandboxes.ts';
import { BatchedReader } from './batched-reader.ts';
import type { BlobStore } from './blobs.ts';
import { nestedIn } from './capture.ts';
import type { ManifestCache } from './manifest-cache.ts';
import { isUnchanged, type ManifestEntry } from './manifest.ts';
import type { CheckpointRecord, MountCapture, SandboxCapture } from './store.ts';

/** Makes a sandbox for a restore (defaults to the sandbox manager's create with the owner set). */
export type SandboxCreator = (caller: Caller, request: Record<string, unknown>, owner: SandboxOwner) => Promise<SandboxRecord>;

export interface RestoreFilesDeps {
  mounts: MountSync;
  blobs: BlobStore;
  /** Parsed manifests of recent checkpoints. */
  manifests: ManifestCache;
  sandboxes: SandboxStore;
  createSandbox: SandboxCreator;
  deleteSandbox(rec: SandboxRecord): Promise<void>;
  logger: Logger;
  maxEntries: number;
  timeoutMs: number;
}

export interface RestoredMount {
  path: string;
  /** Names put in place (files, symlinks and whole directories), removed, and files left as they were. */
  added: number;
  removed: number;
  kept: number;
}

export interface RestoredSandbox {
  /** The sandbox the checkpoint captured. */
  checkpointSandboxId: string;
  /** The sandbox its files are in now (a new one when it had to be recreated). */
  sandboxId: string;
  recreated: boolean;
  mounts: RestoredMount[];
  /** Environment variable names a recreated sandbox had and did not get back (values are never stored). */
  environmentNotRestored: string[];
}

/** Files at most this large are read whole (and read ahead); larger ones stream from their blob. */
const WHOLE_READ_BYTES = 256 * 1024;
/** Restores with more changed directories than this replace whole top-level entries instead. */
const MAX_DIRTY_DIRS = 32;

/** Label a recreated sandbox carries: the id of the sandbox it stands in for. */
export const RESTORED_FROM_LABEL = 'director.restored-from';

/** The create request that makes a sandbox with `spec` again, marked as standing in for `from`. */
export function requestOf(spec: StoredSpec, from: string): Record<string, unknown> {
  const labels = { ...spec.labels };
  if (Object.keys(labels).length < 32 || RESTORED_FROM_LABEL in labels) labels[RESTORED_FROM_LABEL] = from;
  return {
    name: spec.name,
    image: spec.image,
    ...(spec.command ? { command: spec.command } : {}),
    resourceLimits: { ...spec.resourceLimits },
    securityPolicy: { ...spec.securityPolicy },
    networkMode: spec.networkMode,
    ...(spec.workdir ? { workdir: spec.workdir } : {}),
    labels,
    ...(spec.profileId ? { profileId: spec.profileId } : {}),
  };
}

/** The newest running sandbox of the session that a restore recreated in place of `sandboxId`. */
function standInFor(store: SandboxStore, sessionId: string, sandboxId: string, workspace: string): SandboxRecord | null {
  const found = store
    .ofSession(sessionId)
    .filter((r) => r.status === 'running' && r.workspace === workspace && r.labels[RESTORED_FROM_LABEL] === sandboxId);
  return found.at(-1) ?? null;
}

interface Pending {
  rec: SandboxRecord;
  mount: string;
  stage: string;
}

/** A files restore that succeeded; `commit` drops what it replaced, `undo` puts it back. */
export interface FilesRestore {
  sandboxes: RestoredSandbox[];
  commit(): Promise<void>;
  undo(): Promise<void>;
}

export async function restoreFiles(
  d: RestoreFilesDeps,
  caller: Caller,
  ckp: CheckpointRecord,
  commitAtOnce: boolean,
  inPlace = false,
): Promise<FilesRestore> {
  const captured = ckp.files.filter((s) => s.mounts.length > 0);
  const total = captured.reduce((n, s) => n + s.mounts.length, 0);
  const inline = commitAtOnce && total === 1;
  const pending: Pending[] = [];
  const created: SandboxRecord[] = [];
  const out: RestoredSandbox[] = [];
  const undo = async () => {
    for (const p of pending.reverse()) {
      await d.mounts
        .finish(p.rec, p.mount, p.stage, 'undo', d.timeoutMs)
        .catch((err: unknown) => d.logger.error({ err, sandboxId: p.rec.id, mount: p.mount }, 'checkpoint restore: undo failed'));
    }
    pending.length = 0;
    for (const rec of created)
      await d
        .deleteSandbox(rec)
        .catch((err: unknown) => d.logger.error({ err, sandboxId: rec.id }, 'checkpoint restore: removing a recreated sandbox failed'));
  };
  try {
    for (const s of captured) {
      const now = d.sandboxes.byId(s.sandboxId);
      const same = now !== null && now.status === 'running' && now.workspace === caller.workspace;
      if (!same && inPlace)
        throw conflict(`sandbox ${s.sandboxId} is ${now?.status ?? 'deleted'}: its files can only be restored while it runs`, {
          sandboxId: s.sandboxId,
        });
      // A sandbox an earlier restore recreated in its place is restored again rather than made anew.
      const standIn = same ? null : standInFor(d.sandboxes, ckp.sessionId, s.sandboxId, caller.workspace);
      let rec: SandboxRecord;
      if (same) rec = now;
      else if (standIn) rec = standIn;
      else {
        rec = await d.createSandbox(caller, requestOf(s.spec, s.sandboxId), s.owner);
        created.push(rec);
      }
      const restored: RestoredSandbox = {
        checkpointSandboxId: s.sandboxId,
        sandboxId: rec.id,
        recreated: !same && !standIn,
        mounts: [],
        environmentNotRestored: same || standIn ? [] : s.spec.environmentKeys,
      };
      for (const m of s.mounts) restored.mounts.push(await restoreMount(d, s, rec, m, same, inline, pending));
      out.push(restored);
    }
  } catch (err) {
    await undo();
    throw err;
  }
  return {
    sandboxes: out,
    async commit() {
      for (const p of pending) {
        // The swap is done; leftovers of what it replaced are removed (a failure here only leaves a hidden directory).
        await d.mounts
          .finish(p.rec, p.mount, p.stage, 'commit', d.timeoutMs)
          .catch((err: unknown) => d.logger.warn({ err, sandboxId: p.rec.id, mount: p.mount }, 'checkpoint restore: cleanup failed'));
      }
      pending.length = 0;
    },
    undo,
  };
}

async function restoreMount(
  d: RestoreFilesDeps,
  s: SandboxCapture,
  rec: SandboxRecord,
  m: MountCapture,
  same: boolean,
  inline: boolean,
  pending: Pending[],
): Promise<RestoredMount> {
  const mount = m.path;
  const manifest = await d.manifests.get(m.manifest, (digest) => d.blobs.read(digest));
  type Wanted = SyncWanted & { entry: ManifestEntry };
  // Small contents are read in batches, in the order the plan sends them (known once it is made).
  let reader: BatchedReader | null = null;
  const position = new Map<Wanted, number>();
  const wanted: Wanted[] = [];
  for (const e of manifest.entries) {
    const w: Wanted = {
      path: e.path,
      kind: e.type,
      mode: e.mode,
      entry: e,
      ...(e.size !== undefined ? { size: e.size } : {}),
      ...(e.target !== undefined ? { target: e.target } : {}),
      ...(e.mtimeS !== undefined ? { mtimeS: e.mtimeS } : {}),
    };
    const digest = e.type === 'file' ? e.digest : undefined;
    if (digest) {
      const size = e.size ?? 0;
      w.content =
        size <= WHOLE_READ_BYTES
          ? () => {
              const i = position.get(w);
              return reader && i !== undefined ? reader.read(i) : d.blobs.read(digest);
            }
          : () => Promise.resolve(d.blobs.open(digest));
    }
    wanted.push(w);
  }
  const exclude = nestedIn(mount, s.spec.securityPolicy.allowedPaths);
  const r = await d.mounts.restore(rec, mount, {
    maxEntries: d.maxEntries,
    timeoutMs: d.timeoutMs,
    commit: inline,
    plan: (listing) => {
      const plan = planRestore({
        current: listing.entries,
        wanted,
        // Inodes and ctimes only mean something in the same sandbox: a recreated one gets everything.
        keep: (cur, want) => same && isUnchanged(cur, want.entry, m.listedAtS),
        exclude,
        maxDirtyDirs: MAX_DIRTY_DIRS,
      });
      const small = plan.stage.filter((w) => w.kind === 'file' && w.entry.digest && (w.size ?? 0) <= WHOLE_READ_BYTES);
      small.forEach((w, i) => position.set(w, i));
      reader = new BatchedReader(
        d.blobs,
        small.map((w) => ({ digest: w.entry.digest!, size: w.size ?? 0 })),
      );
      return plan;
    },
  });
  if (!inline) pending.push({ rec, mount, stage: r.stage });
  const sum = (k: 'add' | 'remove') => r.plan.dirs.reduce((n, x) => n + x[k].length, 0);
  return { path: mount, added: sum('add'), removed: sum('remove'), kept: r.plan.kept };
}
