import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Engine, TmpfsMount } from '../engine/engine.ts';

const run = promisify(execFile);

/** Where `images/tmpfs-size/build.sh` puts the helper, relative to the project root. */
export const TMPFS_SIZE_BUILD_OUTPUT = '.state/helpers/director-tmpfs-size';

/** What the warm pool asks to fit a claimed sandbox's `disk` limit. */
export interface TmpfsResizer {
  /** Resizes the container's writable tmpfs mounts to `mounts`' sizes and checks the kernel's mount table says so; throws otherwise. */
  resize(containerId: string, mounts: readonly TmpfsMount[]): Promise<void>;
}

/**
 * Resizes a running container's tmpfs mounts from the host: the static helper built from
 * `images/tmpfs-size/main.c` joins the container's mount namespace and remounts each path with
 * the new size and Director's flags (nosuid, nodev, noexec when execution is not allowed).
 * Afterwards the container's mount table (`/proc/PID/mountinfo`, read from the host) must show
 * exactly the size and flags a cold sandbox gets, or the resize counts as failed. Only with a
 * local engine (the container's processes are visible in this host's /proc) and a built helper:
 * {@link localTmpfsResizer} returns null otherwise and `disk` requests are created cold.
 */
export class HostTmpfsResizer implements TmpfsResizer {
  readonly #engine: Pick<Engine, 'inspectContainer' | 'hostPid'>;
  readonly #binary: string;

  constructor(engine: Pick<Engine, 'inspectContainer' | 'hostPid'>, binary: string) {
    this.#engine = engine;
    this.#binary = binary;
  }

  async resize(containerId: string, mounts: readonly TmpfsMount[]): Promise<void> {
    if (mounts.length === 0) return;
    const pid = (await this.#engine.hostPid?.(containerId)) ?? (await this.#engine.inspectContainer(containerId))?.pid;
    if (!pid) throw new Error(`container ${containerId} is not running`);
    const args = [String(pid), ...mounts.flatMap((m) => [m.path, String(m.sizeBytes), m.noexec ? '1' : '0'])];
    await run(this.#binary, args, { timeout: 10_000 });
    const problems = checkMountinfo(await readFile(`/proc/${pid}/mountinfo`, 'utf8'), mounts);
    if (problems.length) throw new Error(`tmpfs resize not in force: ${problems.join('; ')}`);
  }
}

/** Differences between a container's mount table and the tmpfs mounts it should have (empty: none). */
export function checkMountinfo(mountinfo: string, mounts: readonly TmpfsMount[]): string[] {
  const byPath = new Map<string, { opts: Set<string>; fstype: string; superOpts: Set<string> }>();
  for (const line of mountinfo.split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!pre || !post) continue;
    const f = pre.split(' ');
    // ID, parent, major:minor, root, mount point, mount options: a line short of them is not the kernel's.
    if (f.length < 6) continue;
    const [fstype, , superOpts] = post.split(' ');
    byPath.set(f[4]!, { opts: new Set(f[5]!.split(',')), fstype: fstype!, superOpts: new Set((superOpts ?? '').split(',')) });
  }
  const problems: string[] = [];
  for (const m of mounts) {
    const got = byPath.get(m.path);
    if (!got || got.fstype !== 'tmpfs') {
      problems.push(`${m.path} is not a tmpfs mount`);
      continue;
    }
    const want = ['nosuid', 'nodev', m.readOnly ? 'ro' : 'rw'];
    for (const o of want) if (!got.opts.has(o)) problems.push(`${m.path} lacks ${o}`);
    if (got.opts.has('noexec') !== m.noexec) problems.push(`${m.path} noexec=${got.opts.has('noexec')}, expected ${m.noexec}`);
    const kib = Math.ceil(m.sizeBytes / 4096) * 4;
    if (!got.superOpts.has(`size=${kib}k`)) problems.push(`${m.path} size is not ${kib}k`);
  }
  return problems;
}

/** A resizer for a local engine with the helper built under `root` (or at `binary`); null otherwise. */
export function localTmpfsResizer(
  engine: Pick<Engine, 'inspectContainer' | 'hostPid' | 'local'>,
  root: string,
  binary?: string,
): TmpfsResizer | null {
  const bin = binary ?? path.resolve(root, TMPFS_SIZE_BUILD_OUTPUT);
  if (engine.local !== true || process.getuid?.() !== 0 || !existsSync(bin)) return null;
  return new HostTmpfsResizer(engine, bin);
}
