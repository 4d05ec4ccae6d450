import { readFileSync, writeFileSync } from 'node:fs';
import type { LiveLimits } from '../engine.ts';

/** Where a running container's cgroups are on this host (a local engine), found from its init's /proc/PID/cgroup. */
export interface HostCgroups {
  pid: number;
  /** cgroup v1: controller → directory (`memory` → /sys/fs/cgroup/memory/docker/ID); empty on a pure v2 host. */
  v1: Record<string, string>;
  /** The unified (v2) directory, when the controllers live there. */
  v2: string | null;
}

/**
 * Parses /proc/PID/cgroup into the directories of the controllers Director changes. A line whose
 * path is not a plain absolute path below the root (relative, with `.`/`..` segments, as a process
 * in another cgroup namespace is shown, or the root itself) names no directory Director may
 * write limits into: it is skipped, so its controllers count as not found.
 */
export function parseCgroups(pid: number, text: string): HostCgroups {
  const v1: Record<string, string> = {};
  let v2: string | null = null;
  for (const line of text.split('\n')) {
    const m = /^(\d+):([^:]*):(.+)$/.exec(line);
    if (!m) continue;
    const [, , controllers, dir] = m;
    if (!/^(\/[^/]+)+$/.test(dir!) || dir!.split('/').some((seg) => seg === '.' || seg === '..')) continue;
    if (controllers === '') v2 = `/sys/fs/cgroup${dir}`;
    for (const c of controllers!.split(',')) if (['memory', 'cpu', 'pids'].includes(c)) v1[c] = `/sys/fs/cgroup/${controllers}${dir}`;
  }
  return { pid, v1, v2: Object.keys(v1).length ? null : v2 };
}

const CPU_PERIOD_US = 100_000;

/** How {@link writeLimits} reads and writes cgroup files (the real files unless a test watches the writes). */
export interface CgroupFiles {
  read(file: string): Promise<string>;
  write(file: string, value: string): Promise<void>;
}

/**
 * The host's cgroup files, read and written synchronously: a cgroup file is the kernel's, handled
 * in microseconds, while each promise-based file operation is three thread-pool round trips (open,
 * write, close); with 20 claims at once those queued on the pool's 4 threads, 55-85 ms a claim
 * measured. (A warm container uses a few MiB: lowering its memory limit reclaims nothing to wait for.)
 */
const hostFiles: CgroupFiles = {
  read: async (file) => readFileSync(file, 'utf8'),
  write: async (file, value) => writeFileSync(file, value),
};

/**
 * Writes `limits` into the container's cgroups directly, as the engine's own update does
 * (memory with swap equal to it, i.e. no swap; a CFS quota for the container's period; pids.max), without
 * a round trip through the engine. On cgroup v1 the memory limit and the memory+swap limit are
 * written in the order the kernel accepts (the first may never exceed the second).
 */
export async function writeLimits(cg: HostCgroups, limits: LiveLimits, files: CgroupFiles = hostFiles): Promise<void> {
  const w = (file: string, value: string | number) => files.write(file, String(value));
  if (cg.v2) {
    const d = cg.v2;
    await Promise.all([
      limits.memoryBytes !== undefined ? w(`${d}/memory.max`, limits.memoryBytes).then(() => w(`${d}/memory.swap.max`, 0)) : null,
      limits.nanoCpus !== undefined ? w(`${d}/cpu.max`, `${Math.round((limits.nanoCpus * CPU_PERIOD_US) / 1e9)} ${CPU_PERIOD_US}`) : null,
      limits.pidsLimit !== undefined ? w(`${d}/pids.max`, limits.pidsLimit) : null,
    ]);
    return;
  }
  const { memory, cpu, pids } = cg.v1;
  if ((limits.memoryBytes !== undefined && !memory) || (limits.nanoCpus !== undefined && !cpu) || (limits.pidsLimit !== undefined && !pids))
    throw new Error('a cgroup controller of the container was not found');
  const setMemory = async (bytes: number) => {
    const memsw = `${memory}/memory.memsw.limit_in_bytes`;
    // One read says both whether swap is accounted (the file exists) and the order: the memory
    // limit may never exceed memory+swap, so memory+swap goes first only when it must grow.
    const swapNow = await files.read(memsw).then(
      (text) => Number(text.trim()),
      () => null,
    );
    if (swapNow === null) return w(`${memory}/memory.limit_in_bytes`, bytes);
    if (bytes > swapNow) {
      await w(memsw, bytes);
      await w(`${memory}/memory.limit_in_bytes`, bytes);
    } else {
      await w(`${memory}/memory.limit_in_bytes`, bytes);
      await w(memsw, bytes);
    }
  };
  await Promise.all([
    limits.memoryBytes !== undefined ? setMemory(limits.memoryBytes) : null,
    limits.nanoCpus !== undefined
      ? files
          .read(`${cpu}/cpu.cfs_period_us`)
          .then((period) => w(`${cpu}/cpu.cfs_quota_us`, Math.round((limits.nanoCpus! * Number(period.trim())) / 1e9)))
      : null,
    limits.pidsLimit !== undefined ? w(`${pids}/pids.max`, limits.pidsLimit) : null,
  ]);
}
