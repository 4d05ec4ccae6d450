/**
 * A bench's HTTP client in a process of its own, as a user's client always is. A client inside
 * Director's process reads its answer only once Director's event loop has finished what it
 * queued behind the response (the audit row, the next events of a turn), which a client
 * elsewhere does not wait for; measured from another process, the figure is what a user sees.
 *
 * `startRemoteClient()` forks this file; the parent sends one request at a time, the child
 * times it with its own clock (from writing the request to the end of the answer, and to the
 * first time the answer's text holds `marker`) over a keep-alive connection (one per server),
 * and replies, with when it wrote the request on the clock both processes share.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { Agent, request } from 'node:http';

export interface RemoteRequest {
  /** Where to send it: `port` and `path` on 127.0.0.1, or a whole `url` (a loopback one). */
  port?: number;
  path?: string;
  url?: string;
  method: string;
  headers?: Record<string, string>;
  /** Sent as JSON (with its content type). */
  body?: unknown;
  /** Sent as given, byte for byte (a request another client made, say); the headers must name its type. */
  raw?: string;
  /** Time also the first arrival of this text in the answer (an SSE event name, say). */
  marker?: string;
}

export interface RemoteReply {
  status: number;
  /** Request written → answer ended (ms). */
  ms: number;
  /** When the request was written, on the clock processes share (`performance.timeOrigin + performance.now()`). */
  startedAt: number;
  /** Request written → `marker` first seen (ms); NaN when never seen or not asked. */
  markerMs: number;
  text: string;
}

const CHILD_FLAG = '--director-bench-client';

export interface RemoteClient {
  request(r: RemoteRequest): Promise<RemoteReply>;
  close(): Promise<void>;
}

/** Forks the client process; requests are answered in order. */
export async function startRemoteClient(): Promise<RemoteClient> {
  const child: ChildProcess = fork(import.meta.filename, [CHILD_FLAG], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`bench client exited (${code})`)));
  });
  const waiting: Array<(r: RemoteReply | Error) => void> = [];
  child.on('message', (m: RemoteReply | { error: string }) => waiting.shift()?.('error' in m ? new Error(m.error) : m));
  child.on('exit', () => {
    for (const w of waiting.splice(0)) w(new Error('bench client exited'));
  });
  return {
    request: (r) =>
      new Promise((resolve, reject) => {
        waiting.push((x) => (x instanceof Error ? reject(x) : resolve(x)));
        child.send(r);
      }),
    close: async () => {
      if (child.exitCode !== null) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill();
      await gone;
    },
  };
}

function once(agent: Agent, r: RemoteRequest): Promise<RemoteReply> {
  return new Promise((resolve, reject) => {
    const json = r.raw === undefined && r.body !== undefined;
    const payload = r.raw ?? (json ? JSON.stringify(r.body) : undefined);
    const u = r.url ? new URL(r.url) : null;
    let t0 = 0;
    let markerMs = Number.NaN;
    const req = request(
      {
        host: u ? u.hostname : '127.0.0.1',
        port: u ? Number(u.port) : r.port,
        method: r.method,
        path: u ? `${u.pathname}${u.search}` : r.path,
        agent,
        headers: { ...(json ? { 'content-type': 'application/json' } : {}), ...r.headers },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          text += d;
          if (r.marker && Number.isNaN(markerMs) && text.includes(r.marker)) markerMs = performance.now() - t0;
        });
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, ms: performance.now() - t0, startedAt: performance.timeOrigin + t0, markerMs, text }),
        );
      },
    );
    req.on('error', reject);
    t0 = performance.now();
    req.end(payload);
  });
}

if (process.argv.includes(CHILD_FLAG) && process.send) {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  process.on('message', (r: RemoteRequest) => {
    once(agent, r).then(
      (reply) => process.send!(reply),
      (err: unknown) => process.send!({ error: String(err) }),
    );
  });
  process.send('ready');
}
