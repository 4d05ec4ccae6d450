/**
 * What the workflow engine costs, from one run on this machine (in-process: no HTTP):
 * (a) a three-step workflow (execute `true`, verify `tests pass`, checkpoint of a small
 *     workspace) in an existing sandbox, start → completed, against the same three operations
 *     called directly (the runtime's Executor, the same criterion judged, the same checkpoint
 *     implementation), in rounds whose order alternates; the figure is the workflow's overhead
 *     per step (paired samples: workflow − direct, / 3), target ≤ 10 ms p50;
 * (b) 50 workflows started at once, each in its own sandbox (made and removed by the run):
 *     all must complete; p50/p95 run time (start → completed; the sandbox's removal comes after)
 *     and the engine's share of it (time inside sandbox create, executes and checkpoint
 *     transfers, attributed to each run), against the same operations run directly at the same
 *     concurrency (the floor).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pino } from 'pino';
import { createOrchestration, type Orchestration } from '../orchestration/orchestration.ts';
import { compileCriteria, judge } from '../orchestration/workflows/criteria.ts';
import type { StepExecutor, WorkflowCheckpoints } from '../orchestration/workflows/ports.ts';
import { loadConfig } from '../runtime/config.ts';
import type { SecurityEvent } from '../runtime/events.ts';
import { createRuntime, type Runtime } from '../runtime/runtime.ts';
import { LABEL } from '../runtime/sandbox/hardening.ts';
import { printTable, summarize } from './stats.ts';

const IMAGE = process.env.BENCH_IMAGE ?? 'director/busybox:latest';
const ROUNDS = Number(process.env.BENCH_WF_ROUNDS ?? 10);
const PER_ROUND = Number(process.env.BENCH_WF_PER_ROUND ?? 5);
const CONCURRENT = Number(process.env.BENCH_WF_CONCURRENT ?? 50);
const caller = { workspace: 'wsp_bench', actor: 'bench' };
const STEPS = [
  { type: 'execute', command: 'true' },
  { type: 'verify', criteria: 'tests pass' },
  { type: 'checkpoint', name: 'bench' },
];

/** Time spent inside engine-bound operations, per run (attributed through async context). */
interface Spent {
  engineMs: number;
}
const spent = new AsyncLocalStorage<Spent>();
const timed = <A extends unknown[], R>(fn: (...a: A) => Promise<R>) =>
  async function (this: unknown, ...a: A): Promise<R> {
    const t0 = performance.now();
    try {
      return await fn.apply(this, a);
    } finally {
      const s = spent.getStore();
      if (s) s.engineMs += performance.now() - t0;
    }
  };

interface Bench {
  rt: Runtime;
  orch: Orchestration;
  dir: string;
  executor: StepExecutor;
  checkpoints: WorkflowCheckpoints;
  ended: Map<string, (e: SecurityEvent) => void>;
}

async function setup(): Promise<Bench> {
  const dir = mkdtempSync(path.join(tmpdir(), 'director-bench-wf-'));
  const config = loadConfig(
    {},
    {
      dataDir: dir,
      runtimeName: `bench-wf-${randomBytes(3).toString('hex')}`,
      poolSize: 0,
      defaultImage: IMAGE,
      maxSandboxes: 200,
      // Every run and every direct call takes a checkpoint in the same session.
      checkpointMaxPerSession: 100_000,
      workflowMaxRunning: 100,
      logLevel: 'silent',
      networking: 'off',
    },
  );
  const logger = pino({ level: 'silent' });
  const rt = createRuntime({ config, logger });
  await rt.start();
  // Engine-bound operations, measured per run: making a sandbox, executes, checkpoint transfers.
  const executor: StepExecutor = { run: timed(rt.executor.run.bind(rt.executor)) };
  // Workflow checkpoints are the checkpoints area's, limited to the run's sandbox: the same ones are timed and called directly.
  let checkpoints: WorkflowCheckpoints | null = null;
  rt.sandboxes.create = timed(rt.sandboxes.create.bind(rt.sandboxes));
  const orch = createOrchestration({
    db: rt.db,
    config: rt.config,
    clock: rt.clock,
    logger,
    events: rt.events,
    sandboxes: rt.sandboxes,
    sandboxStore: rt.sandboxes.deps.store,
    files: rt.files,
    networks: null,
    executor: rt.executor,
    stepExecutor: executor,
    workflowCheckpoints: (c) => (checkpoints = { capture: timed(c.capture.bind(c)), restore: timed(c.restore.bind(c)) }),
  });
  if (!checkpoints) throw new Error('the orchestration did not hand over its workflow checkpoints');
  await orch.start();
  const ended = new Map<string, (e: SecurityEvent) => void>();
  rt.events.subscribe((e) => {
    if (e.type !== 'workflow_completed' && e.type !== 'workflow_failed') return;
    ended.get(String(e.details.workflowId))?.(e);
  });
  return { rt, orch, dir, executor, checkpoints, ended };
}

