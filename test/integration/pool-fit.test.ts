/**
 * The warm pool serves any request for a pooled image whose container-baked parts equal the
 * pool's: the claimed container's memory, swap, cpu and pids are changed live, the sandbox's
 * environment reaches every process it runs, and the result has exactly the hardening of a cold
 * sandbox made for the same request. Proved against the real engine and kernel.
 */
import Docker from 'dockerode';
import { readFile } from 'node:fs/promises';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createRuntime } from '../../runtime/runtime.ts';
import { MIB } from '../../runtime/sandbox/hardening.ts';
import type { SandboxRecord } from '../../runtime/store/sandboxes.ts';
import { BUSYBOX, caller, eventually, testRuntime, testSetup, withCleanup, type TestRuntime } from '../helpers/runtime.ts';

const test = suite('pool-fit');
const docker = new Docker();
let rt: TestRuntime;

const POOL = 4;

test.before(async () => {
  rt = testRuntime({ poolSize: POOL, poolImages: BUSYBOX, maxSandboxes: 40, maxPids: 4096 });
  await rt.start({ waitForPool: true });
});
test.after(async () => {
  await rt.cleanup();
});

/** The Director Protocol's example shape: its own environment and resource limits. */
const REQUEST = {
  image: BUSYBOX,
  name: 'fitted',
  environment: { GREETING: 'hello from the request', API_TOKEN: 'tok-s3cr3t' },
  resourceLimits: { cpu: 0.5, memory: 96, pids: 48, maxDuration: 600_000, disk: 64 },
  workdir: '/workspace',
};

const fit = async (result: string) => (await rt.metrics.poolFit.get()).values.find((v) => v.labels.result === result)?.value ?? 0;
const warmContainers = () =>
  new Set(
    rt.sandboxes.deps.store
      .inStates(['running'])
      .filter((r) => r.pooled)
      .map((r) => r.containerId),
  );
const fullPool = () => eventually(() => warmContainers().size === POOL, 30_000);
const sh = (id: string, script: string, opts: { timeout?: number; environment?: Record<string, string> } = {}) =>
  rt.executor.run(caller, id, { command: ['sh', '-c', script], timeout: opts.timeout ?? 10_000, ...opts });

