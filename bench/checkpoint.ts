/**
 * Checkpoint create and restore of a sandbox workspace of 1 MB and 50 MB (many small files and a
 * few large ones), against the floor measured in the same sandbox in the same run: plain `tar`
 * of the same files (out of the sandbox into one file on the host, fsync'd; back in with
 * `tar -x`), started the same way as Director's reader (the sandbox's pre-started exec launcher).
 * Also the second checkpoint of an unchanged workspace, against the first. `DIRECTOR_EXEC_AGENT=on`
 * (or off) runs both Director and the floor through the sandbox's exec agent (or its launcher /
 * `docker exec`); the default is the server's; `DIRECTOR_AGENT_BINARY` picks another agent build.
 * `BENCH_CKP_WORKLOADS` (`1 MB`, `50 MB`, comma-separated) runs only those, `BENCH_CKP_ROUNDS`
 * sets the rounds (default 15 for 1 MB, 7 for 50 MB). With the agent, a checkpoint's capture
 * and restore are each one process in the sandbox (`/.director/agent tree capture|restore`,
 * images/agent/tree.c), as the floor's `tar` is; without it, the sh script of
 * runtime/sandbox/tree-script.ts (sh, find, stat, xargs, tar; tar, mv, rm on restore).
 *
 * Every round: all checkpoints are deleted (so the first one reads and stores everything); one
 * exec that neither side is timed on (the first exec after the round's pause pays the machine's
 * wake-up, and only one side of a pair would); the first checkpoint and the floor's tar out (one
 * right after the other, in rotating order); the second checkpoint (nothing changed); a restore
 * after one small file changed; then the workspace is emptied before each of the two full
 * restores (Director's, then the floor's, or the other way round). Besides the ratio of the
 * medians, each round's own ratios are printed (their median): the two sides of a pair ran
 * within milliseconds of each other. Files are written more than a second before a checkpoint
 * lists them, as in any workspace not written to in the very last second (a file changed in the
 * second before a listing is read again next time: see orchestration/checkpoints/manifest.ts):
 * hence the pause of two seconds after each round's restores.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, mkdtempSync, rmSync } from 'node:fs';
import fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pino } from 'pino';
import tarStream from 'tar-stream';
import { ContextStore } from '../orchestration/context/store.ts';
import { DepartmentStore } from '../orchestration/departments/store.ts';
import { createCheckpointService, type CheckpointService } from '../orchestration/checkpoints/service.ts';
import { SessionService } from '../orchestration/sessions/service.ts';
import { SessionStore } from '../orchestration/sessions/store.ts';
import { loadConfig } from '../runtime/config.ts';
import { createRuntime, type Runtime } from '../runtime/runtime.ts';
import { LABEL } from '../runtime/sandbox/hardening.ts';
import type { SandboxRecord } from '../runtime/store/sandboxes.ts';
import { printTable, summarize, timeIt, type Summary } from './stats.ts';

const IMAGE = process.env.BENCH_IMAGE ?? 'director/busybox:latest';
/** Rounds per workload: BENCH_CKP_ROUNDS, or the workload's own (a 1 MB round is short and its times swing most). */
const roundsOf = (w: Workload) => Number(process.env.BENCH_CKP_ROUNDS ?? w.rounds);
/** Only the named workloads (comma-separated, e.g. `1 MB`); default all. */
const ONLY = process.env.BENCH_CKP_WORKLOADS?.split(',').map((s) => s.trim());
const caller = { workspace: 'wsp_bench', actor: 'bench' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Workload {
  name: string;
  rounds: number;
  small: { count: number; bytes: number; perDir: number };
  large: { count: number; bytes: number };
}

const WORKLOADS: Workload[] = [
  { name: '1 MB', rounds: 15, small: { count: 240, bytes: 3 * 1024, perDir: 40 }, large: { count: 2, bytes: 160 * 1024 } },
  { name: '50 MB', rounds: 7, small: { count: 2000, bytes: 4 * 1024, perDir: 100 }, large: { count: 4, bytes: 10_500_000 } },
];

/** The workspace as a tar (random content: nothing is compressible or shared). */
async function workspaceTar(w: Workload): Promise<{ tar: Buffer; bytes: number }> {
  const pack = tarStream.pack();
  let bytes = 0;
  for (let i = 0; i < w.small.count; i++) {
    const body = randomBytes(w.small.bytes);
    bytes += body.length;
    pack.entry({ name: `src/d${Math.floor(i / w.small.perDir)}/f${i}.txt`, mode: 0o644 }, body);
  }
  for (let i = 0; i < w.large.count; i++) {
    const body = randomBytes(w.large.bytes);
    bytes += body.length;
    pack.entry({ name: `data/large${i}.bin`, mode: 0o644 }, body);
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return { tar: Buffer.concat(chunks), bytes };
}

async function exec(
  rt: Runtime,
  sb: SandboxRecord,
  cmd: string[],
  stdin?: Readable,
  stdout?: (s: Readable) => Promise<void>,
): Promise<void> {
  // The same way in as Director's own reader: the sandbox's pre-started launcher when armed.
  const h = await rt.executor.open(sb.containerId!, cmd);
  if (!stdin) h.stdin?.end();
  const err: Buffer[] = [];
  h.stderr.on('data', (b: Buffer) => err.push(b));
  const out = stdout ? stdout(h.stdout) : (async () => void (await h.stdout.resume().toArray()))();
  if (stdin) await pipeline(stdin, h.stdin!);
  await out;
  const { exitCode } = await h.wait();
  if (exitCode !== 0) throw new Error(`${cmd.join(' ')} exited ${exitCode}: ${Buffer.concat(err).toString()}`);
}

/** The floor: tar of the workspace out of the sandbox into one host file, fsync'd. */
async function floorCreate(rt: Runtime, sb: SandboxRecord, file: string): Promise<void> {
  await exec(rt, sb, ['tar', '-c', '-f', '-', '-C', '/workspace', '.'], undefined, async (out) => {
    const fh = await fs.open(file, 'w', 0o600);
    try {
      for await (const c of out) await fh.write(c as Buffer);
      await fh.sync();
    } finally {
      await fh.close();
    }
  });
}

const floorRestore = (rt: Runtime, sb: SandboxRecord, file: string) =>
  exec(rt, sb, ['tar', '-x', '-o', '-f', '-', '-C', '/workspace'], createReadStream(file));
const wipe = (rt: Runtime, sb: SandboxRecord) => exec(rt, sb, ['sh', '-c', 'rm -rf /workspace/* /workspace/.[!.]*; true']);

function services(rt: Runtime): { sessions: SessionService; checkpoints: CheckpointService } {
  const sessionStore = new SessionStore(rt.db);
  const departmentStore = new DepartmentStore(rt.db);
  const contextStore = new ContextStore(rt.db);
  const sessions = new SessionService({
    store: sessionStore,
    events: rt.events,
    clock: rt.clock,
    config: rt.config,
    logger: rt.logger,
    countDepartments: (id) => departmentStore.countOf(id),
    countTasks: () => 0,
  });
  return { sessions, checkpoints: createCheckpointService({ runtime: rt, sessions, sessionStore, departmentStore, contextStore }) };
}

async function benchWorkload(rt: Runtime, s: ReturnType<typeof services>, w: Workload, hostDir: string): Promise<void> {
  const session = s.sessions.create(caller, { name: `bench ${w.name}` });
  const sb = await rt.sandboxes.create({ image: IMAGE, resourceLimits: { disk: 512, memory: 1024 } }, caller, {
    owner: { sessionId: session.id, departmentId: null, environmentId: null },
  });
  const { tar, bytes } = await workspaceTar(w);
  await rt.files.upload(caller, sb.id, '/workspace', Readable.from([tar]), 'tar');
  const floorFile = path.join(hostDir, `floor-${w.name.replace(/\W/g, '')}.tar`);
  const samples: Record<'floorCreate' | 'first' | 'second' | 'floorRestore' | 'restore' | 'restoreOne', number[]> = {
    floorCreate: [],
    first: [],
    second: [],
    floorRestore: [],
    restore: [],
    restoreOne: [],
  };
  let checkpointId = '';
  let stored = 0;
  await sleep(2100);
  const rounds = roundsOf(w);
  for (let round = 0; round < rounds; round++) {
    for (const c of s.checkpoints.list(caller, { sessionId: session.id, limit: 500, offset: 0 }).items) s.checkpoints.delete(caller, c.id);
    // Timed for neither side: the first exec after the pause pays the machine's wake-up.
    await exec(rt, sb, ['true']);
    const floorFirst = round % 2 === 1;
    // The floor right before or right after the first checkpoint (rotating): the pair sees the same machine.
    if (floorFirst) samples.floorCreate.push(await timeIt(() => floorCreate(rt, sb, floorFile)));
    samples.first.push(
      await timeIt(async () => void (checkpointId = (await s.checkpoints.create(caller, { sessionId: session.id, name: 'first' })).id)),
    );
    if (!floorFirst) samples.floorCreate.push(await timeIt(() => floorCreate(rt, sb, floorFile)));
    samples.second.push(
      await timeIt(async () => {
        const c = await s.checkpoints.create(caller, { sessionId: session.id, name: 'second' });
        stored = c.files.reduce((n, x) => n + x.mounts.reduce((m, y) => m + y.newBytes, 0), 0);
      }),
    );
    // One small file changed since the checkpoint: only it is put back (no floor: plain tar has no way to do less).
    await exec(rt, sb, ['sh', '-c', 'echo changed > /workspace/src/d0/f0.txt']);
    const only = { includeState: false, includeContext: false, includeMessages: false };
    samples.restoreOne.push(await timeIt(() => s.checkpoints.restore(caller, checkpointId, only)));
    const ours = async () => {
      await wipe(rt, sb);
      samples.restore.push(await timeIt(() => s.checkpoints.restore(caller, checkpointId, only)));
    };
    const floor = async () => {
      await wipe(rt, sb);
      samples.floorRestore.push(await timeIt(() => floorRestore(rt, sb, floorFile)));
    };
    if (floorFirst) {
      await floor();
      await ours();
    } else {
      await ours();
      await floor();
    }
    // Restored files are new files: the next first checkpoint lists them more than a second later.
    await sleep(2100);
  }
  const sum = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, summarize(v)])) as Record<keyof typeof samples, Summary>;
  const files = w.small.count + w.large.count;
  printTable(`checkpoint of a ${w.name} workspace (${files} files, ${bytes} bytes; ${rounds} rounds)`, [
    ['plain tar out of the sandbox (floor)', sum.floorCreate, null],
    ['checkpoint, first (everything read and stored)', sum.first, sum.floorCreate],
    ['checkpoint, second (unchanged workspace)', sum.second, sum.first],
    ['plain tar into the emptied sandbox (floor)', sum.floorRestore, null],
    ['restore into the emptied sandbox', sum.restore, sum.floorRestore],
    ['restore after one small file changed', sum.restoreOne, sum.floorRestore],
  ]);
  // Each round's own ratio (a checkpoint against the floor measured next to it): a busy spell that
  // slows one round's pair does not pull one side's median away from the other's.
  const paired = (a: number[], b: number[]) => summarize(a.map((x, i) => x / b[i]!)).p50.toFixed(2);
  console.log(
    `paired ratios (p50 of each round's own): create ${paired(samples.first, samples.floorCreate)}×, restore ${paired(samples.restore, samples.floorRestore)}×, second ${paired(samples.second, samples.first)}×`,
  );
  console.log(
    `ratios p50: create ${(sum.first.p50 / sum.floorCreate.p50).toFixed(2)}× tar (target ≤ 1.5), restore ${(sum.restore.p50 / sum.floorRestore.p50).toFixed(2)}× tar (target ≤ 1.5), second ${(sum.second.p50 / sum.first.p50).toFixed(2)}× first (target ≤ 0.2); second checkpoint stored ${stored} new bytes`,
  );
  await rt.sandboxes.delete(caller, sb.id);
}

