/**
 * Live limit changes on one container, one after another (a pool claim's fit, then a security
 * profile lowering its pids): with a local engine each is written into the cgroups at once and the
 * engine's own update follows in the background. That update writes every limit into the cgroups
 * too, so one still running when a newer change lands must not overtake it: the kernel and the
 * engine's record (`inspect`) end with the last change's values. Real engine, real kernel.
 */
import Docker from 'dockerode';
import { readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { LiveLimits } from '../../runtime/engine/engine.ts';
import { DockerEngine } from '../../runtime/engine/docker/docker.ts';
import { parseCgroups } from '../../runtime/engine/docker/cgroups.ts';
import { LABEL } from '../../runtime/sandbox/hardening.ts';
import { BUSYBOX, removeContainers, sleep } from '../helpers/runtime.ts';

const test = suite('update-limits');
const docker = new Docker();
const engine = new DockerEngine();
const runtimeName = `test-${randomBytes(4).toString('hex')}`;
const MIB = 1024 * 1024;

test.after(async () => {
  await removeContainers(engine, runtimeName);
});

async function container(): Promise<string> {
  const c = await docker.createContainer({
    Image: BUSYBOX,
    Cmd: ['sleep', '600'],
    Labels: { [LABEL.runtime]: runtimeName },
    HostConfig: { Memory: 64 * MIB, MemorySwap: 64 * MIB, NanoCpus: 1e9, PidsLimit: 50, NetworkMode: 'none' },
  });
  await c.start();
  return c.id;
}

interface Seen {
  memoryBytes: number;
  nanoCpus: number;
  pidsLimit: number;
}

/** What the engine has recorded for the container. */
async function record(id: string): Promise<Seen> {
  const h = (await docker.getContainer(id).inspect()).HostConfig;
  return { memoryBytes: h.Memory ?? 0, nanoCpus: h.NanoCpus ?? 0, pidsLimit: h.PidsLimit ?? 0 };
}

/** What the kernel enforces, read from the container's cgroups (v1 or v2). */
async function kernel(id: string): Promise<Seen> {
  const pid = (await docker.getContainer(id).inspect()).State.Pid;
  const cg = parseCgroups(pid, await readFile(`/proc/${pid}/cgroup`, 'utf8'));
  const num = async (file: string) => Number((await readFile(file, 'utf8')).trim().split(' ')[0]);
  if (cg.v2)
    return {
      memoryBytes: await num(`${cg.v2}/memory.max`),
      nanoCpus: ((await num(`${cg.v2}/cpu.max`)) * 1e9) / 100_000,
      pidsLimit: await num(`${cg.v2}/pids.max`),
    };
  const period = await num(`${cg.v1.cpu}/cpu.cfs_period_us`);
  return {
    memoryBytes: await num(`${cg.v1.memory}/memory.limit_in_bytes`),
    nanoCpus: ((await num(`${cg.v1.cpu}/cpu.cfs_quota_us`)) * 1e9) / period,
    pidsLimit: await num(`${cg.v1.pids}/pids.max`),
  };
}

/** Waits until the engine's record shows `want` (at most `ms`), then a little longer for any late update to land. */
async function settled(id: string, want: Seen, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until && JSON.stringify(await record(id)) !== JSON.stringify(want)) await sleep(100);
  await sleep(1500);
}

test('changes in a row: the kernel and the engine’s record end with the last one, never an older one', async () => {
  const id = await container();
  // Each round: changes awaited one after another, as callers make them; each differs in every limit.
  for (let round = 0; round < 3; round++) {
    const seq: LiveLimits[] = Array.from({ length: 8 }, (_, i) => ({
      memoryBytes: (i % 2 ? 96 : 160) * MIB + (round * 8 + i) * MIB,
      nanoCpus: (5 + i + round) * 1e8,
      pidsLimit: 100 + round * 8 + i,
    }));
    for (const l of seq) await engine.updateLimits(id, l);
    const last = seq.at(-1) as Seen;
    // The kernel has the last change as soon as the call returns.
    assert.equal(await kernel(id), last, `round ${round}: the kernel right after the last change`);
    await settled(id, last);
    assert.equal(await record(id), last, `round ${round}: the engine's record ended with an older change`);
    assert.equal(await kernel(id), last, `round ${round}: an older change was put back into the kernel`);
  }
});

test('two changes of different limits in a row: the second does not undo the first', async () => {
  const id = await container();
  // A fit (memory and pids) then a profile lowering pids alone.
  await engine.updateLimits(id, { memoryBytes: 200 * MIB, pidsLimit: 80 });
  await engine.updateLimits(id, { pidsLimit: 20 });
  const want = { memoryBytes: 200 * MIB, nanoCpus: 1e9, pidsLimit: 20 };
  assert.equal(await kernel(id), want);
  await settled(id, want);
  assert.equal(await record(id), want);
  assert.equal(await kernel(id), want);
});

test("hostPid answers the container's init only while it lives in the container's cgroups: never a pid cached from a stopped container", async () => {
  const id = await container();
  const pid = await engine.hostPid(id);
  const state = await docker.getContainer(id).inspect();
  assert.is(pid, state.State.Pid, "the container's init");
  await docker.getContainer(id).kill();
  await docker.getContainer(id).wait();
  // The cached pid is gone (and could be any process's next): the resizer must not be handed it.
  assert.is(await engine.hostPid(id), null);
});

test.run();