test('a request with its own environment and limits is served warm: record, cgroup limits and environment are the request’s', async () => {
  await fullPool();
  const warm = warmContainers();
  const fittedBefore = await fit('fitted');
  const sb = await rt.sandboxes.create(REQUEST, caller);
  assert.ok(warm.has(sb.containerId), 'the sandbox did not come from the pool');
  assert.is(await fit('fitted'), fittedBefore + 1);
  assert.is(sb.pooled, false);
  assert.is(sb.name, 'fitted');
  assert.equal(sb.spec.resourceLimits, { ...sb.spec.resourceLimits, cpu: 0.5, memory: 96, pids: 48, maxDuration: 600_000, disk: 64 });
  assert.is(sb.spec.workdir, '/workspace');
  assert.equal(sb.spec.environmentKeys, ['API_TOKEN', 'GREETING']);
  assert.ok(sb.deadlineMs! - sb.createdMs === 600_000);

  // The kernel enforces the fitted limits when the sandbox is handed out (read from its cgroup through
  // the engine's stats); the engine's own record of them follows (see DockerEngine.updateLimits).
  const kernel = await rt.sandboxes.metrics(caller, sb.id);
  assert.is(kernel.memory.limitBytes, 96 * MIB);
  assert.is(kernel.pids.limit, 48);
  const info = await recorded(sb.containerId!, 96 * MIB);
  assert.is(info.HostConfig.Memory, 96 * MIB);
  assert.is(info.HostConfig.MemorySwap, 96 * MIB, 'swap stays equal to memory: no swap');
  assert.is(info.HostConfig.NanoCpus, 0.5e9);
  assert.is(info.HostConfig.PidsLimit, 48);
  assert.not.ok(
    (info.Config.Env ?? []).some((e) => e.startsWith('GREETING=')),
    'the environment is not baked into a pooled container',
  );
  const stats = await rt.sandboxes.metrics(caller, sb.id);
  assert.is(stats.memory.limitBytes, 96 * MIB, 'the kernel enforces the fitted memory limit');
  assert.is(stats.pids.limit, 48);

  // Every process gets it: execute (launcher or plain exec), a call's own value overriding it, a stream, a shell.
  assert.is((await sh(sb.id, 'echo "$GREETING|$API_TOKEN"')).stdout, 'hello from the request|tok-s3cr3t\n');
  assert.is((await sh(sb.id, 'echo "$GREETING"', { environment: { GREETING: 'per call' } })).stdout, 'per call\n');
  assert.is((await rt.executor.run(caller, sb.id, { command: ['sh', '-c', 'echo "$API_TOKEN"'] })).stdout, 'tok-s3cr3t\n');
  let streamed = '';
  for await (const c of rt.executor.stream(caller, sb.id, { command: 'echo "$GREETING"' })) if (c.type === 'stdout') streamed += c.data;
  assert.is(streamed, 'hello from the request\n');
  const session = await rt.shells.open(caller, sb.id, { shell: 'sh' });
  assert.ok(session);
  let out = '';
  session.process.stdout.on('data', (b: Buffer) => (out += b.toString()));
  session.process.stdin!.write('echo "[$API_TOKEN]"; exit 0\n');
  await session.exited;
  assert.match(out, /\[tok-s3cr3t\]/);

  // Kept with the record sealed: the value is nowhere in the store in clear.
  const sealed = rt.sandboxes.deps.store.sealedEnvironment(sb.id);
  assert.ok(sealed?.startsWith('v1.'));
  assert.not.match(sealed!, 'tok-s3cr3t');
  const row = JSON.stringify(rt.db.sql.prepare('SELECT * FROM sandboxes WHERE id = ?').get(sb.id));
  assert.not.match(row, 'tok-s3cr3t');
  await rt.sandboxes.delete(caller, sb.id);
});

test('the fitted memory limit applies: a process over it is OOM-killed', async () => {
  await fullPool();
  const warm = warmContainers();
  const sb = await rt.sandboxes.create({ image: BUSYBOX, resourceLimits: { memory: 32 } }, caller);
  assert.ok(warm.has(sb.containerId));
  const r = await sh(sb.id, 'x=aaaaaaaaaaaaaaaa; while true; do x="$x$x"; done', { timeout: 30_000 });
  assert.is(r.timedOut, false);
  assert.is(r.exitCode, 137, `expected SIGKILL by the OOM killer, got ${r.exitCode}`);
  await eventually(() => rt.events.list({ sandboxId: sb.id, type: 'oom_killed', limit: 5 })[0]);
  await rt.sandboxes.delete(caller, sb.id);
});

test('the fitted pids limit applies: forks beyond it fail', async () => {
  await fullPool();
  const warm = warmContainers();
  const sb = await rt.sandboxes.create({ image: BUSYBOX, resourceLimits: { pids: 16 } }, caller);
  assert.ok(warm.has(sb.containerId));
  const r = await sh(sb.id, 'i=0; while [ $i -lt 40 ]; do sleep 5 & i=$((i+1)); done; echo started', { timeout: 20_000 });
  assert.match(r.stderr, /fork|Resource temporarily unavailable/i);
  const stats = await rt.sandboxes.metrics(caller, sb.id);
  assert.is(stats.pids.limit, 16);
  assert.ok(stats.pids.current <= 16, `pids.current ${stats.pids.current}`);
  await rt.sandboxes.delete(caller, sb.id);
});

/** The engine's inspection once its record shows the memory limit `bytes` (a fitted container's is updated after the kernel's). */
const recorded = (containerId: string, bytes: number) =>
  eventually(async () => {
    const info = await docker.getContainer(containerId).inspect();
    return info.HostConfig.Memory === bytes ? info : null;
  });

