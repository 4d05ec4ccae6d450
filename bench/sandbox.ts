/**
 * Sandbox create → first exec output, from one run on this machine:
 * - the raw floor: plain dockerode create + start + exec `echo` (first output byte) + remove;
 * - Director cold (runtime called directly) and from the warm pool;
 * each sequential and with 20 concurrent creates, as p50/p95/p99 with the ratio to the floor.
 */
import Docker from 'dockerode';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { loadConfig } from '../runtime/config.ts';
import { createRuntime, type Runtime } from '../runtime/runtime.ts';
import { LABEL } from '../runtime/sandbox/hardening.ts';
import { printTable, summarize, type Summary } from './stats.ts';

const IMAGE = process.env.BENCH_IMAGE ?? 'director/busybox:latest';
const SEQ = Number(process.env.BENCH_SEQ ?? 30);
const CONC = Number(process.env.BENCH_CONCURRENCY ?? 20);
const caller = { workspace: 'wsp_bench' };
const docker = new Docker();

/** The floor: what any runtime on this engine must at least spend. */
async function rawOnce(label: string): Promise<number> {
  const t0 = performance.now();
  const c = await docker.createContainer({
    Image: IMAGE,
    Cmd: ['sleep', 'infinity'],
    Labels: { 'director.bench': label },
    HostConfig: { Init: true },
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

async function directorOnce(rt: Runtime): Promise<number> {
  const t0 = performance.now();
  const sb = await rt.sandboxes.create({ image: IMAGE }, caller);
  let ms = Number.NaN;
  for await (const chunk of rt.executor.stream(caller, sb.id, { command: ['echo', 'hi'] })) {
    if (chunk.type === 'stdout' && Number.isNaN(ms)) ms = performance.now() - t0;
  }
  // Removed inside the sample, like the floor's own remove, so it never overlaps the next create.
  await rt.sandboxes.delete(caller, sb.id);
  if (Number.isNaN(ms)) throw new Error('no output');
  return ms;
}

async function run(times: number, conc: number, fn: () => Promise<number>): Promise<Summary> {
  const out: number[] = [];
  let attempted = 0;
  for (let i = 0; i < times; i += conc) {
    const batch = await Promise.allSettled(
      Array.from({ length: Math.min(conc, times - i) }, () => {
        attempted++;
        return fn();
      }),
    );
    for (const r of batch)
      if (r.status === 'fulfilled') out.push(r.value);
      else console.error('  failure:', (r.reason as Error).message);
  }
  return summarize(out, attempted);
}

function runtime(poolSize: number, maxSandboxes = 200): { rt: Runtime; dir: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'director-bench-'));
  const config = loadConfig(
    {},
    {
      dataDir: dir,
      runtimeName: `bench-${randomBytes(3).toString('hex')}`,
      poolSize,
      poolImages: IMAGE,
      defaultImage: IMAGE,
      maxSandboxes,
      logLevel: 'silent',
      networking: 'off',
    },
  );
  return { rt: createRuntime({ config, logger: pino({ level: 'silent' }) }), dir };
}

async function closeRuntime(rt: Runtime, dir: string) {
  await rt.close();
  const left = await rt.engine.listContainers({ [LABEL.runtime]: rt.config.runtimeName });
  await Promise.all(left.map((c) => rt.engine.removeContainer(c.id)));
  rmSync(dir, { recursive: true, force: true });
}

async function waitPoolFull(rt: Runtime, size: number) {
  for (let i = 0; i < 600; i++) {
    const ready = rt.sandboxes.deps.store.inStates(['running']).filter((r) => r.pooled).length;
    if (ready >= size) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('pool did not fill');
}

export async function benchSandbox(): Promise<void> {
  console.log(`sandbox create → first exec output (image ${IMAGE}, ${SEQ} sequential, ${CONC} concurrent)`);
  await rawOnce('warmup');
  const rawSeq = await run(SEQ, 1, () => rawOnce('seq'));
  const rawConc = await run(CONC * 2, CONC, () => rawOnce('conc'));

  const cold = runtime(0);
  await cold.rt.start();
  await directorOnce(cold.rt);
  const coldSeq = await run(SEQ, 1, () => directorOnce(cold.rt));
  const coldConc = await run(CONC * 2, CONC, () => directorOnce(cold.rt));
  await closeRuntime(cold.rt, cold.dir);

  // Warm: each sequential sample waits until the pool is full again, so every create is a hit.
  const warm = runtime(CONC);
  await warm.rt.start({ waitForPool: true });
  const warmSamples: number[] = [];
  for (let i = 0; i < SEQ; i++) {
    await waitPoolFull(warm.rt, 1);
    warmSamples.push(await directorOnce(warm.rt));
  }
  const warmSeq = summarize(warmSamples);
  const warmConcSamples: number[] = [];
  let attempted = 0;
  for (let round = 0; round < 2; round++) {
    await waitPoolFull(warm.rt, CONC);
    const batch = await Promise.allSettled(
      Array.from({ length: CONC }, () => {
        attempted++;
        return directorOnce(warm.rt);
      }),
    );
    for (const r of batch) if (r.status === 'fulfilled') warmConcSamples.push(r.value);
  }
  const warmConc = summarize(warmConcSamples, attempted);
  const hits = (await warm.rt.metrics.poolHits.get()).values[0]?.value ?? 0;
  await closeRuntime(warm.rt, warm.dir);

  printTable('create → first exec output (ms)', [
    ['raw dockerode floor, sequential', rawSeq, null],
    ['director cold, sequential', coldSeq, rawSeq],
    ['director warm pool, sequential', warmSeq, rawSeq],
    [`raw dockerode floor, ${CONC} concurrent`, rawConc, null],
    [`director cold, ${CONC} concurrent`, coldConc, rawConc],
    [`director warm pool, ${CONC} concurrent`, warmConc, rawConc],
  ]);
  console.log(`pool hits: ${hits} of ${SEQ + attempted} warm creates`);
  console.log(
    `targets: warm p50 ≤ 60 ms (${warmSeq.p50.toFixed(1)}), cold ≤ 1.15× floor (${(coldSeq.p50 / rawSeq.p50).toFixed(3)}×), 100% success at ${CONC} concurrent (cold ${coldConc.ok}/${coldConc.n}, warm ${warmConc.ok}/${warmConc.n})`,
  );
}
