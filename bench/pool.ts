/**
 * The warm pool fitted to requests (issue 18 §1), from one run on this machine:
 * - create shaped like the Director Protocol's example (its own `environment` and
 *   `resourceLimits`, disk included) → first `echo` output, warm-fitted vs cold vs the raw
 *   dockerode floor (create + start + exec with the same env, limits and tmpfs, first byte,
 *   remove), in rotated rounds so no case always runs first on a machine whose load drifts;
 * - 20 such creates at once on a pool of 20 (`BENCH_BURST_POOL`), beside 20 raw creates at once;
 * - the pool's hit rate over a mixed request stream (default, custom limits, environment,
 *   disk, workdir, a Director network, an `isolated` one), read from `director_pool_fit_total`.
 */
import Docker from 'dockerode';
import { rmSync } from 'node:fs';
import { runNft, tableExists } from '../netfilter/nft.ts';
import type { Runtime } from '../runtime/runtime.ts';
import { LABEL, MIB } from '../runtime/sandbox/hardening.ts';
import { printTable, summarize } from './stats.ts';
import { benchRuntime } from './runtime.ts';

const IMAGE = process.env.BENCH_IMAGE ?? 'director/busybox:latest';
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 10);
const PER_ROUND = Number(process.env.BENCH_PER_ROUND ?? 3);
const MIXED = Number(process.env.BENCH_MIXED ?? 40);
const POOL = Number(process.env.BENCH_POOL ?? 4);
const BURST = Number(process.env.BENCH_BURST ?? 20);
const BURST_POOL = Number(process.env.BENCH_BURST_POOL ?? BURST);
const BURST_ROUNDS = Number(process.env.BENCH_BURST_ROUNDS ?? 3);
const caller = { workspace: 'wsp_bench' };
const docker = new Docker();

/** The Director Protocol's create example, on a pooled image: its own environment and resource limits. */
const PROTOCOL_SHAPED = {
  name: 'Code Execution Sandbox',
  image: IMAGE,
  environment: { NODE_ENV: 'production', API_KEY: 'secure_key' },
  resourceLimits: { cpu: 2.0, memory: 1024, disk: 2048, network: false, maxDuration: 300_000 },
  networkMode: 'isolated',
};
/** What Director gives that request: /tmp and /workspace share the disk. */
const TMPFS = 'rw,nosuid,nodev,exec,size=1073741824,uid=1000,gid=1000';

async function rawOnce(): Promise<number> {
  const t0 = performance.now();
  const c = await docker.createContainer({
    Image: IMAGE,
    Cmd: ['sleep', 'infinity'],
    Env: Object.entries(PROTOCOL_SHAPED.environment).map(([k, v]) => `${k}=${v}`),
    Labels: { 'director.bench': 'pool' },
    HostConfig: {
      Init: true,
      Memory: 1024 * MIB,
      MemorySwap: 1024 * MIB,
      NanoCpus: 2e9,
      NetworkMode: 'none',
      Tmpfs: { '/tmp': `${TMPFS},mode=1777`, '/workspace': `${TMPFS},mode=755` },
    },
  });
  try {
    await c.start();
    const e = await c.exec({ Cmd: ['echo', 'hi'], AttachStdout: true, AttachStderr: true });
    const s = await e.start({ hijack: true, stdin: false });
    await new Promise((r) => s.once('data', r));
    const ms = performance.now() - t0;
    s.destroy();
    return ms;
  } finally {
    await c.remove({ force: true });
  }
}

async function directorOnce(rt: Runtime, req: unknown): Promise<number> {
  const t0 = performance.now();
  const sb = await rt.sandboxes.create(req, caller);
  let ms = Number.NaN;
  for await (const chunk of rt.executor.stream(caller, sb.id, { command: ['echo', 'hi'] })) {
    if (chunk.type === 'stdout' && Number.isNaN(ms)) ms = performance.now() - t0;
  }
  await rt.sandboxes.delete(caller, sb.id);
  if (Number.isNaN(ms)) throw new Error('no output');
  return ms;
}

/** `n` creates started together; each sample is create → first output of one of them (NaN: it failed). */
async function burst(n: number, once: () => Promise<number>): Promise<number[]> {
  const all = await Promise.allSettled(Array.from({ length: n }, once));
  return all.map((r) => (r.status === 'fulfilled' ? r.value : Number.NaN));
}

const runtime = (poolSize: number, networking: 'on' | 'off'): { rt: Runtime; dir: string } =>
  benchRuntime({ nftCheckIntervalMs: 3_600_000, poolSize, poolImages: IMAGE, defaultImage: IMAGE, maxSandboxes: 100, networking });

