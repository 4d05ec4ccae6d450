/**
 * The event benchmark's subscribers, run in a worker thread so that reading and checking
 * messages (as any real consumer does) does not share the server's event loop. Each socket
 * checks that it receives every expected event exactly once, in cursor order.
 */
import { parentPort, workerData } from 'node:worker_threads';
import WebSocket from 'ws';

interface Setup {
  url: string;
  token: string;
  subscribers: number;
  events: number;
  batch: boolean;
  /** Parse every frame with JSON.parse (true), or find each message's cursor by scanning the bytes. */
  parse: boolean;
}
interface Item {
  type: string;
  cursor?: number;
}

const setup = workerData as Setup;
const port = parentPort!;
const received = new Array<number>(setup.subscribers).fill(0);
const lastCursor = new Array<number>(setup.subscribers).fill(0);
let outOfOrder = 0;
/** Sockets the server closed before they had everything, by close code (4008: too slow). */
const closedEarly: Record<string, number> = {};
let finished = 0;
const sockets: WebSocket[] = [];

/** Wall-clock ms comparable across threads. */
const now = () => performance.timeOrigin + performance.now();

function connect(i: number): Promise<void> {
  const ws = new WebSocket(`${setup.url.replace('http', 'ws')}/v1/ws`, { headers: { authorization: `Bearer ${setup.token}` } });
  sockets.push(ws);
  const onItem = (m: Item) => {
    if (m.type !== 'security_event') return;
    const cursor = Number(m.cursor);
    if (cursor <= lastCursor[i]!) outOfOrder++;
    lastCursor[i] = cursor;
    if (++received[i]! === setup.events && ++finished === setup.subscribers) report();
  };
  return new Promise((resolve, reject) => {
    ws.once('error', reject);
    ws.once('close', (code: number) => {
      if (received[i]! < setup.events) closedEarly[code] = (closedEarly[code] ?? 0) + 1;
    });
    let live = false;
    ws.on('message', (raw: Buffer) => {
      if (live && !setup.parse) {
        scan(raw, onItem);
        return;
      }
      const m = JSON.parse(raw.toString()) as Item & { items?: Item[] };
      if (m.type === 'subscribed') {
        live = true;
        resolve();
      } else if (m.type === 'batch') for (const item of m.items!) onItem(item);
      else onItem(m);
    });
    ws.once('open', () => ws.send(JSON.stringify({ type: 'subscribe', channel: 'security', ...(setup.batch ? { batch: true } : {}) })));
  });
}

const CURSOR = Buffer.from(',"cursor":');
/**
 * Finds every channel message's cursor in a frame (plain or batch) without building objects:
 * each message is `{"type":"security_event","data":{...},"cursor":N}`, the cursor its last
 * member. Inside JSON strings the quotes would be escaped, so the sequence `,"cursor":` only
 * occurs as a member name; the benchmark's event details have no member of that name.
 */
function scan(buf: Buffer, onItem: (m: Item) => void): void {
  let c = buf.indexOf(CURSOR);
  while (c >= 0) {
    c += CURSOR.length;
    let n = 0;
    while (buf[c]! >= 48 && buf[c]! <= 57) n = n * 10 + buf[c++]! - 48;
    onItem({ type: 'security_event', cursor: n });
    c = buf.indexOf(CURSOR, c);
  }
}

function report(): void {
  const lost = received.reduce((a, n) => a + Math.max(0, setup.events - n), 0);
  port.postMessage({ type: 'done', at: now(), lost, outOfOrder });
}

port.on('message', (m: { type: string }) => {
  if (m.type === 'status') {
    const lost = received.reduce((a, n) => a + Math.max(0, setup.events - n), 0);
    port.postMessage({ type: 'status', lost, outOfOrder, finished, closedEarly });
  } else if (m.type === 'close') {
    for (const ws of sockets) ws.terminate();
    port.close();
  }
});

await Promise.all(Array.from({ length: setup.subscribers }, (_, i) => connect(i)));
port.postMessage({ type: 'ready' });
