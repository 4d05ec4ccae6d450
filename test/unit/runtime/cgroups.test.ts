/**
 * Where a container's cgroups are (parsed from /proc/PID/cgroup) and how its limits are written into
 * them directly: the exact values, and on cgroup v1 the write order the kernel accepts (the memory
 * limit may never exceed the memory+swap limit, so a growing limit raises memory+swap first and a
 * shrinking one lowers memory first). The v1 files live in a temporary directory laid out like the
 * controllers; a wrapper refuses writes as the kernel does and records their order.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parseCgroups, writeLimits, type CgroupFiles, type HostCgroups } from '../../../runtime/engine/docker/cgroups.ts';

const ID = '3f4e9c1b2a7d';
const MIB = 1024 * 1024;

const parse = suite('parseCgroups');

parse('cgroup v1 (cgroupfs driver): memory, cpu (mounted with cpuacct) and pids directories; no unified one', () => {
  const text = [
    `12:pids:/docker/${ID}`,
    `11:hugetlb:/docker/${ID}`,
    `10:net_cls,net_prio:/docker/${ID}`,
    `9:cpuset:/docker/${ID}`,
    `8:memory:/docker/${ID}`,
    `4:devices:/docker/${ID}`,
    `3:cpu,cpuacct:/docker/${ID}`,
    '2:rdma:/',
    `1:name=systemd:/docker/${ID}`,
    '',
  ].join('\n');
  assert.equal(parseCgroups(42, text), {
    pid: 42,
    v1: {
      memory: `/sys/fs/cgroup/memory/docker/${ID}`,
      cpu: `/sys/fs/cgroup/cpu,cpuacct/docker/${ID}`,
      pids: `/sys/fs/cgroup/pids/docker/${ID}`,
    },
    v2: null,
  });
});

parse('cgroup v2 (systemd driver): the unified directory only', () => {
  assert.equal(parseCgroups(7, `0::/system.slice/docker-${ID}.scope\n`), {
    pid: 7,
    v1: {},
    v2: `/sys/fs/cgroup/system.slice/docker-${ID}.scope`,
  });
});

parse('hybrid host (v1 controllers plus an empty unified hierarchy): the v1 directories win, v2 is not used', () => {
  const text = [`8:pids:/docker/${ID}`, `5:memory:/docker/${ID}`, `3:cpu:/docker/${ID}`, '2:cpuacct:/', `0::/docker/${ID}`].join('\n');
  const cg = parseCgroups(9, text);
  assert.equal(cg.v1, {
    memory: `/sys/fs/cgroup/memory/docker/${ID}`,
    cpu: `/sys/fs/cgroup/cpu/docker/${ID}`,
    pids: `/sys/fs/cgroup/pids/docker/${ID}`,
  });
  assert.is(cg.v2, null);
});

parse('odd lines are ignored: blank, without fields, a non-numeric hierarchy id; a colon inside the path is kept', () => {
  const text = ['', 'garbage', 'x:memory:/docker/a', '8:memory', `8:memory:/docker/${ID}:extra`, `12:pids:/docker/${ID}`, '   '].join('\n');
  assert.equal(parseCgroups(1, text).v1, {
    memory: `/sys/fs/cgroup/memory/docker/${ID}:extra`,
    pids: `/sys/fs/cgroup/pids/docker/${ID}`,
  });
  assert.equal(parseCgroups(1, ''), { pid: 1, v1: {}, v2: null });
});

parse('hostile or foreign paths name no directory: `..` segments, relative paths and the root are skipped', () => {
  // A process in another cgroup namespace shows as /../..; a path out of the hierarchy must never be written into.
  const v1 = ['8:memory:/docker/../../../etc', '3:cpu,cpuacct:docker/relative', '12:pids:/', `4:memory:/docker/./${ID}`].join('\n');
  assert.equal(parseCgroups(5, v1).v1, {});
  assert.is(parseCgroups(5, `0::/../../docker-${ID}.scope`).v2, null);
  assert.is(parseCgroups(5, '0::/').v2, null);
  assert.is(parseCgroups(5, '0::/a//b').v2, null);
  // One bad line does not hide the good ones.
  assert.equal(parseCgroups(5, `8:memory:/x/../y\n12:pids:/docker/${ID}`).v1, { pids: `/sys/fs/cgroup/pids/docker/${ID}` });
});

parse.run();

const v1 = suite('writeLimits on cgroup v1');
let root = '';

/** Lays out memory, cpu,cpuacct and pids controller directories like the host's, with a container's current limits. */
async function layout(opts: { memoryBytes: number; swap?: boolean; swapBytes?: number; periodUs?: number }): Promise<HostCgroups> {
  root = await mkdtemp(path.join(tmpdir(), 'director-cg-'));
  const dirs = { memory: `${root}/memory/docker/${ID}`, cpu: `${root}/cpu,cpuacct/docker/${ID}`, pids: `${root}/pids/docker/${ID}` };
  for (const d of Object.values(dirs)) await mkdir(d, { recursive: true });
  await writeFile(`${dirs.memory}/memory.limit_in_bytes`, `${opts.memoryBytes}\n`);
  if (opts.swap !== false) await writeFile(`${dirs.memory}/memory.memsw.limit_in_bytes`, `${opts.swapBytes ?? opts.memoryBytes}\n`);
  await writeFile(`${dirs.cpu}/cpu.cfs_period_us`, `${opts.periodUs ?? 100_000}\n`);
  await writeFile(`${dirs.cpu}/cpu.cfs_quota_us`, '-1\n');
  await writeFile(`${dirs.pids}/pids.max`, 'max\n');
  return { pid: 1, v1: dirs, v2: null };
}