/** What `docker inspect` says about a container's confinement (its environment aside). */
async function floorOf(rec: SandboxRecord) {
  const { HostConfig: h, Config: c, Mounts } = await recorded(rec.containerId!, rec.spec.resourceLimits.memory * MIB);
  const hc = h as typeof h & { MaskedPaths?: string[]; ReadonlyPaths?: string[]; OomScoreAdj?: number; Init?: boolean };
  return {
    CapDrop: hc.CapDrop,
    CapAdd: hc.CapAdd,
    SecurityOpt: hc.SecurityOpt,
    ReadonlyRootfs: hc.ReadonlyRootfs,
    Privileged: hc.Privileged,
    PidsLimit: hc.PidsLimit,
    Memory: hc.Memory,
    MemorySwap: hc.MemorySwap,
    NanoCpus: hc.NanoCpus,
    // The engine's record of the tmpfs options is the pool's for a fitted sandbox (resized live):
    // the kernel's mount table is compared instead (tmpfsMounts), as is the effective working directory.
    Binds: hc.Binds,
    Devices: hc.Devices,
    // The exec agent's channel directory is the sandbox's own (`<base>/<sandboxId>`): compared without the id.
    // The engine lists them in no fixed order (a map): sorted by destination.
    Mounts: (Mounts ?? [])
      .map((m) => ({ ...m, Source: m.Type === 'volume' ? '' : m.Source.replace(rec.id, '<sandbox>'), Name: '' }))
      .sort((x, y) => x.Destination.localeCompare(y.Destination)),
    MaskedPaths: hc.MaskedPaths,
    ReadonlyPaths: hc.ReadonlyPaths,
    Ulimits: hc.Ulimits,
    NetworkMode: hc.NetworkMode,
    PidMode: hc.PidMode,
    IpcMode: hc.IpcMode,
    UsernsMode: hc.UsernsMode,
    OomScoreAdj: hc.OomScoreAdj,
    User: c.User,
    Cmd: c.Cmd,
    Dns: hc.Dns,
    tmpfs: await tmpfsMounts(rec),
    workdir: (await sh(rec.id, 'pwd')).stdout,
  };
}

/** The sandbox's tmpfs mounts as the kernel has them: mount point, mount flags, size and owner (from /proc/PID/mountinfo). */
async function tmpfsMounts(rec: SandboxRecord): Promise<string[]> {
  const pid = (await docker.getContainer(rec.containerId!).inspect()).State.Pid;
  const lines = (await readFile(`/proc/${pid}/mountinfo`, 'utf8')).split('\n').filter((l) => l.includes(' - tmpfs '));
  return lines
    .map((l) => {
      const [pre, post] = l.split(' - ');
      const f = pre!.split(' ');
      return `${f[4]} ${f[5]} ${post!.split(' ')[2]}`;
    })
    .filter((m) => m.startsWith('/tmp ') || m.startsWith('/workspace '))
    .sort();
}

test('a fitted sandbox and a cold one made for the same request inspect to the same hardening floor', async () => {
  await fullPool();
  const warm = warmContainers();
  const fitted = await rt.sandboxes.create(REQUEST, caller);
  assert.ok(warm.has(fitted.containerId));
  // The cold path the manager takes when the pool cannot serve: the creator, for the same resolved request.
  const spec = rt.sandboxes.resolve(REQUEST, caller);
  const image = await rt.sandboxes.deps.creator.imageInfo(BUSYBOX);
  const cold = await rt.sandboxes.deps.creator.createCold(spec, caller.workspace, { imageWorkdir: image!.workdir });
  assert.not.ok(warm.has(cold.containerId));
  const [a, b] = [await floorOf(fitted), await floorOf(cold)];
  assert.equal(a, b);
  assert.equal(a.CapDrop, ['ALL']);
  assert.is(a.Privileged, false);
  assert.is(a.ReadonlyRootfs, true);
  assert.ok((a.SecurityOpt as string[] | undefined)?.some((o: string) => o.startsWith('no-new-privileges')));
  assert.is(a.Memory, 96 * MIB);
  assert.equal(a.tmpfs, [
    '/tmp rw,nosuid,nodev,relatime rw,size=32768k,uid=1000,gid=1000',
    '/workspace rw,nosuid,nodev,relatime rw,size=32768k,mode=755,uid=1000,gid=1000',
  ]);
  assert.is(a.workdir, '/workspace\n');
  // Both see the request's environment (the cold one from its container, the fitted one from Director).
  for (const rec of [fitted, cold]) assert.is((await sh(rec.id, 'echo "$GREETING"')).stdout, 'hello from the request\n');
  await rt.sandboxes.delete(caller, fitted.id);
  await rt.sandboxes.delete(caller, cold.id);
});

