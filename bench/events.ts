/**
 * Event pipeline: sustained events per second from producers, through the store, to 100
 * WebSocket subscribers, with zero loss checked per subscriber (every seq exactly once); and
 * the end-to-end latency from a denied packet (sent by a sandbox) to the `security_event`
 * message on a subscriber's socket.
 */
import WebSocket from 'ws';
import { startApi } from '../test/helpers/api.ts';
import { summarize } from './stats.ts';

const SUBSCRIBERS = Number(process.env.BENCH_WS_SUBSCRIBERS ?? 100);
const EVENTS = Number(process.env.BENCH_EVENTS ?? 50_000);

async function subscriber(url: string, token: string, onMessage: (m: { type: string; data: { id?: string; seq?: number; type?: string; details?: Record<string, unknown> }; cursor?: string }) => void): Promise<WebSocket> {
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

async function throughput(): Promise<void> {
  const api = await startApi({ networking: 'off' });
  try {
    const received = new Array<number>(SUBSCRIBERS).fill(0);
    const lastSeq = new Array<number>(SUBSCRIBERS).fill(0);
    let outOfOrder = 0;
    let doneAt = 0;
    let finished = 0;
    const all = new Promise<void>((resolve) => {
      void Promise.all(
        Array.from({ length: SUBSCRIBERS }, (_, i) =>
          subscriber(api.url, api.adminToken, (m) => {
            if (m.type !== 'security_event') return;
            const seq = Number(m.cursor);
            if (seq <= lastSeq[i]!) outOfOrder++;
            lastSeq[i] = seq;
            if (++received[i]! === EVENTS && ++finished === SUBSCRIBERS) {
              doneAt = performance.now();
              resolve();
            }
          }),
        ),
      ).then((sockets) => (globalThis as { __sockets?: WebSocket[] }).__sockets = sockets);
    });
    await new Promise((r) => setTimeout(r, 1000));
    const workspace = await workspaceOf(api);
    const t0 = performance.now();
    // Producers: bursts of 500 events per macrotask, as a busy host would generate them.
    for (let i = 0; i < EVENTS; i += 500) {
      for (let j = 0; j < 500 && i + j < EVENTS; j++) {
        api.rt.events.emit({ type: 'egress_denied', severity: 'medium', workspace, details: { n: i + j, destination: '203.0.113.10', port: 443 } });
      }
      await new Promise((r) => setImmediate(r));
    }
    const producedAt = performance.now();
    await Promise.race([all, new Promise((r) => setTimeout(r, 120_000))]);
    const lost = received.reduce((a, n) => a + (EVENTS - n), 0);
    console.log(`\nevent pipeline: ${EVENTS} events → store → ${SUBSCRIBERS} WebSocket subscribers`);
    console.log(`  produce+store: ${(EVENTS / ((producedAt - t0) / 1000)).toFixed(0)} events/s`);
    if (doneAt) console.log(`  delivered to all subscribers: ${(EVENTS / ((doneAt - t0) / 1000)).toFixed(0)} events/s sustained (${((doneAt - t0) / 1000).toFixed(1)} s, ${(EVENTS * SUBSCRIBERS / ((doneAt - t0) / 1000)).toFixed(0)} messages/s)`);
    else console.log(`  NOT all delivered within 120 s`);
    console.log(`  lost: ${lost}, out of order: ${outOfOrder}   (target ≥ 20,000 events/s with zero loss)`);
    for (const s of (globalThis as { __sockets?: WebSocket[] }).__sockets ?? []) s.terminate();
  } finally {
    await api.close();
  }
}

let wsp: string | null = null;
async function workspaceOf(api: Awaited<ReturnType<typeof startApi>>): Promise<string> {
  if (wsp) return wsp;
  const me = await fetch(`${api.url}/v1/auth/me`, { headers: { authorization: `Bearer ${api.adminToken}` } });
  wsp = ((await me.json()) as { data: { workspace: string } }).data.workspace;
  return wsp;
}

async function denyLatency(): Promise<void> {
  const api = await startApi({ networking: 'on' });
  try {
    const workspace = await workspaceOf(api);
    const me = { workspace, actor: 'bench' };
    const n = await api.rt.networks!.manager.create(me, { name: 'latency', enableDNS: false });
    await api.rt.networks!.manager.applyPolicy(me, n.id, { name: 'deny-all', outbound: [] });
    const sb = await api.rt.sandboxes.create({ image: 'director/base:latest', securityPolicy: { allowNetwork: true }, networkMode: n.id }, me);
    const arrivals = new Map<number, number>();
    const ws = await subscriber(api.url, api.adminToken, (m) => {
      if (m.type === 'security_event' && m.data.type === 'egress_denied' && m.data.details?.port) arrivals.set(Number(m.data.details.port), Date.now());
    });
    const samples: number[] = [];
    // Each probe uses its own destination port so its event is recognisable; the destination is
    // a TEST-NET address the policy denies: the SYN is dropped by nft, it never leaves the host.
    for (let i = 0; i < 20; i++) {
      const port = 20000 + i;
      const r = await api.rt.executor.run(me, sb.id, { command: ['python3', '-c', `import socket,time\ns=socket.socket(); s.settimeout(0.3)\nt=time.time()\ntry: s.connect(("203.0.113.77", ${port}))\nexcept Exception: pass\nprint(t)`], timeout: 5000 });
      const sentMs = Number(r.stdout.trim()) * 1000;
      for (let k = 0; k < 50 && !arrivals.has(port); k++) await new Promise((res) => setTimeout(res, 20));
      const at = arrivals.get(port);
      if (at) samples.push(at - sentMs);
      // Stay under the per-rule log rate so every probe is logged.
      await new Promise((res) => setTimeout(res, 250));
    }
    const s = summarize(samples, 20);
    console.log(`\ndenied packet → security_event on a WebSocket: p50 ${s.p50.toFixed(1)} ms, p99 ${s.p99.toFixed(1)} ms (${s.ok}/${s.n} observed)`);
    ws.terminate();
  } finally {
    await api.close();
  }
}

export async function benchEvents(): Promise<void> {
  if (process.env.BENCH_EVENTS_THROUGHPUT !== '0') await throughput();
  if (process.env.BENCH_EVENTS_LATENCY !== '0') await denyLatency();
}
