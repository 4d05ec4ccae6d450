/**
 * Event pipeline: sustained events per second from producers, through the store, to 100
 * WebSocket subscribers, with zero loss checked per subscriber (every seq exactly once); and
 * the end-to-end latency from a denied packet (sent by a sandbox) to the `security_event`
 * message on a subscriber's socket.
 */
import { Worker } from 'node:worker_threads';
import WebSocket from 'ws';
import { startApi } from '../test/helpers/api.ts';
import { summarize } from './stats.ts';

const SUBSCRIBERS = Number(process.env.BENCH_WS_SUBSCRIBERS ?? 100);
/** Seconds each paced run produces for. */
const SECONDS = Number(process.env.BENCH_EVENTS_SECONDS ?? 5);
/** Paced rates tried, events/s: the figure is the highest one delivered to every subscriber with zero loss. */
const RATES = (process.env.BENCH_EVENTS_RATES ?? '10000,20000,22500,25000').split(',').map(Number);
/** Subscribe with `batch: true` (set BENCH_WS_BATCH=0 for one frame per event). */
const BATCH = process.env.BENCH_WS_BATCH !== '0';
/** Subscribers JSON.parse every frame (BENCH_WS_PARSE=1) or find each event's cursor by scanning the bytes (default: the server is measured, not the client's parser). */
const PARSE = process.env.BENCH_WS_PARSE === '1';

async function subscriber(
  url: string,
  token: string,
  onMessage: (m: {
    type: string;
    data: { id?: string; seq?: number; type?: string; details?: Record<string, unknown> };
    cursor?: string;
  }) => void,
): Promise<WebSocket> {
  const ws = new WebSocket(`${url.replace('http', 'ws')}/v1/ws`, { headers: { authorization: `Bearer ${token}` } });
  await new Promise<void>((resolve, reject) => {
    ws.once('error', reject);
    ws.on('message', (raw: Buffer) => {
      const m = JSON.parse(raw.toString()) as { type: string; data: never; cursor?: string };
      if (m.type === 'subscribed') resolve();
      else onMessage(m);
    });
    ws.once('open', () => ws.send(JSON.stringify({ type: 'subscribe', channel: 'security' })));
  });
  return ws;
}

type WorkerReport =
  | { type: 'ready' }
  | { type: 'done'; at: number; lost: number; outOfOrder: number }
  | { type: 'status'; lost: number; outOfOrder: number; finished: number; closedEarly: Record<string, number> };

interface RunResult {
  rate: number;
  produced: number;
  /** Events per second until the last subscriber had the last event; null when some never did. */
  delivered: number | null;
  lost: number;
  outOfOrder: number;
  closedEarly: Record<string, number>;
}

/**
 * One paced run: `rate` events/s for {@link SECONDS} seconds, emitted in 10 ms slices (as a busy
 * host would produce them: bursts, not one at a time), then waits until every subscriber has
 * every event or 30 s pass.
 */
async function pacedRun(rate: number): Promise<RunResult> {
  const EVENTS = Math.round(rate * SECONDS);
  const api = await startApi({ networking: 'off' });
  const worker = new Worker(new URL('./events-subscribers.ts', import.meta.url), {
    workerData: { url: api.url, token: api.adminToken, subscribers: SUBSCRIBERS, events: EVENTS, batch: BATCH, parse: PARSE },
  });
  const reports: WorkerReport[] = [];
  let wake: () => void = () => {};
  worker.on('message', (m: WorkerReport) => {
    reports.push(m);
    wake();
  });
  const next = async <T extends WorkerReport['type']>(type: T, timeoutMs: number): Promise<Extract<WorkerReport, { type: T }> | null> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = reports.findIndex((r) => r.type === type);
      if (i >= 0) return reports.splice(i, 1)[0] as Extract<WorkerReport, { type: T }>;
      const left = deadline - Date.now();
      if (left <= 0) return null;
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, left);
      });
    }
  };
  try {
    if (!(await next('ready', 60_000))) throw new Error('subscribers did not connect');
    const workspace = await workspaceOf(api);
    const t0 = performance.now();
    let produced = 0;
    for (let slice = 1; produced < EVENTS; slice++) {
      const due = Math.min(EVENTS, Math.round((rate * (performance.now() - t0)) / 1000) || 1);
      for (; produced < due; produced++) {
        api.rt.events.emit({
          type: 'egress_denied',
          severity: 'medium',
          workspace,
          details: { n: produced, destination: '203.0.113.10', port: 443 },
        });
      }
      const wait = t0 + slice * 10 - performance.now();
      await new Promise((r) => (wait > 0 ? setTimeout(r, wait) : setImmediate(r)));
    }
    const start = performance.timeOrigin + t0;
    const done = await next('done', 30_000);
    if (done)
      return {
        rate,
        produced,
        delivered: EVENTS / ((done.at - start) / 1000),
        lost: done.lost,
        outOfOrder: done.outOfOrder,
        closedEarly: {},
      };
    worker.postMessage({ type: 'status' });
    const st = await next('status', 5000);
    return { rate, produced, delivered: null, lost: st?.lost ?? -1, outOfOrder: st?.outOfOrder ?? -1, closedEarly: st?.closedEarly ?? {} };
  } finally {
    worker.postMessage({ type: 'close' });
    await new Promise((r) => setTimeout(r, 200));
    await worker.terminate();
    await api.close();
  }
}