test('the fitted disk size applies: a write beyond it fails with ENOSPC, one within it succeeds', async () => {
  await fullPool();
  const warm = warmContainers();
  // 16 MiB shared by /tmp and /workspace: 8 MiB each (the pool's default is larger).
  const sb = await rt.sandboxes.create({ image: BUSYBOX, resourceLimits: { disk: 16 } }, caller);
  assert.ok(warm.has(sb.containerId));
  const within = await sh(sb.id, 'dd if=/dev/zero of=/workspace/a bs=1M count=6 2>&1 && echo wrote');
  assert.match(within.stdout, /wrote/);
  const beyond = await sh(sb.id, 'dd if=/dev/zero of=/tmp/b bs=1M count=12 2>&1; echo "exit=$?"');
  assert.match(beyond.stdout, /No space left on device/);
  assert.match(beyond.stdout, /exit=1/);
  assert.match((await sh(sb.id, 'df -k /tmp | tail -1')).stdout, /\s8192\s/);
  // A larger size than the pool's is fitted too.
  const big = await rt.sandboxes.create({ image: BUSYBOX, resourceLimits: { disk: 2048 } }, caller);
  assert.ok(warm.has(big.containerId));
  assert.match((await sh(big.id, 'df -k /workspace | tail -1')).stdout, /\s1048576\s/);
  await rt.sandboxes.delete(caller, sb.id);
  await rt.sandboxes.delete(caller, big.id);
});

const disk = async (result: string) => (await rt.metrics.poolDisk.get()).values.find((v) => v.labels.result === result)?.value ?? 0;
const warmOfDisk = (mib: number) =>
  rt.sandboxes.deps.store.inStates(['running']).filter((r) => r.pooled && r.spec.resourceLimits.disk === mib).length;

test('the pool refills with the disk size claims asked for; a claim of that size is not remounted and gets ENOSPC exactly at it', async () => {
  await fullPool();
  const [resized, matched] = [await disk('resized'), await disk('class')];
  // 24 MiB shared by /tmp and /workspace: 12 MiB each. The pool was made with the default size: remounted.
  const first = await rt.sandboxes.create({ image: BUSYBOX, resourceLimits: { disk: 24 } }, caller);
  assert.is(await disk('resized'), resized + 1);
  await rt.sandboxes.delete(caller, first.id);
  // Its replacement is made with the size that claim asked for.
  await eventually(() => warmOfDisk(24) === 1, 30_000);
  await fullPool();
  const warm = warmContainers();
  const sb = await rt.sandboxes.create({ image: BUSYBOX, resourceLimits: { disk: 24 } }, caller);
  assert.ok(warm.has(sb.containerId), 'the sandbox did not come from the pool');
  assert.is(await disk('class'), matched + 1, 'not served by the warm sandbox made with its size');
  assert.is(await disk('resized'), resized + 1, 'remounted although a warm sandbox had its size');
  assert.is(warmOfDisk(24), 0);
  assert.equal(await tmpfsMounts(sb), [
    '/tmp rw,nosuid,nodev,relatime rw,size=12288k,uid=1000,gid=1000',
    '/workspace rw,nosuid,nodev,relatime rw,size=12288k,mode=755,uid=1000,gid=1000',
  ]);
  const within = await sh(sb.id, 'dd if=/dev/zero of=/workspace/a bs=1M count=11 2>&1 && echo wrote');
  assert.match(within.stdout, /wrote/);
  const beyond = await sh(sb.id, 'dd if=/dev/zero of=/tmp/b bs=1M count=13 2>&1; echo "exit=$?"');
  assert.match(beyond.stdout, /No space left on device/);
  assert.match(beyond.stdout, /exit=1/);
  const written = Number((await sh(sb.id, 'stat -c %s /tmp/b')).stdout);
  assert.ok(written > 12 * MIB - 256 * 1024 && written <= 12 * MIB, `the write stopped at ${written} bytes, not at 12 MiB`);
  // A request of the pool's own size is not given the 24 MiB one unfitted.
  const plain = await rt.sandboxes.create({ image: BUSYBOX }, caller);
  assert.match((await sh(plain.id, 'df -k /tmp | tail -1')).stdout, new RegExp(`\\s${(rt.config.defaultDiskMb * 1024) / 2}\\s`));
  await rt.sandboxes.delete(caller, sb.id);
  await rt.sandboxes.delete(caller, plain.id);
});

