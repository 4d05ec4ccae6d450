import { backoffDelayMs, reconnectSettings, type ReconnectOptions } from './backoff.ts';
import { connectionError, type DirectorApiError } from './errors.ts';
import { CLOSE, errorOfClose, errorOfMessage, isErrorMessage, type ErrorMessage } from './socket.ts';
import type { Transport, WebSocketLike } from './transport.ts';
import type { HubMessageData } from './types.ts';

/** One message of a channel: `type` is the channel's (`security_event`, `security_alert`, `sandbox_event` ...). */
export interface ChannelMessage<T = unknown> {
  channel: string;
  type: string;
  data: T;
  /** Position in the channel's stream: pass it as `after` to resume from here. */
  cursor: number;
}

export interface SubscribeOptions {
  /** Hub channels: `security` (default) and `sandboxes` today; later `sessions`, `workflows`. */
  channels?: string[];
  /** Replay what came after this cursor (one for all channels, or per channel) before going live. */
  after?: number | Record<string, number>;
  /** Reconnect after a drop, resuming from the last cursor received. Default true. */
  reconnect?: boolean | ReconnectOptions;
  /** How often to ping the server, in ms; a socket silent for two intervals is treated as dropped. Default 25,000. */
  pingIntervalMs?: number;
  signal?: AbortSignal;
}

export type SubscriptionState = 'connecting' | 'live' | 'reconnecting' | 'closed';

export interface StatusChange {
  state: SubscriptionState;
  /** Failed attempts in a row so far (0 once live). */
  attempt: number;
  /** Why the socket dropped (reconnecting) or the subscription ended (closed). */
  error?: DirectorApiError;
  /** Set when the server no longer had the cursor asked for (its data was reset): messages in between are lost. */
  gap?: { channel: string; after: number };
}

interface BatchFrame {
  type: 'batch';
  channel: string;
  items: { type: string; data: unknown; cursor: number }[];
}

type Listener = (m: ChannelMessage) => void;

/**
 * A live subscription to the API's event hub (`/v1/ws`). It authenticates with the client's
 * token, subscribes to each channel in `batch` mode, and after a drop reconnects with backoff and
 * resubscribes with `after` = the last cursor it delivered, so nothing is lost or repeated.
 * Expired credentials are refreshed when the client can; other refusals end it.
 *
 * Consume it with listeners (`on('security_event', fn)`, `'*'` for all) or by iterating:
 * ```ts
 * for await (const m of client.events.subscribe({ channels: ['security'] })) console.log(m.type, m.data);
 * ```
 * Messages are queued for iteration only once iteration starts; breaking out of the loop closes it.
 */
export class EventSubscription implements AsyncIterable<ChannelMessage> {
  /** Resolves once every channel is subscribed the first time; rejects when that fails. */
  readonly ready: Promise<void>;
  /** Resolves when {@link close} ended it; rejects with the error that ended it otherwise. */
  readonly done: Promise<void>;
  readonly #t: Transport;
  readonly #channels: string[];
  readonly #cursors = new Map<string, number>();
  readonly #reconnect: Required<ReconnectOptions> | null;
  readonly #pingMs: number;
  readonly #listeners = new Map<string, Set<Listener>>();
  readonly #status = new Set<(s: StatusChange) => void>();
  #ws: WebSocketLike | null = null;
  #subscribed = new Set<string>();
  #pending: string | null = null;
  #lastError: ErrorMessage | null = null;
  #tokenUsed: string | undefined;
  #attempt = 0;
  #everLive = false;
  #finished = false;
  #fatal: DirectorApiError | null = null;
  #retryTimer: ReturnType<typeof setTimeout> | null = null;
  #pingTimer: ReturnType<typeof setInterval> | null = null;
  #lastSeenMs = 0;
  #queue: ChannelMessage[] | null = null;
  #wake: (() => void) | null = null;
  #settleReady!: { resolve: () => void; reject: (e: DirectorApiError) => void };
  #settleDone!: { resolve: () => void; reject: (e: DirectorApiError) => void };

