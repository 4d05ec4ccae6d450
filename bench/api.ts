/**
 * What the HTTP API costs on top of the runtime, from one run on this machine:
 * (a) create → first stdout byte of an execute, through HTTP (POST /v1/sandboxes, then POST
 *     execute with `Accept: text/event-stream`) vs. the runtime called directly, all served
 *     from the warm pool (refilled before every sample), as p50/p95/p99 and the overhead; a
 *     bare Fastify server making the same two runtime calls behind the same two requests (no
 *     auth, hooks, validation or envelope) shows how much of the overhead is HTTP itself;
 *     and create → the JSON result of the execute (the default, non-streaming mode), the
 *     figure a client that waits for the exit status sees;
 * (b) `GET /v1/sandboxes/{id}` throughput with 32 keep-alive clients vs. a bare Fastify route
 *     doing the same store read with no auth, hooks or envelope, in rounds with the order
 *     rotated; the load comes from worker threads so it does not share the server's event loop.
 * Server logging is off in both, as in the tests.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import Fastify, { type FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { createDirector, type Director } from '../api/server.ts';
import { loadConfig, type Config } from '../runtime/config.ts';
import type { Runtime } from '../runtime/runtime.ts';
import { LABEL } from '../runtime/sandbox/hardening.ts';
import { toView } from '../runtime/sandbox/view.ts';
import { printTable, summarize, type Summary } from './stats.ts';

const IMAGE = process.env.BENCH_IMAGE ?? 'director/busybox:latest';
const SAMPLES = Number(process.env.BENCH_API_SAMPLES ?? 30);
const POOL = 10;
const CLIENTS = 32;
const LOAD_WORKERS = 2;
const SECONDS = Number(process.env.BENCH_API_SECONDS ?? 1);
const ROUNDS = Number(process.env.BENCH_API_ROUNDS ?? 10);
const PASSWORD = `bench-${randomBytes(12).toString('hex')}`;

const agent = new Agent({ keepAlive: true, maxSockets: 8 });

/** One JSON request over the keep-alive agent. */
export function http<T>(port: number, method: string, p: string, token: string, body?: unknown): Promise<{ status: number; body: T }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method,
        path: p,
        agent,
        headers: { authorization: `Bearer ${token}`, ...(payload ? { 'content-type': 'application/json' } : {}) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as T }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** POSTs an execute asking for SSE; resolves with the time the first `stdout` event arrived, after the stream ends. */
function firstStdout(port: number, p: string, token: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const payload = JSON.stringify({ command: ['echo', 'hi'] });
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: p,
        agent,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'text/event-stream' },
      },
      (res) => {
        let seen = '';
        let at = Number.NaN;
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          if (Number.isNaN(at)) {
            seen += d;
            if (seen.includes('event: stdout')) at = performance.now();
          }
        });
        res.on('end', () =>
          Number.isNaN(at) ? reject(new Error(`no stdout event (status ${res.statusCode}): ${seen.slice(0, 200)}`)) : resolve(at),
        );
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

export interface Server {
  rt: Runtime;
  director: Director;
  port: number;
  token: string;
  workspace: string;
  dir: string;
}

export async function startServer(overrides: Partial<Config> = {}): Promise<Server> {
  const dir = mkdtempSync(path.join(tmpdir(), 'director-bench-api-'));
  const config = loadConfig(
    {},
    {
      dataDir: dir,
      runtimeName: `bench-api-${randomBytes(3).toString('hex')}`,
      poolSize: POOL,
      poolImages: IMAGE,
      defaultImage: IMAGE,
      logLevel: 'silent',
      networking: 'off',
      rateLimitSandbox: 1_000_000,
      rateLimitGeneral: 1_000_000,
      rateLimitAuth: 1_000_000,
      ...overrides,
    },
  );
  const director = await createDirector({ config, logger: pino({ level: 'silent' }) });
  await director.start({ waitForPool: true });
  await director.auth.bootstrapAdmin(PASSWORD);
  await director.listen({ host: '127.0.0.1', port: 0 });
  const port = (director.app.server.address() as { port: number }).port;
  const session = await director.auth.login('admin', PASSWORD);
  return { rt: director.runtime, director, port, token: session.token, workspace: session.workspace, dir };
}

export async function stopServer(s: Server): Promise<void> {
  await s.director.close();
  const left = await s.rt.engine.listContainers({ [LABEL.runtime]: s.rt.config.runtimeName });
  await Promise.all(left.map((c) => s.rt.engine.removeContainer(c.id)));
  rmSync(s.dir, { recursive: true, force: true });
}

