import { WebSocket, type RawData, type WebSocketServer } from 'ws';

/** Starts the closing handshake unless the socket is already closing or closed. */
export function closeSocket(ws: WebSocket, code: number, reason: string): void {
  if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.close(code, reason);
}

export const isOpen = (ws: WebSocket): boolean => ws.readyState === WebSocket.OPEN;

export function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

/**
 * Stops reading a socket while any reason to hold it stands (TCP then pushes back on the
 * client), and resumes once none does. Several parts of a connection may hold at once.
 */
export class ReadGate {
  readonly #ws: WebSocket;
  readonly #reasons = new Set<string>();

  constructor(ws: WebSocket) {
    this.#ws = ws;
  }

  hold(reason: string): void {
    this.#reasons.add(reason);
    if (!this.#ws.isPaused) this.#ws.pause();
  }

  release(reason: string): void {
    if (this.#reasons.delete(reason) && this.#reasons.size === 0) this.#ws.resume();
  }
}

export interface SerialRunnerOptions {
  /** Stop reading the socket while this many messages wait; resume at half. */
  pauseAt: number;
  /** Beyond this many waiting (frames already read when reading stopped) `onOverflow` runs. */
  maxPending: number;
  gate: ReadGate;
  onOverflow: () => void;
  onError: (err: unknown) => void;
}

/**
 * Handles a socket's messages one at a time, in arrival order, even when handling is async
 * (authentication is): a client may send `auth` and `subscribe` back to back. A backlog
 * pauses reading rather than growing; `onOverflow` is the last resort.
 */
export class SerialRunner {
  readonly #o: SerialRunnerOptions;
  #tail: Promise<void> = Promise.resolve();
  #pending = 0;
  #overflowed = false;

  constructor(opts: SerialRunnerOptions) {
    this.#o = opts;
  }

  run(task: () => Promise<void> | void): void {
    if (this.#overflowed) return;
    if (this.#pending >= this.#o.maxPending) {
      this.#overflowed = true;
      this.#o.onOverflow();
      return;
    }
    if (++this.#pending >= this.#o.pauseAt) this.#o.gate.hold('backlog');
    this.#tail = this.#tail
      .then(task)
      .catch(this.#o.onError)
      .finally(() => {
        if (--this.#pending <= this.#o.pauseAt / 2) this.#o.gate.release('backlog');
      });
  }
}

/**
 * Pings every socket of `wss` each `intervalMs`; one that has not answered the previous ping
 * is terminated (a dead peer never completes a closing handshake). Returns the stop function.
 */
export function startHeartbeat(wss: WebSocketServer, intervalMs: number, onTick?: () => void): () => void {
  const alive = new WeakMap<WebSocket, boolean>();
  const onConnection = (ws: WebSocket) => {
    alive.set(ws, true);
    ws.on('pong', () => alive.set(ws, true));
  };
  wss.on('connection', onConnection);
  const timer = setInterval(() => {
    for (const ws of wss.clients) {
      if (alive.get(ws) === false) {
        ws.terminate();
        continue;
      }
      alive.set(ws, false);
      if (ws.readyState === WebSocket.OPEN) ws.ping();
    }
    onTick?.();
  }, intervalMs);
  timer.unref();
  return () => {
    clearInterval(timer);
    wss.off('connection', onConnection);
  };
}
