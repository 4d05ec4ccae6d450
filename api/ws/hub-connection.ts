import { setImmediate as nextTurn } from 'node:timers/promises';
import type { RawData, WebSocket } from 'ws';
import { SocketAuth, credentialOf, type Credential } from './auth.ts';
import type { ChannelEntry, Hub, Subscription } from './hub.ts';
import { EncodedItem, batchFrames, encodeItem } from './encode.ts';
import { CLOSE, CLOSE_REASON, HUB_MESSAGES, authenticatedMessage, errorMessage, parseMessage, type HubServerMessage } from './protocol.ts';
import { SendQueue, type Frame } from './queue.ts';
import { DEFAULT_CHANNELS } from './channels.ts';
import { ReadGate, SerialRunner, closeSocket, toBuffer } from './socket.ts';

/** Stored items examined per replay step; the queue's room is checked between items anyway. */
const REPLAY_PAGE = 256;

/**
 * One hub client: authentication, its subscriptions, and its bounded send queue. Everything the
 * server sends goes through the queue, so replies and channel messages keep their order.
 */
export class HubConnection {
  readonly #hub: Hub;
  readonly #ws: WebSocket;
  readonly #auth: SocketAuth;
  readonly #queue: SendQueue;
  readonly #gate: ReadGate;
  readonly #serial: SerialRunner;
  readonly #subs = new Map<string, Subscription>();
  readonly #onGone: () => void;
  #closed = false;