async function waitPoolFull(rt: Runtime): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (rt.sandboxes.deps.store.inStates(['running']).filter((r) => r.pooled).length >= POOL) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('pool did not refill');
}

/** Create → first stdout event, through a server at `port` whose sandbox routes live under `prefix`. */
async function viaHttp(s: Server, port = s.port, prefix = '/v1'): Promise<number> {
  const t0 = performance.now();
  const created = await http<{ data: { id: string } }>(port, 'POST', `${prefix}/sandboxes`, s.token, { image: IMAGE });
  if (created.status !== 201) throw new Error(`create answered ${created.status}`);
  const at = await firstStdout(port, `${prefix}/sandboxes/${created.body.data.id}/execute`, s.token);
  await s.rt.sandboxes.delete({ workspace: s.workspace, actor: 'bench' }, created.body.data.id);
  return at - t0;
}

/** Create → execute's JSON result (exit status and output) through the API. */
async function resultViaHttp(s: Server): Promise<number> {
  const t0 = performance.now();
  const created = await http<{ data: { id: string } }>(s.port, 'POST', '/v1/sandboxes', s.token, { image: IMAGE });
  if (created.status !== 201) throw new Error(`create answered ${created.status}`);
  const res = await http<{ data: { stdout: string } }>(s.port, 'POST', `/v1/sandboxes/${created.body.data.id}/execute`, s.token, {
    command: ['echo', 'hi'],
  });
  const t = performance.now() - t0;
  if (res.body.data.stdout !== 'hi\n') throw new Error(`execute answered ${res.status}`);
  await s.rt.sandboxes.delete({ workspace: s.workspace, actor: 'bench' }, created.body.data.id);
  return t;
}

/** Create → execute's exit status, the runtime called directly. */
async function resultDirect(s: Server): Promise<number> {
  const caller = { workspace: s.workspace, actor: 'bench' };
  const t0 = performance.now();
  const sb = await s.rt.sandboxes.create({ image: IMAGE }, caller);
  const r = await s.rt.executor.run(caller, sb.id, { command: ['echo', 'hi'] });
  const t = performance.now() - t0;
  if (r.stdout !== 'hi\n') throw new Error('no output');
  await s.rt.sandboxes.delete(caller, sb.id);
  return t;
}

async function direct(s: Server): Promise<number> {
  const caller = { workspace: s.workspace, actor: 'bench' };
  const t0 = performance.now();
  const sb = await s.rt.sandboxes.create({ image: IMAGE }, caller);
  let at = Number.NaN;
  for await (const c of s.rt.executor.stream(caller, sb.id, { command: ['echo', 'hi'] })) {
    if (c.type === 'stdout' && Number.isNaN(at)) at = performance.now();
  }
  await s.rt.sandboxes.delete(caller, sb.id);
  if (Number.isNaN(at)) throw new Error('no output');
  return at - t0;
}

/** Load generator, run in worker threads: `clients` keep-alive loops GETting `path` until the deadline. */
const LOAD = `
const { workerData, parentPort } = require('node:worker_threads');
const http = require('node:http');
const { port, path, headers, clients, durationMs } = workerData;
const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
const lat = [];
let ok = 0, bad = 0;
const until = Date.now() + durationMs;
const one = () => new Promise((resolve) => {
  const t = performance.now();
  const req = http.request({ host: '127.0.0.1', port, path, headers, agent }, (res) => {
    res.resume();
    res.on('end', () => { if (res.statusCode === 200) { ok++; lat.push(performance.now() - t); } else bad++; resolve(); });
  });
  req.on('error', () => { bad++; resolve(); });
  req.end();
});
const loop = async () => { while (Date.now() < until) await one(); };
Promise.all(Array.from({ length: clients }, loop)).then(() => { agent.destroy(); parentPort.postMessage({ ok, bad, lat }); });
`;

interface Load {
  rps: number;
  ok: number;
  bad: number;
  latency: Summary;
  lat: number[];
}

