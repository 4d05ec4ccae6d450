/**
 * Where a fitted claim spends its time (`npm run bench pool-trace`): the pool's parts are wrapped
 * with timers (this process only; nothing of the runtime changes) and
 * - single protocol-shaped creates on a full pool print their phases (resolve+claim, image
 *   lookup, live limits, tmpfs resize, create → first output);
 * - a burst of {@link BURST} at once prints when each claim, fit and first output happened
 *   against the refills running meanwhile, the engine calls made and the event loop's delay.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { rmSync } from 'node:fs';
import type { Runtime } from '../runtime/runtime.ts';
import { LABEL } from '../runtime/sandbox/hardening.ts';
import { summarize } from './stats.ts';
import { benchRuntime } from './runtime.ts';

const IMAGE = process.env.BENCH_IMAGE ?? 'director/busybox:latest';
const BURST = Number(process.env.BENCH_BURST ?? 20);
const SINGLES = Number(process.env.BENCH_SINGLES ?? 15);
const ROUNDS = Number(process.env.BENCH_BURST_ROUNDS ?? 2);
const caller = { workspace: 'wsp_bench' };
const REQ = {
  name: 'Code Execution Sandbox',
  image: IMAGE,
  environment: { NODE_ENV: 'production', API_KEY: 'secure_key' },
  resourceLimits: { cpu: 2.0, memory: 1024, disk: 2048, network: false, maxDuration: 300_000 },
  networkMode: 'isolated',
};

type Ev = { t: number; what: string; ms?: number };

/** Wraps `obj[name]` (an async method) so every call is timed into `into` under `label`. */
function wrap(obj: object | null | undefined, name: string, label: string, into: Ev[], t0: { v: number }): void {
  if (!obj) return;
  const o = obj as Record<string, unknown>;
  const fn = o[name];
  if (typeof fn !== 'function') return;
  o[name] = async function (this: unknown, ...args: unknown[]) {
    const s = performance.now();
    try {
      return await (fn as (...a: unknown[]) => Promise<unknown>).apply(this, args);
    } finally {
      into.push({ t: s - t0.v, what: label, ms: performance.now() - s });
    }
  };
}

async function once(rt: Runtime, into: Ev[], t0: { v: number }): Promise<number> {
  const s = performance.now();
  const sb = await rt.sandboxes.create(REQ, caller);
  into.push({ t: s - t0.v, what: 'create', ms: performance.now() - s });
  const e0 = performance.now();
  let first = Number.NaN;
  for await (const c of rt.executor.stream(caller, sb.id, { command: ['echo', 'hi'] }))
    if (c.type === 'stdout' && Number.isNaN(first)) first = performance.now();
  into.push({ t: e0 - t0.v, what: 'exec→first', ms: first - e0 });
  into.push({ t: s - t0.v, what: 'total', ms: first - s });
  await rt.sandboxes.delete(caller, sb.id);
  return first - s;
}

const pooled = (rt: Runtime) => rt.sandboxes.deps.store.inStates(['running']).filter((r) => r.pooled).length;
async function waitPool(rt: Runtime, n: number) {
  for (let i = 0; i < 1200 && pooled(rt) < n; i++) await new Promise((r) => setTimeout(r, 100));
}

function phases(evs: Ev[], title: string) {
  const by = new Map<string, number[]>();
  for (const e of evs) if (e.ms !== undefined) by.set(e.what, [...(by.get(e.what) ?? []), e.ms]);
  console.log(`\n${title}`);
  for (const [k, xs] of by) {
    const s = summarize(xs);
    console.log(
      `  ${k.padEnd(22)} n=${String(xs.length).padStart(3)}  p50 ${s.p50.toFixed(1).padStart(6)}  p99 ${s.p99.toFixed(1).padStart(6)}  max ${Math.max(
        ...xs,
      )
        .toFixed(1)
        .padStart(6)} ms`,
    );
  }
}

export async function benchPoolTrace(): Promise<void> {
  const { rt, dir } = benchRuntime({ poolSize: BURST, poolImages: IMAGE, defaultImage: IMAGE, maxSandboxes: 100, networking: 'off' });
  const evs: Ev[] = [];
  const t0 = { v: performance.now() };
  const deps = (rt.pool as unknown as { deps: Record<string, object | null> }).deps;
  wrap(deps.engine, 'updateLimits', 'updateLimits', evs, t0);
  wrap(deps.tmpfs, 'resize', 'tmpfs.resize', evs, t0);
  wrap(deps.creator, 'imageInfo', 'imageInfo', evs, t0);
  wrap(deps.creator, 'createCold', 'refill createCold', evs, t0);
  wrap(rt.engine, 'inspectContainer', 'engine.inspect', evs, t0);
  wrap(rt.engine, 'hostPid', 'engine.hostPid', evs, t0);
  try {
    await rt.start({ waitForPool: true });
    await waitPool(rt, BURST);
    for (let i = 0; i < SINGLES; i++) {
      await waitPool(rt, BURST);
      await once(rt, evs, t0);
    }
    phases(evs, `single protocol-shaped creates on a full pool of ${BURST} (phases, ms)`);
    for (let round = 0; round < ROUNDS; round++) {
      await waitPool(rt, BURST);
      await new Promise((r) => setTimeout(r, 500));
      evs.length = 0;
      const lag = monitorEventLoopDelay({ resolution: 5 });
      lag.enable();
      t0.v = performance.now();
      const totals = await Promise.all(Array.from({ length: BURST }, () => once(rt, evs, t0).catch(() => Number.NaN)));
      const end = performance.now() - t0.v;
      lag.disable();
      phases(evs, `burst ${round + 1}: ${BURST} at once (phases, ms; t = start offset)`);
      const s = summarize(
        totals.filter((x) => !Number.isNaN(x)),
        totals.length,
      );
      console.log(
        `  total p50 ${s.p50.toFixed(0)} p99 ${s.p99.toFixed(0)} ok ${s.ok}/${s.n}; all done at ${end.toFixed(0)} ms; loop delay p99 ${(lag.percentile(99) / 1e6).toFixed(1)} max ${(lag.max / 1e6).toFixed(1)} ms`,
      );
      const line = (what: string) =>
        evs
          .filter((e) => e.what === what)
          .sort((a, b) => a.t - b.t)
          .map((e) => `${e.t.toFixed(0)}+${e.ms!.toFixed(0)}`)
          .join(' ');
      for (const w of ['create', 'updateLimits', 'tmpfs.resize', 'exec→first', 'refill createCold', 'engine.inspect'])
        console.log(`  ${w.padEnd(18)} ${line(w)}`);
    }
  } finally {
    await rt.close();
    for (const c of await rt.engine.listContainers({ [LABEL.runtime]: rt.config.runtimeName })) await rt.engine.removeContainer(c.id);
    rmSync(dir, { recursive: true, force: true });
  }
}