  constructor(hub: Hub, ws: WebSocket, ip: string, onGone: () => void) {
    const { deps } = hub;
    this.#hub = hub;
    this.#ws = ws;
    this.#onGone = onGone;
    this.#auth = new SocketAuth({ ws, auth: deps.auth, events: deps.events, logger: deps.logger, route: '/v1/ws', ip });
    this.#queue = new SendQueue(
      { write: (data, done) => ws.send(data, { binary: false }, done), buffered: () => ws.bufferedAmount },
      deps.options.queue,
      () => this.#tooSlow(),
    );
    this.#gate = new ReadGate(ws);
    this.#serial = new SerialRunner({
      pauseAt: deps.options.maxPendingMessages,
      maxPending: deps.options.maxPendingMessages * 16,
      gate: this.#gate,
      onOverflow: () => this.close(CLOSE.TOO_SLOW, CLOSE_REASON.tooManyMessages),
      onError: (err) => {
        deps.logger.error({ err }, 'websocket message handling failed');
        this.close(CLOSE.INTERNAL, 'internal error');
      },
    });
  }

  /** The workspace the client acts in; null until it authenticated. */
  get workspace(): string | null {
    return this.#auth.principal?.workspace ?? null;
  }

  start(credential: Credential | null): void {
    this.#ws.on('message', (data: RawData, isBinary: boolean) => this.#serial.run(() => this.#onMessage(data, isBinary)));
    this.#ws.once('close', () => this.#teardown());
    if (credential) this.#serial.run(() => this.#login(credential));
    else this.#auth.armGrace(this.#hub.deps.options.authGraceMs);
  }

  /** Queues an encoded message; never waits. */
  enqueue(frame: Frame): void {
    this.#queue.push(frame);
  }

  send(msg: HubServerMessage): void {
    this.#queue.push(JSON.stringify(msg));
  }

  close(code: number, reason: string): void {
    closeSocket(this.#ws, code, reason);
    this.#teardown();
  }

  /** Re-checks the credential (closing the socket when it no longer holds) and each channel's scope. */
  async revalidate(): Promise<void> {
    if (this.#closed || !this.#auth.principal) return;
    const p = await this.#auth.revalidate();
    if (!p || this.#closed) return;
    for (const sub of [...this.#subs.values()]) {
      const entry = this.#hub.channel(sub.channel);
      if (entry && !this.#auth.permits(entry.def.scope, { channel: sub.channel })) {
        this.#cancel(sub);
        this.send(
          errorMessage('AUTHORIZATION_ERROR', `no longer allowed on channel ${sub.channel}: missing scope ${entry.def.scope}`, {
            channel: sub.channel,
            scope: entry.def.scope,
          }),
        );
        this.send({ type: 'unsubscribed', channel: sub.channel });
      }
    }
  }

  async #onMessage(data: RawData, isBinary: boolean): Promise<void> {
    if (this.#closed) return;
    const authed = this.#auth.principal !== null;
    if (isBinary) {
      if (!authed) this.close(CLOSE.FORBIDDEN, CLOSE_REASON.authRequired);
      else
        this.send(
          errorMessage('VALIDATION_ERROR', 'Invalid message: binary frames are not part of this protocol', {
            field: 'message',
            issue: 'binary frame',
          }),
        );
      return;
    }
    const parsed = parseMessage(HUB_MESSAGES, toBuffer(data).toString('utf8'));
    if (!authed) {
      // Before authentication only `auth` is accepted: anything else ends the socket.
      if (!parsed.ok || parsed.message.type !== 'auth') this.close(CLOSE.FORBIDDEN, CLOSE_REASON.authRequired);
      else await this.#login(credentialOf(parsed.message));
      return;
    }
    if (!parsed.ok) {
      this.send(parsed.error);
      return;
    }
    const m = parsed.message;
    switch (m.type) {
      case 'auth': {
        const p = await this.#auth.renew(credentialOf(m));
        if (p && !this.#closed) this.send(authenticatedMessage(p));
        return;
      }
      case 'subscribe':
        // The first explicit subscription narrows the default set to what the client names.
        for (const sub of [...this.#subs.values()]) if (sub.implicit) this.#cancel(sub);
        this.#subscribe(m.channel, m.after, m.batch === true);
        return;
      case 'unsubscribe': {
        const sub = this.#subs.get(m.channel);
        if (!sub) {
          this.send(errorMessage('NOT_FOUND', `not subscribed to channel ${m.channel}`, { channel: m.channel }));
          return;
        }
        this.#cancel(sub);
        this.send({ type: 'unsubscribed', channel: m.channel });
        return;
      }
      case 'ping':
        this.send({ type: 'pong' });
        return;
    }
  }

  async #login(credential: Credential): Promise<void> {
    const p = await this.#auth.login(credential);
    if (p && !this.#closed) {
      this.send(authenticatedMessage(p));
      if (this.#subs.size === 0) this.#subscribeDefaults();
    }
  }

  /**
   * A client that authenticated without subscribing gets the Director Protocol's four message
   * types for its workspace, live (no replay), without `subscribed` replies: the protocol's own
   * client only listens. Channels the caller's scopes do not allow are skipped silently.
   */
  #subscribeDefaults(): void {
    for (const name of DEFAULT_CHANNELS) {
      const entry = this.#hub.channel(name);
      if (!entry || this.#subs.has(name) || !this.#auth.allows(entry.def.scope)) continue;
      const sub: Subscription = { channel: name, conn: this, state: 'live', floor: entry.def.source.head(), batch: false, implicit: true };
      entry.subs.add(sub);
      this.#subs.set(name, sub);
    }
  }

  /**
   * Starts a subscription. Without `after` it is live at once from the current head. With
   * `after` it first replays from the store; registering, reading the head and answering
   * `subscribed` happen in one synchronous step, so nothing slips between them.
   */
  #subscribe(name: string, after: number | undefined, batch: boolean): void {
    const entry = this.#hub.channel(name);
    if (!entry) {
      this.send(errorMessage('NOT_FOUND', `unknown channel ${name}`, { channel: name, channels: this.#hub.channelNames() }));
      return;
    }
    if (!this.#auth.permits(entry.def.scope, { channel: name })) {
      this.send(
        errorMessage('AUTHORIZATION_ERROR', `missing required scope ${entry.def.scope} for channel ${name}`, {
          channel: name,
          scope: entry.def.scope,
        }),
      );
      return;
    }
    if (this.#subs.has(name)) {
      this.send(errorMessage('CONFLICT', `already subscribed to channel ${name}; unsubscribe first`, { channel: name }));
      return;
    }
    const head = entry.def.source.head();
    if (after !== undefined && after > head) {
      this.send(
        errorMessage('VALIDATION_ERROR', `Invalid after: cursor ${after} is ahead of the stream (at ${head}); subscribe without it`, {
          field: 'after',
          issue: 'ahead of the stream',
          head,
        }),
      );
      return;
    }
    const sub: Subscription = { channel: name, conn: this, state: after === undefined ? 'live' : 'replaying', floor: after ?? head, batch };
    entry.subs.add(sub);
    this.#subs.set(name, sub);
    this.send({ type: 'subscribed', channel: name, cursor: after ?? head });
    if (after !== undefined) {
      this.#replay(entry, sub, after).catch((err: unknown) => {
        this.#hub.deps.logger.error({ err, channel: name }, 'websocket replay failed');
        this.close(CLOSE.INTERNAL, 'replay failed');
      });
    }
  }

  /**
   * Replays stored items after `after`, paced by the send queue, then switches to live. The
   * switch happens right after a read that found nothing more, with no await in between: an
   * item emitted meanwhile is either in that read or arrives live with a higher cursor. Live
   * items are not buffered while replaying — the store already holds them.
   */
  async #replay(entry: ChannelEntry, sub: Subscription, after: number): Promise<void> {
    const workspace = this.workspace;
    if (workspace === null) return;
    let cursor = after;
    for (;;) {
      let waited = false;
      const page = entry.def.source.page(workspace, cursor, REPLAY_PAGE);
      // A batch subscription gets the page as one frame (REPLAY_PAGE ≤ BATCH_MAX_ITEMS).
      const frames = sub.batch
        ? batchFrames(
            entry.name,
            page.items.map((i) => new EncodedItem(i)),
          )
        : page.items.map(encodeItem);
      for (const frame of frames) {
        if (!this.#queue.hasRoom()) {
          waited = true;
          await this.#queue.waitForRoom();
        }
        if (sub.state === 'cancelled') return;
        this.enqueue(frame);
      }
      cursor = page.cursor;
      if (page.done && !waited) {
        sub.floor = cursor;
        sub.state = 'live';
        return;
      }
      await nextTurn();
      if (sub.state === 'cancelled') return;
    }
  }

  #cancel(sub: Subscription): void {
    sub.state = 'cancelled';
    this.#hub.channel(sub.channel)?.subs.delete(sub);
    this.#subs.delete(sub.channel);
  }

  /**
   * The queue overflowed: the client reads slower than its channels produce. It is told (best
   * effort, behind what it has not read yet) and closed; everyone else is unaffected.
   */
  #tooSlow(): void {
    const p = this.#auth.principal;
    this.#hub.deps.logger.warn(
      { userId: p?.userId, workspace: p?.workspace, bufferedBytes: this.#ws.bufferedAmount },
      'websocket client too slow; closing',
    );
    try {
      this.#ws.send(
        JSON.stringify(errorMessage('SLOW_CONSUMER', 'the client did not read fast enough; resume with the last cursor it received')),
      );
    } catch {
      // the socket is already gone
    }
    this.close(CLOSE.TOO_SLOW, CLOSE_REASON.tooSlow);
  }

  #teardown(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#auth.dispose();
    this.#queue.close();
    for (const sub of [...this.#subs.values()]) this.#cancel(sub);
    this.#onGone();
  }
}
