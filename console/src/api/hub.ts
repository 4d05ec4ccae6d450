import type { Session } from './session.ts';
import { wsUrl } from './ws-url.ts';

/** A message of a hub channel (`security_event`, `security_alert`, `sandbox_event`, later `session_update` ...). */
export interface ChannelMessage {
  type: string;
  data: unknown;
  cursor: number;
}

export type HubStatus = 'connecting' | 'live' | 'offline';

export interface ChannelListener {
  onMessage(m: ChannelMessage): void;
  /** Each time the subscription is (re)established, with the cursor it starts after. */
  onSubscribed?(cursor: number, resumed: boolean): void;
}

/** Reconnect delays in ms, the last repeated. */
const BACKOFF_MS = [500, 1000, 2000, 5000, 10_000];

/**
 * The console's one connection to the event hub (`/v1/ws`, protocol in api/ws/protocol.ts):
 * authenticates with an `auth` message (no token in the URL), subscribes to the channels views
 * ask for with `batch: true` (frames name their channel), and after a drop reconnects and
 * resumes every channel after the last cursor it saw, so nothing is lost or repeated. A fresh
 * access token is sent as `auth` on the open socket. Channels are plain names, so the
 * orchestration channels (`sessions`, `workflows`) need nothing new here.
 */
export class Hub extends EventTarget {
  readonly #session: Session;
  readonly #listeners = new Map<string, Set<ChannelListener>>();
  readonly #cursors = new Map<string, number>();
  #ws: WebSocket | null = null;
  #authenticated = false;
  #attempt = 0;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #stopped = true;
  status: HubStatus = 'offline';
  lastError: string | null = null;

  constructor(session: Session) {
    super();
    this.#session = session;
    session.addEventListener('token', () => this.#renew());
  }

  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#connect();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#ws?.close(1000, 'bye');
    this.#ws = null;
    this.#cursors.clear();
    this.#setStatus('offline');
  }

  /** Listens to `channel` (subscribing when it is the first listener); returns the unsubscribe function. */
  subscribe(channel: string, listener: ChannelListener): () => void {
    let set = this.#listeners.get(channel);
    if (!set) {
      set = new Set();
      this.#listeners.set(channel, set);
      this.#sendSubscribe(channel);
    } else {
      const cursor = this.#cursors.get(channel);
      if (cursor !== undefined && this.#authenticated) listener.onSubscribed?.(cursor, false);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size > 0 || this.#listeners.get(channel) !== set) return;
      this.#listeners.delete(channel);
      this.#cursors.delete(channel);
      this.#send({ type: 'unsubscribe', channel });
    };
  }

  #connect(): void {
    const token = this.#session.token;
    if (this.#stopped || !token) return;
    this.#setStatus('connecting');
    const ws = new WebSocket(wsUrl('/v1/ws', location));
    this.#ws = ws;
    this.#authenticated = false;
    ws.onopen = () => {
      const t = this.#session.token;
      if (t) ws.send(JSON.stringify({ type: 'auth', token: t }));
    };
    ws.onmessage = (ev: MessageEvent) => {
      if (typeof ev.data === 'string') this.#onFrame(ev.data);
    };
    ws.onclose = (ev: CloseEvent) => {
      if (this.#ws !== ws) return;
      this.#ws = null;
      this.#authenticated = false;
      if (this.#stopped) return;
      this.lastError = ev.reason || `closed (${ev.code})`;
      this.#setStatus('offline');
      if (ev.code === 4003) {
        // Refused credentials: a refreshed token may mend it; otherwise the session is over.
        void this.#session.refresh().then((ok) => (ok ? this.#schedule() : undefined));
        return;
      }
      this.#schedule();
    };
  }

  #schedule(): void {
    if (this.#stopped || this.#timer) return;
    const delay = BACKOFF_MS[Math.min(this.#attempt, BACKOFF_MS.length - 1)]!;
    this.#attempt++;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#connect();
    }, delay);
  }

  #onFrame(text: string): void {
    let m: { type?: string; channel?: string; cursor?: number; items?: ChannelMessage[]; message?: string };
    try {
      m = JSON.parse(text) as typeof m;
    } catch {
      return;
    }
    switch (m.type ?? '') {
      case 'authenticated':
        if (this.#authenticated) return;
        this.#authenticated = true;
        this.#attempt = 0;
        this.#setStatus('live');
        for (const channel of this.#listeners.keys()) this.#sendSubscribe(channel);
        return;
      case 'subscribed': {
        if (!m.channel || typeof m.cursor !== 'number') return;
        const resumed = this.#cursors.has(m.channel);
        const cursor = this.#cursors.get(m.channel) ?? m.cursor;
        this.#cursors.set(m.channel, cursor);
        for (const l of this.#listeners.get(m.channel) ?? []) l.onSubscribed?.(cursor, resumed);
        return;
      }
      case 'batch': {
        if (!m.channel || !Array.isArray(m.items)) return;
        const set = this.#listeners.get(m.channel);
        // A frame of a subscription just dropped: its cursor must not pass for a resume point.
        if (!set) return;
        for (const item of m.items) {
          const last = this.#cursors.get(m.channel) ?? 0;
          if (item.cursor <= last && this.#cursors.has(m.channel)) continue;
          this.#cursors.set(m.channel, item.cursor);
          for (const l of set) l.onMessage(item);
        }
        return;
      }
      case 'error':
        this.lastError = m.message ?? 'error';
        this.dispatchEvent(new Event('error'));
        return;
      default:
        return;
    }
  }

  #sendSubscribe(channel: string): void {
    if (!this.#authenticated) return;
    const after = this.#cursors.get(channel);
    this.#send(after === undefined ? { type: 'subscribe', channel, batch: true } : { type: 'subscribe', channel, after, batch: true });
  }

  #renew(): void {
    const token = this.#session.token;
    if (token && this.#authenticated) this.#send({ type: 'auth', token });
  }

  #send(msg: Record<string, unknown>): void {
    if (this.#ws?.readyState === WebSocket.OPEN) this.#ws.send(JSON.stringify(msg));
  }

  #setStatus(s: HubStatus): void {
    if (this.status === s) return;
    this.status = s;
    this.dispatchEvent(new Event('status'));
  }
}
