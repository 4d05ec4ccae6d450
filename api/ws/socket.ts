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
 * Handles a socket's messages one at a time, in arrival order, even when handling is async
 * (authentication is): a client may send `auth` and `subscribe` back to back. At most
 * `maxPending` may wait; beyond that `onOverflow` runs and further messages are dropped.
 */
export class SerialRunner {
  readonly #maxPending: number;
  readonly #onOverflow: () => void;
  readonly #onError: (err: unknown) => void;
  #tail: Promise<void> = Promise.resolve();
  #pending = 0;
  #overflowed = false;

  constructor(maxPending: number, onOverflow: () => void, onError: (err: unknown) => void) {
    this.#maxPending = maxPending;
    this.#onOverflow = onOverflow;
    this.#onError = onError;
  }

  run(task: () => Promise<void> | void): void {
    if (this.#overflowed) return;
    if (this.#pending >= this.#maxPending) {
      this.#overflowed = true;
      this.#onOverflow();
      return;
    }
    this.#pending++;
    this.#tail = this.#tail
      .then(task)
      .catch(this.#onError)
      .finally(() => {
        this.#pending--;
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
