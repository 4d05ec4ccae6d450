import type { FastifyBaseLogger } from 'fastify';
import type { WebSocket } from 'ws';
import type { EventSink } from '../../runtime/events.ts';
import type { AuthService } from '../auth/service.ts';
import type { Credential } from './auth.ts';
import type { ChannelDefinition, ChannelItem } from './channels.ts';
import { HubConnection } from './hub-connection.ts';
import type { ResolvedWsOptions } from './options.ts';
import { CLOSE, CLOSE_REASON } from './protocol.ts';

export interface HubDeps {
  auth: AuthService;
  events: EventSink;
  logger: FastifyBaseLogger;
  options: ResolvedWsOptions;
}

/** One client's subscription to one channel. */
export interface Subscription {
  readonly channel: string;
  readonly conn: HubConnection;
  /** `replaying` subscriptions read the store; the live feed skips them until they switch. */
  state: 'replaying' | 'live' | 'cancelled';
  /** Live items at or below this cursor were replayed already or predate the subscription. */
  floor: number;
}

export interface ChannelEntry {
  readonly name: string;
  readonly def: ChannelDefinition;
  readonly subs: Set<Subscription>;
}

export const encodeItem = (item: ChannelItem): string => JSON.stringify({ type: item.type, data: item.data, cursor: item.cursor });

/**
 * The `/v1/ws` hub: a registry of channels, and the fan-out from each channel's live feed to
 * the subscriptions that may see an item (same workspace, scope checked at subscribe). The
 * fan-out only pushes onto bounded per-connection queues: it never waits for a socket.
 */
export class Hub {
  readonly deps: HubDeps;
  readonly #channels = new Map<string, ChannelEntry & { unsubscribe: () => void }>();
  readonly #connections = new Set<HubConnection>();
  #closed = false;

  constructor(deps: HubDeps) {
    this.deps = deps;
  }

  /** Adds a channel clients can subscribe to by `name`. Names are unique. */
  registerChannel(name: string, def: ChannelDefinition): void {
    if (!/^[a-z][a-z0-9_-]{0,63}$/.test(name)) throw new Error(`invalid channel name ${JSON.stringify(name)}`);
    if (this.#channels.has(name)) throw new Error(`channel ${name} is already registered`);
    const entry = { name, def, subs: new Set<Subscription>(), unsubscribe: () => {} };
    entry.unsubscribe = def.source.subscribe((item) => this.#fanout(entry, item));
    this.#channels.set(name, entry);
  }

  channel(name: string): ChannelEntry | undefined {
    return this.#channels.get(name);
  }

  channelNames(): string[] {
    return [...this.#channels.keys()];
  }

  get connectionCount(): number {
    return this.#connections.size;
  }

  /** Takes over an upgraded socket; `credential` when the upgrade carried one. */
  accept(ws: WebSocket, ip: string, credential: Credential | null): void {
    if (this.#closed) {
      ws.close(CLOSE.GOING_AWAY, CLOSE_REASON.shuttingDown);
      return;
    }
    const conn = new HubConnection(this, ws, ip, () => this.#connections.delete(conn));
    this.#connections.add(conn);
    conn.start(credential);
  }

  /** Re-checks every connection's credentials and channel scopes. */
  async revalidate(): Promise<void> {
    await Promise.all([...this.#connections].map((c) => c.revalidate()));
  }

  /** Stops the live feeds and closes every connection with 1001. */
  close(): void {
    this.#closed = true;
    for (const entry of this.#channels.values()) entry.unsubscribe();
    for (const conn of this.#connections) conn.close(CLOSE.GOING_AWAY, CLOSE_REASON.shuttingDown);
  }

  #fanout(entry: ChannelEntry, item: ChannelItem): void {
    let text: string | null = null;
    for (const sub of entry.subs) {
      if (sub.state !== 'live' || item.cursor <= sub.floor || sub.conn.workspace !== item.workspace) continue;
      text ??= encodeItem(item);
      sub.conn.enqueue(text);
    }
  }
}