test('without the tmpfs resizer (a remote engine) another disk size is served only by a warm sandbox made with it', async () => {
  await fullPool();
  const deps = (rt.pool as unknown as { deps: { tmpfs: unknown } }).deps;
  const resizer = deps.tmpfs;
  deps.tmpfs = null;
  try {
    const diskFallback = await fit('disk');
    const warm = warmContainers();
    // No warm sandbox of 40 MiB yet: created cold, and the pool learns the size.
    const cold = await rt.sandboxes.create({ image: BUSYBOX, resourceLimits: { disk: 40 } }, caller);
    assert.not.ok(warm.has(cold.containerId));
    assert.is(await fit('disk'), diskFallback + 1);
    // The next warm sandbox made (here replacing one a default request takes) has its size.
    const taken = await rt.sandboxes.create({ image: BUSYBOX }, caller);
    assert.ok(warm.has(taken.containerId));
    await eventually(() => warmOfDisk(40) === 1, 30_000);
    const next = warmContainers();
    const matched = await disk('class');
    const sb = await rt.sandboxes.create({ image: BUSYBOX, resourceLimits: { disk: 40 } }, caller);
    assert.ok(next.has(sb.containerId), 'the warm sandbox of its size was not used');
    assert.is(await disk('class'), matched + 1);
    assert.match((await sh(sb.id, 'df -k /workspace | tail -1')).stdout, /\s20480\s/);
    // Everything else must still fit: a policy the pool lacks stays cold, counted by that reason, not `disk`.
    const [policy, diskNow] = [await fit('security_policy'), await fit('disk')];
    const other = await rt.sandboxes.create(
      { image: BUSYBOX, resourceLimits: { disk: 40 }, securityPolicy: { blockedPaths: ['/etc'] } },
      caller,
    );
    assert.not.ok(next.has(other.containerId));
    assert.is(await fit('security_policy'), policy + 1);
    assert.is(await fit('disk'), diskNow);
    for (const r of [cold, taken, sb, other]) await rt.sandboxes.delete(caller, r.id);
  } finally {
    deps.tmpfs = resizer;
  }
});

test('the fitted working directory is the default of every execute and shell', async () => {
  await fullPool();
  const warm = warmContainers();
  const sb = await rt.sandboxes.create({ image: BUSYBOX, workdir: '/workspace' }, caller);
  assert.ok(warm.has(sb.containerId));
  assert.is((await sh(sb.id, 'pwd')).stdout, '/workspace\n');
  assert.is((await rt.executor.run(caller, sb.id, { command: ['pwd'] })).stdout, '/workspace\n');
  assert.is((await rt.executor.run(caller, sb.id, { command: ['pwd'], workdir: '/tmp' })).stdout, '/tmp\n', 'a call’s own workdir wins');
  let streamed = '';
  for await (const c of rt.executor.stream(caller, sb.id, { command: 'pwd' })) if (c.type === 'stdout') streamed += c.data;
  assert.is(streamed, '/workspace\n');
  const session = await rt.shells.open(caller, sb.id, { shell: 'sh' });
  let out = '';
  session!.process.stdout.on('data', (b: Buffer) => (out += b.toString()));
  session!.process.stdin!.write('echo "[$(pwd)]"; exit 0\n');
  await session!.exited;
  assert.match(out, /\[\/workspace\]/);
  await rt.sandboxes.delete(caller, sb.id);
});