async function throughput(): Promise<void> {
  console.log(
    `\nevent pipeline: producers → store → ${SUBSCRIBERS} WebSocket subscribers (${BATCH ? 'batch frames' : 'one frame per event'}; subscribers in a worker thread, ${PARSE ? 'JSON.parse every frame' : 'scanning frames for cursors'}), ${SECONDS} s per rate`,
  );
  let best = 0;
  for (const rate of RATES) {
    const r = await pacedRun(rate);
    // Sustained: nothing lost or reordered, and the last subscriber kept up (finished within 5 % of the producers' pace).
    const ok = r.delivered !== null && r.delivered >= rate * 0.95 && r.lost === 0 && r.outOfOrder === 0;
    if (ok) best = Math.max(best, rate);
    const closed = Object.keys(r.closedEarly).length ? `, closed early by code ${JSON.stringify(r.closedEarly)}` : '';
    console.log(
      `  paced ${String(rate).padStart(6)} events/s: ${ok ? 'kept up, zero loss' : r.lost || r.outOfOrder || r.delivered === null ? 'LOSS' : 'zero loss but fell behind'}; last subscriber complete at ${r.delivered === null ? '—' : `${r.delivered.toFixed(0)} events/s`} (${(r.produced * SUBSCRIBERS).toLocaleString('en')} messages), lost ${r.lost}, out of order ${r.outOfOrder}${closed}`,
    );
  }
  console.log(`  sustained with zero loss: ${best.toLocaleString('en')} events/s to ${SUBSCRIBERS} subscribers   (target ≥ 20,000)`);
}

async function workspaceOf(api: Awaited<ReturnType<typeof startApi>>): Promise<string> {
  const me = await fetch(`${api.url}/v1/auth/me`, { headers: { authorization: `Bearer ${api.adminToken}` } });
  return ((await me.json()) as { data: { workspace: string } }).data.workspace;
}

async function denyLatency(): Promise<void> {
  const api = await startApi({ networking: 'on' });
  try {
    const workspace = await workspaceOf(api);
    const me = { workspace, actor: 'bench' };
    const n = await api.rt.networks!.manager.create(me, { name: 'latency', enableDNS: false });
    await api.rt.networks!.manager.applyPolicy(me, n.id, { name: 'deny-all', outbound: [] });
    const sb = await api.rt.sandboxes.create(
      { image: 'director/base:latest', securityPolicy: { allowNetwork: true }, networkMode: n.id },
      me,
    );
    const arrivals = new Map<number, number>();
    const ws = await subscriber(api.url, api.adminToken, (m) => {
      if (m.type === 'security_event' && m.data.type === 'egress_denied' && m.data.details?.port)
        arrivals.set(Number(m.data.details.port), Date.now());
    });
    const samples: number[] = [];
    // Each probe uses its own destination port so its event is recognisable; the destination is
    // a TEST-NET address the policy denies: the SYN is dropped by nft, it never leaves the host.
    for (let i = 0; i < 20; i++) {
      const port = 20000 + i;
      const r = await api.rt.executor.run(me, sb.id, {
        command: [
          'python3',
          '-c',
          `import socket,time\ns=socket.socket(); s.settimeout(0.3)\nt=time.time()\ntry: s.connect(("203.0.113.77", ${port}))\nexcept Exception: pass\nprint(t)`,
        ],
        timeout: 5000,
      });
      const sentMs = Number(r.stdout.trim()) * 1000;
      for (let k = 0; k < 50 && !arrivals.has(port); k++) await new Promise((res) => setTimeout(res, 20));
      const at = arrivals.get(port);
      if (at) samples.push(at - sentMs);
      // Stay under the per-rule log rate so every probe is logged.
      await new Promise((res) => setTimeout(res, 250));
    }
    const s = summarize(samples, 20);
    console.log(
      `\ndenied packet → security_event on a WebSocket: p50 ${s.p50.toFixed(1)} ms, p99 ${s.p99.toFixed(1)} ms (${s.ok}/${s.n} observed)`,
    );
    ws.terminate();
  } finally {
    await api.close();
  }
}

export async function benchEvents(): Promise<void> {
  if (process.env.BENCH_EVENTS_THROUGHPUT !== '0') await throughput();
  if (process.env.BENCH_EVENTS_LATENCY !== '0') await denyLatency();
}