async function load(port: number, p: string, headers: Record<string, string>, durationMs: number): Promise<Load> {
  const per = CLIENTS / LOAD_WORKERS;
  const results = await Promise.all(
    Array.from(
      { length: LOAD_WORKERS },
      () =>
        new Promise<{ ok: number; bad: number; lat: number[] }>((resolve, reject) => {
          const w = new Worker(LOAD, { eval: true, workerData: { port, path: p, headers, clients: per, durationMs } });
          w.once('message', (m: { ok: number; bad: number; lat: number[] }) => resolve(m));
          w.once('error', reject);
        }),
    ),
  );
  const ok = results.reduce((a, r) => a + r.ok, 0);
  const lat = results.flatMap((r) => r.lat);
  return { rps: ok / (durationMs / 1000), ok, bad: results.reduce((a, r) => a + r.bad, 0), latency: summarize(lat), lat };
}

/** Several loads of `durationMs` each as one: requests per second over their total time, latencies pooled. */
function combine(loads: Load[], durationMs: number): Load {
  const ok = loads.reduce((a, l) => a + l.ok, 0);
  const lat = loads.flatMap((l) => l.lat);
  return { rps: ok / ((durationMs * loads.length) / 1000), ok, bad: loads.reduce((a, l) => a + l.bad, 0), latency: summarize(lat), lat };
}

/**
 * The floors: the same runtime calls with nothing in front of them. For (b), the store read and
 * view as JSON (serialized by `JSON.stringify`, where the API's route has a response schema and
 * fast-json-stringify: both take about 1 µs for this record here); for (a), create and a
 * streamed execute written as the same SSE events.
 */
async function bareServer(s: Server): Promise<FastifyInstance> {
  const bare = Fastify({ logger: false });
  const caller = { workspace: s.workspace, actor: 'bench' };
  bare.get<{ Params: { id: string } }>('/sandboxes/:id', async (req) => ({
    success: true,
    data: toView(s.rt.sandboxes.get(caller, req.params.id)),
  }));
  bare.post<{ Body: { image: string } }>('/sandboxes', async (req, reply) =>
    reply.code(201).send({ success: true, data: toView(await s.rt.sandboxes.create(req.body, caller)) }),
  );
  bare.post<{ Params: { id: string }; Body: { command: string[] } }>('/sandboxes/:id/execute', async (req, reply) => {
    reply.hijack();
    reply.raw.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8' });
    let n = 0;
    for await (const c of s.rt.executor.stream(caller, req.params.id, req.body)) {
      reply.raw.write(
        `id: ${++n}\nevent: ${c.type}\ndata: ${JSON.stringify(c.type === 'exit' ? { exitCode: c.exitCode } : { data: c.data })}\n\n`,
      );
    }
    reply.raw.end();
  });
  await bare.listen({ host: '127.0.0.1', port: 0 });
  return bare;
}

/** (a): create → first output and create → result, every path in turn each sample. */
async function createToOutput(s: Server, barePort: number): Promise<void> {
  // Rotate the paths so drift (engine load, page cache) hits all alike.
  const paths: Array<[string, () => Promise<number>]> = [
    ['runtime called directly', () => direct(s)],
    ['bare Fastify: same calls, same 2 requests', () => viaHttp(s, barePort, '')],
    ['API: POST /v1/sandboxes + SSE execute', () => viaHttp(s)],
    ['runtime directly, to the exit status', () => resultDirect(s)],
    ['API: POST /v1/sandboxes + JSON execute', () => resultViaHttp(s)],
  ];
  const samples: number[][] = paths.map(() => []);
  for (const [, run] of paths) {
    await waitPoolFull(s.rt);
    await run();
  }
  for (let i = 0; i < SAMPLES; i++) {
    for (let k = 0; k < paths.length; k++) {
      const j = (k + i) % paths.length;
      await waitPoolFull(s.rt);
      samples[j]!.push(await paths[j]![1]());
    }
  }
  const hits = (await s.rt.metrics.poolHits.get()).values[0]?.value ?? 0;
  const [ds, bs, hs, dr, hr] = samples.map((x) => summarize(x)) as [Summary, Summary, Summary, Summary, Summary];
  printTable('create → first stdout event, warm pool (ms)', [
    [paths[0]![0], ds, null],
    [paths[1]![0], bs, ds],
    [paths[2]![0], hs, ds],
  ]);
  const abs = hs.p50 - ds.p50;
  const pct = (abs / ds.p50) * 100;
  const http2 = bs.p50 - ds.p50;
  console.log(
    `overhead at p50: ${abs.toFixed(2)} ms (${pct.toFixed(1)}%); p95: ${(hs.p95 - ds.p95).toFixed(2)} ms; pool hits ${hits} of ${paths.length * (SAMPLES + 1)}`,
  );
  console.log(
    `  of which two HTTP requests with nothing in front (bare Fastify): ${http2.toFixed(2)} ms (${((http2 / ds.p50) * 100).toFixed(1)}%); Director's API layer: ${(hs.p50 - bs.p50).toFixed(2)} ms`,
  );
  console.log(`targets: overhead ≤ 10% (${pct <= 10 ? 'met' : 'MISSED'}) and ≤ 5 ms (${abs <= 5 ? 'met' : 'MISSED'}) at p50`);
  printTable('create → execute result (exit status), warm pool (ms)', [
    [paths[3]![0], dr, null],
    [paths[4]![0], hr, dr],
  ]);
}

