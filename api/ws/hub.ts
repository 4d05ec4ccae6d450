import type { FastifyBaseLogger } from 'fastify';
import type { WebSocket } from 'ws';
import type { EventSink } from '../../runtime/events.ts';
import type { AuthService } from '../auth/service.ts';
import type { Credential } from './auth.ts';
import type { ChannelDefinition, ChannelItem } from './channels.ts';
import { HubConnection } from './hub-connection.ts';
import type { ResolvedWsOptions } from './options.ts';
import { CLOSE, CLOSE_REASON } from './protocol.ts';
import { EncodedItem, batchFrames } from './encode.ts';

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
  /** Channel messages go out grouped in `batch` frames. */
  readonly batch: boolean;
  /** Made by the default set (no `subscribe` yet); the first explicit `subscribe` cancels these. */
  readonly implicit?: boolean;
}

export interface ChannelEntry {
  readonly name: string;
  readonly def: ChannelDefinition;
  readonly subs: Set<Subscription>;
}

/** A registered channel as the hub holds it: its live feed and the items waiting for the next batch frame. */
type LiveChannel = ChannelEntry & { unsubscribe: () => void; pending: EncodedItem[] };

/**
 * The `/v1/ws` hub: a registry of channels, and the fan-out from each channel's live feed to
 * the subscriptions that may see an item (same workspace, scope checked at subscribe). The
 * fan-out only pushes onto bounded per-connection queues: it never waits for a socket.
 */
export class Hub {
  readonly deps: HubDeps;
  readonly #channels = new Map<string, LiveChannel>();
  readonly #connections = new Set<HubConnection>();
  #closed = false;

  constructor(deps: HubDeps) {
    this.deps = deps;
  }

  /** Adds a channel clients can subscribe to by `name`. Names are unique. */
  registerChannel(name: string, def: ChannelDefinition): void {
    if (!/^[a-z][a-z0-9_-]{0,63}$/.test(name)) throw new Error(`invalid channel name ${JSON.stringify(name)}`);
    if (this.#channels.has(name)) throw new Error(`channel ${name} is already registered`);
    const entry = { name, def, subs: new Set<Subscription>(), unsubscribe: () => {}, pending: [] as EncodedItem[] };
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

  /**
   * Each item is encoded once, whatever the number of subscribers. Plain subscriptions get it at
   * once; `batch` subscriptions get what arrived in this turn of the event loop in one frame
   * per workspace, sent right after the turn (setImmediate) and shared by all of them.
   */
  #fanout(entry: LiveChannel, item: ChannelItem): void {
    let enc: EncodedItem | null = null;
    let batched = false;
    for (const sub of entry.subs) {
      if (sub.state !== 'live' || item.cursor <= sub.floor || sub.conn.workspace !== item.workspace) continue;
      enc ??= new EncodedItem(item);
      if (sub.batch) batched = true;
      else sub.conn.enqueue(enc.frame);
    }
    if (!batched) return;
    entry.pending.push(enc!);
    if (entry.pending.length === 1) setImmediate(() => this.#flushBatches(entry));
  }

  #flushBatches(entry: LiveChannel): void {
    const items = entry.pending;
    entry.pending = [];
    if (this.#closed) return;
    const byWorkspace = new Map<string | null, EncodedItem[]>();
    for (const e of items) {
      const list = byWorkspace.get(e.workspace);
      if (list) list.push(e);
      else byWorkspace.set(e.workspace, [e]);
    }
    const shared = new Map<string | null, Buffer[]>();
    for (const sub of entry.subs) {
      if (!sub.batch || sub.state !== 'live') continue;
      const workspace = sub.conn.workspace;
      const list = byWorkspace.get(workspace);
      if (!list) continue;
      let frames: Buffer[];
      if (list[0]!.cursor > sub.floor) {
        frames = shared.get(workspace) ?? batchFrames(entry.name, list);
        shared.set(workspace, frames);
      } else {
        // Subscribed (or went live after a replay) in the middle of this turn: only what is newer.
        frames = batchFrames(
          entry.name,
          list.filter((e) => e.cursor > sub.floor),
        );
      }
      for (const f of frames) sub.conn.enqueue(f);
    }
  }
}