  constructor(transport: Transport, opts: SubscribeOptions = {}) {
    this.#t = transport;
    this.#channels = [...new Set(opts.channels ?? ['security'])];
    for (const ch of this.#channels) {
      const after = typeof opts.after === 'number' ? opts.after : opts.after?.[ch];
      if (after !== undefined) this.#cursors.set(ch, after);
    }
    this.#reconnect = reconnectSettings(opts.reconnect, { maxAttempts: Number.POSITIVE_INFINITY });
    this.#pingMs = opts.pingIntervalMs ?? 25_000;
    this.ready = new Promise((resolve, reject) => (this.#settleReady = { resolve, reject }));
    this.done = new Promise((resolve, reject) => (this.#settleDone = { resolve, reject }));
    // Either may go unawaited: their failure is also delivered through `done`, status and iteration.
    this.ready.catch(() => undefined);
    this.done.catch(() => undefined);
    if (opts.signal?.aborted) queueMicrotask(() => this.close());
    else opts.signal?.addEventListener('abort', () => this.close(), { once: true });
    // Next microtask: listeners added right after `subscribe()` see the first state too.
    queueMicrotask(() => this.#connect());
  }

  /** Calls `listener` with every message of `type` (`'*'`: every message); returns the function that stops it. */
  on<K extends keyof HubMessageData>(type: K, listener: (m: ChannelMessage<HubMessageData[K]>) => void): () => void;
  on(type: string, listener: Listener): () => void;
  on(type: string, listener: Listener): () => void {
    const set = this.#listeners.get(type) ?? new Set();
    set.add(listener);
    this.#listeners.set(type, set);
    return () => set.delete(listener);
  }

  /** Calls `listener` on every change of state (connecting, live, reconnecting, closed). */
  onStatus(listener: (s: StatusChange) => void): () => void {
    this.#status.add(listener);
    return () => this.#status.delete(listener);
  }

  /** The last cursor delivered (or subscribed at) on `channel`. */
  cursor(channel: string): number | undefined {
    return this.#cursors.get(channel);
  }

  close(): void {
    this.#finish(null);
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<ChannelMessage> {
    this.#queue ??= [];
    try {
      for (;;) {
        const m = this.#queue.shift();
        if (m) {
          yield m;
          continue;
        }
        if (this.#finished) {
          if (this.#fatal) throw this.#fatal;
          return;
        }
        await new Promise<void>((resolve) => (this.#wake = resolve));
        this.#wake = null;
      }
    } finally {
      this.close();
    }
  }

  #emitStatus(s: StatusChange): void {
    for (const l of this.#status) l(s);
  }

  #connect(): void {
    this.#retryTimer = null;
    if (this.#finished) return;
    this.#emitStatus({ state: this.#everLive ? 'reconnecting' : 'connecting', attempt: this.#attempt });
    let ws: WebSocketLike;
    try {
      ws = this.#t.openSocket(this.#t.wsUrl('/v1/ws'));
    } catch (err) {
      this.#finish(connectionError(this.#t.baseUrl, err));
      return;
    }
    this.#ws = ws;
    this.#subscribed = new Set();
    this.#pending = null;
    this.#lastError = null;
    this.#tokenUsed = this.#t.token;
    ws.onopen = () => {
      this.#lastSeenMs = Date.now();
      try {
        ws.send(this.#t.authMessage());
      } catch (err) {
        this.#finish(errorOfMessage({ type: 'error', code: 'AUTHENTICATION_ERROR', message: (err as Error).message }));
      }
    };
    ws.onmessage = (ev) => this.#onFrame(ws, String(ev.data));
    ws.onerror = () => undefined;
    ws.onclose = (ev) => this.#onClose(ws, ev.code, ev.reason);
    this.#pingTimer ??= setInterval(() => this.#ping(), this.#pingMs);
  }

  #send(ws: WebSocketLike, msg: unknown): void {
    if (ws.readyState === 1) ws.send(JSON.stringify(msg));
  }

  /** Subscribes to the next channel not yet subscribed: one at a time, so an error names its channel. */
  #subscribeNext(ws: WebSocketLike): void {
    const ch = this.#channels.find((c) => !this.#subscribed.has(c));
    if (ch === undefined) {
      this.#pending = null;
      this.#attempt = 0;
      this.#everLive = true;
      this.#emitStatus({ state: 'live', attempt: 0 });
      this.#settleReady.resolve();
      return;
    }
    this.#pending = ch;
    const after = this.#cursors.get(ch);
    this.#send(ws, { type: 'subscribe', channel: ch, batch: true, ...(after === undefined ? {} : { after }) });
  }

  #onFrame(ws: WebSocketLike, text: string): void {
    if (ws !== this.#ws) return;
    this.#lastSeenMs = Date.now();
    const m = JSON.parse(text) as Record<string, unknown> & { type?: unknown };
    if (m.type === 'authenticated') return this.#subscribeNext(ws);
    if (m.type === 'subscribed') {
      const ch = String(m.channel);
      if (!this.#cursors.has(ch)) this.#cursors.set(ch, Number(m.cursor));
      this.#subscribed.add(ch);
      return this.#subscribeNext(ws);
    }
    if (m.type === 'batch') {
      const b = m as unknown as BatchFrame;
      for (const item of b.items) this.#deliver(b.channel, item);
      return;
    }
    if (m.type === 'pong' || m.type === 'unsubscribed') return;
    if (isErrorMessage(m)) return this.#onError(ws, m);
    // A channel message outside a batch frame (not asked for): its channel is the only one, or unknown.
    if (typeof m.cursor === 'number' && typeof m.type === 'string') {
      this.#deliver(this.#channels.length === 1 ? this.#channels[0]! : '', { type: m.type, data: m.data, cursor: m.cursor });
    }
  }

  #onError(ws: WebSocketLike, m: ErrorMessage): void {
    const ch = this.#pending;
    if (ch !== null && m.code === 'VALIDATION_ERROR' && m.details?.field === 'after') {
      // The server's stream is behind our cursor (its data was reset): start from its head, and say so.
      const after = this.#cursors.get(ch) ?? 0;
      this.#cursors.delete(ch);
      this.#emitStatus({ state: 'reconnecting', attempt: this.#attempt, gap: { channel: ch, after } });
      this.#send(ws, { type: 'subscribe', channel: ch, batch: true });
      return;
    }
    if (ch !== null) {
      // A refused subscription (missing scope, unknown channel) will not get better by retrying.
      this.#finish(errorOfMessage(m));
      return;
    }
    // Sent ahead of a close (auth failures, slow consumer): the close handler reports it.
    this.#lastError = m;
  }

  #deliver(channel: string, item: { type: string; data: unknown; cursor: number }): void {
    const last = this.#cursors.get(channel);
    // Replays after a resume start after the cursor; anything at or below it was delivered already.
    if (last !== undefined && item.cursor <= last) return;
    this.#cursors.set(channel, item.cursor);
    const msg: ChannelMessage = { channel, type: item.type, data: item.data, cursor: item.cursor };
    for (const l of this.#listeners.get(item.type) ?? []) l(msg);
    for (const l of this.#listeners.get('*') ?? []) l(msg);
    if (this.#queue) {
      this.#queue.push(msg);
      this.#wake?.();
    }
  }

  #ping(): void {
    const ws = this.#ws;
    if (!ws || ws.readyState !== 1) return;
    if (Date.now() - this.#lastSeenMs > 2 * this.#pingMs) {
      // No answer for two intervals: the connection is dead even if no close arrived.
      this.#dropped(ws, errorOfClose(CLOSE.ABNORMAL, 'no answer to pings', null));
      ws.close();
      return;
    }
    this.#send(ws, { type: 'ping' });
  }

  #onClose(ws: WebSocketLike, code: number, reason: string): void {
    if (ws !== this.#ws) return;
    this.#dropped(ws, errorOfClose(code, reason, this.#lastError), code);
  }

  #dropped(ws: WebSocketLike, err: DirectorApiError, code?: number): void {
    ws.onclose = null;
    ws.onmessage = null;
    this.#ws = null;
    if (this.#finished) return;
    if (code === CLOSE.AUTH_TIMEOUT || code === CLOSE.FORBIDDEN) {
      // Credentials lapsed under the socket (or were refused): one refresh, then try again.
      if (!this.#t.canRefresh) return this.#finish(err);
      this.#t.refresh(this.#tokenUsed).then(
        (ok) => (ok ? this.#retry(err) : this.#finish(err)),
        (e: unknown) => this.#finish(e as DirectorApiError),
      );
      return;
    }
    this.#retry(err);
  }

  #retry(err: DirectorApiError): void {
    const r = this.#reconnect;
    // A first connection that fails is an error to report, not a drop to recover from.
    if (!r || !this.#everLive || this.#attempt >= r.maxAttempts) return this.#finish(err);
    const delay = backoffDelayMs(r, this.#attempt);
    this.#attempt++;
    this.#emitStatus({ state: 'reconnecting', attempt: this.#attempt, error: err });
    this.#retryTimer = setTimeout(() => this.#connect(), delay);
  }

  #finish(err: DirectorApiError | null): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#fatal = err;
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    if (this.#pingTimer) clearInterval(this.#pingTimer);
    const ws = this.#ws;
    this.#ws = null;
    if (ws) {
      ws.onclose = null;
      ws.onmessage = null;
      ws.close(CLOSE.NORMAL, 'closed by client');
    }
    this.#emitStatus({ state: 'closed', attempt: this.#attempt, ...(err ? { error: err } : {}) });
    if (err) {
      this.#settleReady.reject(err);
      this.#settleDone.reject(err);
    } else {
      this.#settleReady.resolve();
      this.#settleDone.resolve();
    }
    this.#wake?.();
  }
}