/** (b): GET throughput, API vs the bare route. */
async function getThroughput(s: Server, barePort: number): Promise<void> {
  // One sandbox to read; both servers answer 200 with the same record.
  const target = await http<{ data: { id: string } }>(s.port, 'POST', '/v1/sandboxes', s.token, { image: IMAGE });
  const id = target.body.data.id;
  await waitPoolFull(s.rt); // no engine work in the background while measuring
  const key = await http<{ data: { key: string } }>(s.port, 'POST', '/v1/api-keys', s.token, { name: 'bench', scopes: ['sandboxes:read'] });
  const cases: Array<[string, number, string, Record<string, string>]> = [
    ['bare Fastify route (store read + JSON)', barePort, `/sandboxes/${id}`, {}],
    ['API, JWT', s.port, `/v1/sandboxes/${id}`, { authorization: `Bearer ${s.token}` }],
    ['API, API key', s.port, `/v1/sandboxes/${id}`, { authorization: `Bearer ${key.body.data.key}` }],
  ];
  // Rounds, with the order rotated each round, so drift on this shared machine (the other
  // core, timers, page cache) falls on all three cases alike; each case's figure is its
  // total over all rounds.
  const runs: Load[][] = cases.map(() => []);
  for (const [, port, p, headers] of cases) await load(port, p, headers, 1000);
  for (let r = 0; r < ROUNDS; r++) {
    for (let k = 0; k < cases.length; k++) {
      const i = (k + r) % cases.length;
      const [, port, p, headers] = cases[i]!;
      runs[i]!.push(await load(port, p, headers, SECONDS * 1000));
    }
  }
  const rows: Array<[string, Load]> = cases.map(([name], i) => [name, combine(runs[i]!, SECONDS * 1000)]);
  const perRound = runs[1]!.map((l, r) => (l.rps / runs[0]![r]!.rps).toFixed(2)).join(', ');
  const floor = rows[0]![1].rps;
  console.log(`\nGET /v1/sandboxes/{id}, ${CLIENTS} concurrent keep-alive clients, ${ROUNDS} rounds of ${SECONDS} s per case`);
  console.log(
    `${'case'.padEnd(44)} ${'req/s'.padStart(9)} ${'p50 ms'.padStart(7)} ${'p99 ms'.padStart(7)} ${'errors'.padStart(7)}  ratio vs bare`,
  );
  for (const [name, r] of rows) {
    console.log(
      `${name.padEnd(44)} ${r.rps.toFixed(0).padStart(9)} ${r.latency.p50.toFixed(2).padStart(7)} ${r.latency.p99.toFixed(2).padStart(7)} ${String(r.bad).padStart(7)}  ${(r.rps / floor).toFixed(3)}`,
    );
  }
  const ratio = rows[1]![1].rps / floor;
  console.log(`API (JWT) vs bare per round: ${perRound}`);
  console.log(`target: API (JWT) ≥ 0.8× bare (${ratio.toFixed(3)}, ${ratio >= 0.8 ? 'met' : 'MISSED'})`);
}

export async function benchApi(): Promise<void> {
  console.log(
    `API overhead (image ${IMAGE}, warm pool of ${POOL}, ${SAMPLES} samples each; GET load: ${CLIENTS} clients, ${ROUNDS} rounds of ${SECONDS} s per case)`,
  );
  const s = await startServer();
  let bare: FastifyInstance | null = null;
  try {
    bare = await bareServer(s);
    const barePort = (bare.server.address() as { port: number }).port;
    await createToOutput(s, barePort);
    await getThroughput(s, barePort);
  } finally {
    // Our keep-alive sockets go first: a server's close() waits for the connections still open to
    // it, and the agent keeps its idle ones open (to the bare server and to Director's) indefinitely.
    agent.destroy();
    await bare?.close();
    await stopServer(s);
  }
}