/** The temporary files, refusing writes the kernel refuses (memory above memory+swap) and recording reads and writes. */
function kernelLike() {
  const writes: [string, string][] = [];
  const reads: string[] = [];
  const num = (f: string) => readFile(f, 'utf8').then((t) => Number(t.trim()));
  const files: CgroupFiles = {
    read: (f) => {
      reads.push(path.basename(f));
      return readFile(f, 'utf8');
    },
    write: async (f, value) => {
      const dir = path.dirname(f);
      const name = path.basename(f);
      const memsw = `${dir}/memory.memsw.limit_in_bytes`;
      if (name === 'memory.limit_in_bytes' && (await num(memsw).catch(() => Infinity)) < Number(value))
        throw Object.assign(new Error(`EINVAL: memory ${value} above memory+swap`), { code: 'EINVAL' });
      if (name === 'memory.memsw.limit_in_bytes' && (await num(`${dir}/memory.limit_in_bytes`)) > Number(value))
        throw Object.assign(new Error(`EINVAL: memory+swap ${value} below memory`), { code: 'EINVAL' });
      writes.push([name, value]);
      await writeFile(f, value);
    },
  };
  return { files, writes, reads };
}

const content = async (file: string) => (await readFile(file, 'utf8')).trim();

v1.after.each(async () => {
  await rm(root, { recursive: true, force: true });
});

v1('growing memory raises memory+swap first, then memory, both to the new limit (no swap)', async () => {
  const cg = await layout({ memoryBytes: 256 * MIB });
  const k = kernelLike();
  await writeLimits(cg, { memoryBytes: 512 * MIB }, k.files);
  assert.equal(k.writes, [
    ['memory.memsw.limit_in_bytes', String(512 * MIB)],
    ['memory.limit_in_bytes', String(512 * MIB)],
  ]);
  assert.is(await content(`${cg.v1.memory}/memory.limit_in_bytes`), String(512 * MIB));
  assert.is(await content(`${cg.v1.memory}/memory.memsw.limit_in_bytes`), String(512 * MIB));
});

v1('shrinking memory lowers memory first, then memory+swap', async () => {
  const cg = await layout({ memoryBytes: 512 * MIB });
  const k = kernelLike();
  await writeLimits(cg, { memoryBytes: 128 * MIB }, k.files);
  assert.equal(k.writes, [
    ['memory.limit_in_bytes', String(128 * MIB)],
    ['memory.memsw.limit_in_bytes', String(128 * MIB)],
  ]);
  assert.is(await content(`${cg.v1.memory}/memory.memsw.limit_in_bytes`), String(128 * MIB));
});

v1('unchanged, or with memory+swap above memory (a container made with swap): accepted, both end at the limit', async () => {
  for (const [memoryBytes, swapBytes, to] of [
    [256 * MIB, 256 * MIB, 256 * MIB],
    [256 * MIB, 1024 * MIB, 512 * MIB],
    [256 * MIB, 1024 * MIB, 2048 * MIB],
  ] as const) {
    const cg = await layout({ memoryBytes, swapBytes });
    await writeLimits(cg, { memoryBytes: to }, kernelLike().files);
    assert.is(await content(`${cg.v1.memory}/memory.limit_in_bytes`), String(to));
    assert.is(await content(`${cg.v1.memory}/memory.memsw.limit_in_bytes`), String(to));
    await rm(root, { recursive: true, force: true });
  }
});