test('what cannot be fitted is created cold and counted by reason', async () => {
  await fullPool();
  const warm = warmContainers();
  const [command, workdir, policy] = [await fit('command'), await fit('workdir'), await fit('security_policy')];
  const a = await rt.sandboxes.create({ image: BUSYBOX, command: ['sleep', '600'] }, caller);
  // A working directory the image may not have (the engine creates it for a cold container).
  const b = await rt.sandboxes.create({ image: BUSYBOX, workdir: '/srv/app' }, caller);
  const c = await rt.sandboxes.create({ image: BUSYBOX, securityPolicy: { blockedPaths: ['/etc'] } }, caller);
  for (const r of [a, b, c]) assert.not.ok(warm.has(r.containerId), 'an unfittable request was served from the pool');
  assert.is(await fit('command'), command + 1);
  assert.is(await fit('workdir'), workdir + 1);
  assert.is(await fit('security_policy'), policy + 1);
  assert.is((await sh(b.id, 'pwd')).stdout, '/srv/app\n');
  const scraped = await rt.metrics.registry.metrics();
  assert.match(scraped, /director_pool_fit_total\{result="fitted"\} \d+/);
  for (const r of [a, b, c]) await rt.sandboxes.delete(caller, r.id);
});

test('20 concurrent creates with custom limits: every one succeeds and no container is handed out twice', async () => {
  await fullPool();
  const warm = warmContainers();
  const made = await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      rt.sandboxes.create(
        {
          image: BUSYBOX,
          environment: { N: String(i) },
          resourceLimits: { memory: 64 + i, pids: 32, disk: 100 + i },
          workdir: '/workspace',
        },
        caller,
      ),
    ),
  );
  const containers = made.map((r) => r.containerId);
  assert.is(new Set(containers).size, 20, 'a container was given to two requests');
  assert.is(new Set(made.map((r) => r.id)).size, 20);
  const fromPool = containers.filter((c) => warm.has(c)).length;
  assert.ok(fromPool >= 1 && fromPool <= POOL, `${fromPool} served warm from a pool of ${POOL}`);
  for (const [i, r] of made.entries()) {
    assert.is(r.status, 'running');
    const kernel = await rt.sandboxes.metrics(caller, r.id);
    assert.is(kernel.memory.limitBytes, (64 + i) * MIB, `sandbox ${i} has another request's memory limit`);
    const info = await recorded(r.containerId!, (64 + i) * MIB);
    assert.is(info.HostConfig.Memory, (64 + i) * MIB);
  }
  // Each sees its own environment, working directory and disk size, never another request's.
  const outs = await Promise.all(
    made.map((r) =>
      rt.executor.run(caller, r.id, { command: ['sh', '-c', 'echo "$N $(pwd) $(df -k /tmp | tail -1 | awk \'{print $2}\')"'] }),
    ),
  );
  assert.equal(
    outs.map((o) => o.stdout),
    made.map((_, i) => `${i} /workspace ${(100 + i) * 512}\n`),
  );
  await Promise.all(made.map((r) => rt.sandboxes.delete(caller, r.id)));
});

test('a fitted sandbox keeps its environment across a server restart (sealed in the store)', async () => {
  await fullPool();
  const setup = testSetup({ poolSize: 0, dataDir: rt.dataDir, runtimeName: rt.config.runtimeName, maxSandboxes: 40 });
  const warm = warmContainers();
  const sb = await rt.sandboxes.create(REQUEST, caller);
  assert.ok(warm.has(sb.containerId));
  await rt.close();
  const again = withCleanup(createRuntime({ config: setup.config, engine: setup.engine, logger: setup.logger }), setup);
  rt = again;
  await again.start();
  const r = await again.executor.run(caller, sb.id, { command: ['sh', '-c', 'echo "$GREETING"'] });
  assert.is(r.stdout, 'hello from the request\n');
});

test.run();