async function teardown(b: Bench): Promise<void> {
  await b.orch.close();
  await b.rt.close();
  const left = await b.rt.engine.listContainers({ [LABEL.runtime]: b.rt.config.runtimeName });
  await Promise.all(left.map((c) => b.rt.engine.removeContainer(c.id)));
  rmSync(b.dir, { recursive: true, force: true });
}

/** A small workspace: 20 files of 1 KiB. */
async function fillWorkspace(b: Bench, sandboxId: string): Promise<void> {
  await b.rt.files.upload(caller, sandboxId, '/workspace/seed', Readable.from([Buffer.alloc(1024, 'a')]), 'file');
  await b.rt.executor.run(caller, sandboxId, {
    command: 'for i in $(seq 1 19); do cp /workspace/seed /workspace/f$i; done',
    timeout: 10_000,
  });
}

/** Starts a workflow's next run; resolves with its wall time (start → ended event) and the engine time inside it. */
function runOnce(b: Bench, workflowId: string): Promise<{ ms: number; engineMs: number; status: string }> {
  const s: Spent = { engineMs: 0 };
  return spent.run(s, () => {
    const t0 = performance.now();
    return new Promise((resolve, reject) => {
      b.ended.set(workflowId, (e) => {
        b.ended.delete(workflowId);
        resolve({ ms: performance.now() - t0, engineMs: s.engineMs, status: String(e.details.status) });
      });
      try {
        b.orch.workflows.startRun(caller, workflowId, {});
      } catch (err) {
        b.ended.delete(workflowId);
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
  });
}

/** The same three operations called directly. */
async function directOnce(b: Bench, sessionId: string, sandboxId: string): Promise<number> {
  const t0 = performance.now();
  const r = await b.executor.run(caller, sandboxId, { command: 'true', timeout: 30_000 });
  const [criterion] = compileCriteria('tests pass', 1, STEPS);
  if (!judge(criterion!, { exitCode: r.exitCode, timedOut: r.timedOut, stdout: r.stdout }).ok) throw new Error('true failed');
  await b.checkpoints.capture(caller, sessionId, sandboxId, 'bench', '', {});
  return performance.now() - t0;
}

async function overhead(b: Bench): Promise<void> {
  const session = b.orch.sessions.create(caller, { name: 'bench' });
  const sbx = await b.orch.sandboxes.create(caller, { sessionId: session.id, image: IMAGE });
  await fillWorkspace(b, sbx.id);
  const wf = b.orch.workflows.create(caller, { sessionId: session.id, name: 'bench', sandboxId: sbx.id, steps: STEPS });
  // Warm up both paths.
  await directOnce(b, session.id, sbx.id);
  await runOnce(b, wf.id);
  const direct: number[] = [];
  const flow: number[] = [];
  const perStep: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    for (let i = 0; i < PER_ROUND; i++) {
      // Paired and alternated: each pair runs back to back, the order flips every round.
      let d: number;
      let w: number;
      if (round % 2 === 0) {
        d = await directOnce(b, session.id, sbx.id);
        w = (await runOnce(b, wf.id)).ms;
      } else {
        w = (await runOnce(b, wf.id)).ms;
        d = await directOnce(b, session.id, sbx.id);
      }
      direct.push(d);
      flow.push(w);
      perStep.push((w - d) / 3);
    }
  }
  const sd = summarize(direct);
  const sw = summarize(flow);
  const so = summarize(perStep);
  printTable(`(a) three-step workflow vs the same operations called directly (${ROUNDS} rounds × ${PER_ROUND}, ms)`, [
    ['direct: execute true + judge + checkpoint', sd, null],
    ['workflow: start → completed', sw, sd],
  ]);
  console.log(
    `workflow overhead per step (paired, (workflow − direct) / 3): p50 ${so.p50.toFixed(2)} ms, p95 ${so.p95.toFixed(2)} ms, mean ${so.mean.toFixed(2)} ms — target ≤ 10 ms p50: ${so.p50 <= 10 ? 'met' : 'missed'}`,
  );
}

async function concurrent(b: Bench): Promise<void> {
  const session = b.orch.sessions.create(caller, { name: 'bench-concurrent' });
  // The floor: the same work at the same concurrency, called directly (make a sandbox, execute, checkpoint, remove).
  const floorRuns = await Promise.allSettled(
    Array.from({ length: CONCURRENT }, async () => {
      const t0 = performance.now();
      const sbx = await b.orch.sandboxes.create(caller, { sessionId: session.id, image: IMAGE });
      await directOnce(b, session.id, sbx.id);
      const ms = performance.now() - t0;
      await b.rt.sandboxes.deps.teardown.destroy(b.rt.sandboxes.deps.store.byId(sbx.id)!, 'bench');
      return ms;
    }),
  );
  const floor = floorRuns.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  for (const r of floorRuns) if (r.status === 'rejected') console.error('  floor failure:', (r.reason as Error).message);
  const wfs = Array.from({ length: CONCURRENT }, (_, i) =>
    b.orch.workflows.create(caller, { sessionId: session.id, name: `c${i}`, sandbox: { image: IMAGE }, steps: STEPS }),
  );
  const t0 = performance.now();
  const results = await Promise.allSettled(wfs.map((wf) => runOnce(b, wf.id)));
  const wall = performance.now() - t0;
  const ok = results.flatMap((r) => (r.status === 'fulfilled' && r.value.status === 'completed' ? [r.value] : []));
  for (const r of results) {
    if (r.status === 'rejected') console.error('  failure:', (r.reason as Error).message);
    else if (r.value.status !== 'completed') console.error('  run ended', r.value.status);
  }
  const lost = wfs.filter((wf) => b.orch.workflows.status(caller, wf.id).status !== 'completed').length;
  const sf = summarize(floor, CONCURRENT);
  const sr = summarize(
    ok.map((r) => r.ms),
    CONCURRENT,
  );
  const share = summarize(ok.map((r) => (100 * r.engineMs) / r.ms));
  printTable(`(b) ${CONCURRENT} concurrent workflows, each in its own sandbox (ms)`, [
    ['direct: make sandbox + the three operations', sf, null],
    ['workflow runs: start → completed', sr, sf],
  ]);
  console.log(
    `completed ${ok.length}/${CONCURRENT}, not completed per the store: ${lost}; all ${CONCURRENT} done in ${(wall / 1000).toFixed(1)} s; engine share of a run: p50 ${share.p50.toFixed(0)} %, p95 ${share.p95.toFixed(0)} % (time inside sandbox create, executes and checkpoint transfers)`,
  );
}

export async function benchWorkflow(): Promise<void> {
  console.log(`workflows (image ${IMAGE})`);
  const b = await setup();
  try {
    await overhead(b);
    await concurrent(b);
  } finally {
    await teardown(b);
  }
}