async function closeRuntime(rt: Runtime, dir: string) {
  await rt.close();
  for (const c of await rt.engine.listContainers({ [LABEL.runtime]: rt.config.runtimeName })) await rt.engine.removeContainer(c.id);
  for (const n of await rt.engine.listNetworks({ [LABEL.runtime]: rt.config.runtimeName })) await rt.engine.removeNetwork(n.id);
  if (await tableExists(rt.config.nftTable)) await runNft(['delete', 'table', 'inet', rt.config.nftTable]);
  rmSync(dir, { recursive: true, force: true });
}

async function waitPool(rt: Runtime, size: number) {
  for (let i = 0; i < 600; i++) {
    if (rt.sandboxes.deps.store.inStates(['running']).filter((r) => r.pooled).length >= size) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('pool did not fill');
}

const fitCounts = async (rt: Runtime): Promise<Record<string, number>> =>
  Object.fromEntries((await rt.metrics.poolFit.get()).values.map((v) => [String(v.labels.result), v.value]));
/** How served sandboxes got their disk size: `class` (a warm one made with it) or `resized` (remounted). */
const diskCounts = async (rt: Runtime): Promise<Record<string, number>> =>
  Object.fromEntries(
    (await (rt.metrics.poolDisk?.get() ?? Promise.resolve({ values: [] }))).values.map((v) => [String(v.labels.result), v.value]),
  );

export async function benchPool(): Promise<void> {
  console.log(`warm pool fitted to requests (image ${IMAGE}, ${ROUNDS} rotated rounds × ${PER_ROUND} per case, pool ${POOL})`);
  const cold = runtime(0, 'off');
  const warm = runtime(POOL, 'on');
  try {
    await cold.rt.start();
    await warm.rt.start({ waitForPool: true });
    await rawOnce();
    await directorOnce(cold.rt, PROTOCOL_SHAPED);
    await waitPool(warm.rt, 1);
    await directorOnce(warm.rt, PROTOCOL_SHAPED);

    const samples: Record<'raw' | 'cold' | 'fitted', number[]> = { raw: [], cold: [], fitted: [] };
    const cases: Array<['raw' | 'cold' | 'fitted', () => Promise<number>]> = [
      ['raw', rawOnce],
      ['cold', () => directorOnce(cold.rt, PROTOCOL_SHAPED)],
      [
        'fitted',
        async () => {
          // Every fitted sample finds a warm sandbox: the pool's refill is not what is measured here.
          await waitPool(warm.rt, 1);
          return directorOnce(warm.rt, PROTOCOL_SHAPED);
        },
      ],
    ];
    const fitsBefore = await fitCounts(warm.rt);
    for (let round = 0; round < ROUNDS; round++) {
      for (let k = 0; k < cases.length; k++) {
        const [name, fn] = cases[(round + k) % cases.length]!;
        for (let i = 0; i < PER_ROUND; i++) samples[name].push(await fn());
      }
    }
    const fitsAfter = await fitCounts(warm.rt);
    const raw = summarize(samples.raw);
    printTable('create shaped like the Director Protocol example → first output (ms)', [
      ['raw dockerode floor (same env and limits)', raw, null],
      ['director cold', summarize(samples.cold), raw],
      ['director warm, fitted to the request', summarize(samples.fitted), raw],
    ]);
    console.log(`fitted samples served as 'fitted': ${(fitsAfter.fitted ?? 0) - (fitsBefore.fitted ?? 0)} of ${samples.fitted.length}`);
    console.log(`disk met by (director_pool_disk_total, whole run so far): ${JSON.stringify(await diskCounts(warm.rt))}`);

    // A mixed stream at the rate a pool of this size refills (one create every 250 ms).
    const net = await warm.rt.networks!.manager.create(caller, { name: 'bench-pool', enableDNS: true });
    const stream: Array<[string, unknown]> = [
      ['default', { image: IMAGE }],
      ['custom limits', { image: IMAGE, resourceLimits: { memory: 128, cpu: 0.5, pids: 64 } }],
      ['environment', { image: IMAGE, environment: { TOKEN: 'abc', MODE: 'test' } }],
      ['protocol-shaped', PROTOCOL_SHAPED],
      ['director network', { image: IMAGE, securityPolicy: { allowNetwork: true }, networkMode: net.id }],
      ['disk', { image: IMAGE, resourceLimits: { disk: 512 } }],
      ['workdir', { image: IMAGE, workdir: '/workspace' }],
      ['isolated network', { image: IMAGE, securityPolicy: { allowNetwork: true }, networkMode: 'isolated' }],
    ];
    await waitPool(warm.rt, POOL);
    const before = await fitCounts(warm.rt);
    const byKind = new Map<string, { n: number; warm: number; ms: number[] }>();
    for (let i = 0; i < MIXED; i++) {
      const [kind, req] = stream[i % stream.length]!;
      const warmBefore = await fitCounts(warm.rt);
      const ms = await directorOnce(warm.rt, req);
      const warmAfter = await fitCounts(warm.rt);
      const served = (warmAfter.fitted ?? 0) + (warmAfter.exact ?? 0) - (warmBefore.fitted ?? 0) - (warmBefore.exact ?? 0);
      const k = byKind.get(kind) ?? { n: 0, warm: 0, ms: [] };
      k.n++;
      k.warm += served;
      k.ms.push(ms);
      byKind.set(kind, k);
      await new Promise((r) => setTimeout(r, 250));
    }
    const after = await fitCounts(warm.rt);
    const delta = Object.fromEntries(Object.keys(after).map((k) => [k, after[k]! - (before[k] ?? 0)]));
    const hits = (delta.fitted ?? 0) + (delta.exact ?? 0);
    console.log(`\nmixed stream of ${MIXED} creates (one per 250 ms, pool ${POOL}): pool hit rate ${((100 * hits) / MIXED).toFixed(0)} %`);
    console.log(`director_pool_fit_total by result: ${JSON.stringify(delta)}`);
    for (const [kind, k] of byKind) {
      const s = summarize(k.ms);
      console.log(
        `  ${kind.padEnd(16)} warm ${k.warm}/${k.n}  create → first output p50 ${s.p50.toFixed(1)} ms, p99 ${s.p99.toFixed(1)} ms`,
      );
    }
  } finally {
    await closeRuntime(cold.rt, cold.dir);
    await closeRuntime(warm.rt, warm.dir);
  }
  await benchBurst();
}

/** {@link BURST} protocol-shaped creates at once on a pool of {@link BURST_POOL}, beside as many raw creates at once. */
async function benchBurst(): Promise<void> {
  const b = runtime(BURST_POOL, 'off');
  try {
    await b.rt.start({ waitForPool: true });
    const samples: Record<'raw' | 'fitted', number[]> = { raw: [], fitted: [] };
    let warmServed = 0;
    const perRound: string[] = [];
    for (let round = 0; round < BURST_ROUNDS; round++) {
      const order: Array<'raw' | 'fitted'> = round % 2 ? ['fitted', 'raw'] : ['raw', 'fitted'];
      for (const which of order) {
        if (which === 'raw') samples.raw.push(...(await burst(BURST, rawOnce)));
        else {
          await waitPool(b.rt, BURST_POOL);
          const before = await fitCounts(b.rt);
          const disk0 = await diskCounts(b.rt);
          const got = await burst(BURST, () => directorOnce(b.rt, PROTOCOL_SHAPED));
          samples.fitted.push(...got);
          const disk1 = await diskCounts(b.rt);
          const r = summarize(
            got.filter((x) => !Number.isNaN(x)),
            got.length,
          );
          perRound.push(
            `  round ${round + 1}: p50 ${r.p50.toFixed(0)} / p99 ${r.p99.toFixed(0)} ms, ${r.ok}/${r.n} ok, disk remounted ${(disk1.resized ?? 0) - (disk0.resized ?? 0)}, of its class ${(disk1.class ?? 0) - (disk0.class ?? 0)}`,
          );
          const after = await fitCounts(b.rt);
          warmServed += (after.fitted ?? 0) + (after.exact ?? 0) - (before.fitted ?? 0) - (before.exact ?? 0);
        }
      }
    }
    const ok = (xs: number[]) => xs.filter((x) => !Number.isNaN(x));
    const raw = summarize(ok(samples.raw), samples.raw.length);
    printTable(`${BURST} protocol-shaped creates at once → first output (ms), ${BURST_ROUNDS} rounds, pool ${BURST_POOL}`, [
      ['raw dockerode floor, all at once', raw, null],
      ['director warm, fitted, all at once', summarize(ok(samples.fitted), samples.fitted.length), raw],
    ]);
    console.log(`served warm: ${warmServed} of ${samples.fitted.length}`);
    for (const line of perRound) console.log(line);
  } finally {
    await closeRuntime(b.rt, b.dir);
  }
}