v1('a memory fit reads one file (memory+swap), not the memory limit as well', async () => {
  const cg = await layout({ memoryBytes: 256 * MIB });
  const k = kernelLike();
  await writeLimits(cg, { memoryBytes: 300 * MIB }, k.files);
  assert.equal(k.reads, ['memory.memsw.limit_in_bytes']);
});

v1('without swap accounting (no memsw file) only the memory limit is written', async () => {
  const cg = await layout({ memoryBytes: 256 * MIB, swap: false });
  const k = kernelLike();
  await writeLimits(cg, { memoryBytes: 64 * MIB }, k.files);
  assert.equal(k.writes, [['memory.limit_in_bytes', String(64 * MIB)]]);
});

v1('cpu becomes a CFS quota for the container’s own period; pids.max the exact count', async () => {
  const cg = await layout({ memoryBytes: 256 * MIB });
  const k = kernelLike();
  await writeLimits(cg, { nanoCpus: 0.5e9, pidsLimit: 64 }, k.files);
  assert.equal(
    k.writes.sort(([a], [b]) => a.localeCompare(b)),
    [
      ['cpu.cfs_quota_us', '50000'],
      ['pids.max', '64'],
    ],
  );
  await rm(root, { recursive: true, force: true });
  const odd = await layout({ memoryBytes: 256 * MIB, periodUs: 50_000 });
  await writeLimits(odd, { nanoCpus: 1.5e9 });
  assert.is(await content(`${odd.v1.cpu}/cpu.cfs_quota_us`), '75000');
  // Untouched limits stay as they were.
  assert.is(await content(`${odd.v1.pids}/pids.max`), 'max');
  assert.is(await content(`${odd.v1.memory}/memory.limit_in_bytes`), String(256 * MIB));
});

v1('all three at once through the real files: each lands with its exact value', async () => {
  const cg = await layout({ memoryBytes: 256 * MIB });
  await writeLimits(cg, { memoryBytes: 1024 * MIB, nanoCpus: 2e9, pidsLimit: 100 });
  assert.is(await content(`${cg.v1.memory}/memory.limit_in_bytes`), String(1024 * MIB));
  assert.is(await content(`${cg.v1.memory}/memory.memsw.limit_in_bytes`), String(1024 * MIB));
  assert.is(await content(`${cg.v1.cpu}/cpu.cfs_quota_us`), '200000');
  assert.is(await content(`${cg.v1.pids}/pids.max`), '100');
});

v1('a limit whose controller was not found is refused before anything is written', async () => {
  const cg = await layout({ memoryBytes: 256 * MIB });
  const k = kernelLike();
  const { pids: _gone, ...rest } = cg.v1;
  const err = await writeLimits({ ...cg, v1: rest }, { memoryBytes: 512 * MIB, pidsLimit: 10 }, k.files).catch((e: unknown) => e as Error);
  assert.match(String(err), /controller of the container was not found/);
  assert.equal(k.writes, []);
});

v1.run();

const v2 = suite('writeLimits on cgroup v2');
v2('memory.max with memory.swap.max 0, cpu.max as quota and period, pids.max', async () => {
  root = await mkdtemp(path.join(tmpdir(), 'director-cg-'));
  const writes: [string, string][] = [];
  const files: CgroupFiles = {
    read: (f) => readFile(f, 'utf8'),
    write: async (f, value) => {
      writes.push([path.basename(f), value]);
      await writeFile(f, value);
    },
  };
  await writeLimits({ pid: 1, v1: {}, v2: root }, { memoryBytes: 300 * MIB, nanoCpus: 0.25e9, pidsLimit: 32 }, files);
  assert.equal(
    writes.sort(([a], [b]) => a.localeCompare(b)),
    [
      ['cpu.max', '25000 100000'],
      ['memory.max', String(300 * MIB)],
      ['memory.swap.max', '0'],
      ['pids.max', '32'],
    ],
  );
  await rm(root, { recursive: true, force: true });
});
v2.run();