export async function benchCheckpoint(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'director-bench-ckp-'));
  // Only the agent switch and the agent executable (to compare builds) come from the environment (validated like the server's).
  const config = loadConfig(
    { DIRECTOR_EXEC_AGENT: process.env.DIRECTOR_EXEC_AGENT, DIRECTOR_AGENT_BINARY: process.env.DIRECTOR_AGENT_BINARY },
    {
      dataDir: dir,
      runtimeName: `bench-${randomBytes(3).toString('hex')}`,
      poolSize: 0,
      poolImages: IMAGE,
      defaultImage: IMAGE,
      logLevel: 'silent',
      networking: 'off',
    },
  );
  const rt = createRuntime({ config, logger: pino({ level: 'silent' }) });
  await rt.start();
  const s = services(rt);
  try {
    await s.checkpoints.start();
    await s.sessions.start();
    console.log(`checkpoint create and restore vs plain tar in the same sandbox (image ${IMAGE}, exec agent ${rt.config.execAgent})`);
    for (const w of WORKLOADS.filter((x) => !ONLY || ONLY.includes(x.name))) await benchWorkload(rt, s, w, dir);
  } finally {
    s.sessions.close();
    await rt.close();
    const left = await rt.engine.listContainers({ [LABEL.runtime]: rt.config.runtimeName });
    await Promise.all(left.map((c) => rt.engine.removeContainer(c.id)));
    rmSync(dir, { recursive: true, force: true });
  }
}
