/**
 * The per-connection bounded send queue. Producers (the event bus, replays) push without
 * waiting; the queue hands messages to the socket only while the socket's own buffer is below
 * a high-water mark, and overflows — once, for good — when a client falls too far behind.
 * That is what keeps one slow reader from holding memory or delaying anyone else.
 */

/**
 * One text message: a string, or its UTF-8 bytes when it was encoded once for many sockets
 * (the hub's fan-out), so each socket does not encode it again.
 */
export type Frame = string | Buffer;

/** Where queued messages go: a WebSocket in production, a fake in tests. */
export interface QueueSink {
  /** Writes one text message; `done` runs once it left the process (or the write failed). */
  write(data: Frame, done: () => void): void;
  /** Bytes accepted by `write` but not yet handed to the kernel (`ws.bufferedAmount`). */
  buffered(): number;
}

export interface SendQueueLimits {
  /** Messages waiting at most before the client counts as too slow; default 1000. */
  maxMessages: number;
  /** Bytes waiting at most (queued plus the socket's buffer); default 4 MiB. */
  maxBytes: number;
  /** Stop handing messages to the socket while it buffers this many bytes; default 256 KiB. */
  highWaterBytes: number;
}

export const DEFAULT_QUEUE_LIMITS: SendQueueLimits = { maxMessages: 1000, maxBytes: 4 * 1024 * 1024, highWaterBytes: 256 * 1024 };

export type QueueState = 'open' | 'overflowed' | 'closed';

export class SendQueue {
  readonly limits: SendQueueLimits;
  readonly #sink: QueueSink;
  readonly #onOverflow: () => void;
  #items: ({ data: Frame; size: number } | undefined)[] = [];
  #head = 0;
  #bytes = 0;
  #state: QueueState = 'open';
  #pumping = false;
  #waiters: (() => void)[] = [];
  readonly #written = () => this.#pump();

  constructor(sink: QueueSink, limits: Partial<SendQueueLimits>, onOverflow: () => void) {
    this.#sink = sink;
    this.limits = { ...DEFAULT_QUEUE_LIMITS, ...limits };
    this.#onOverflow = onOverflow;
  }

  get state(): QueueState {
    return this.#state;
  }

  /** Messages waiting to be handed to the socket. */
  get length(): number {
    return this.#items.length - this.#head;
  }

  /** Bytes of the messages waiting. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Queues one message and sends what the socket can take. Never blocks. Returns false when
   * the queue is not open, or when this message overflowed it: then everything queued is
   * dropped and `onOverflow` runs (once).
   */
  push(data: Frame): boolean {
    if (this.#state !== 'open') return false;
    const size = typeof data === 'string' ? Buffer.byteLength(data) : data.length;
    const idle = this.length === 0 && this.#sink.buffered() === 0;
    // A single oversized message still goes out when nothing else waits.
    if (!idle && (this.length >= this.limits.maxMessages || this.#bytes + size + this.#sink.buffered() > this.limits.maxBytes)) {
      this.#finish('overflowed');
      this.#onOverflow();
      return false;
    }
    this.#items.push({ data, size });
    this.#bytes += size;
    this.#pump();
    return true;
  }

  /** Below a quarter of both limits: bulk producers (replays) push only then. */
  hasRoom(): boolean {
    return this.length <= this.limits.maxMessages / 4 && this.#bytes + this.#sink.buffered() <= this.limits.maxBytes / 4;
  }

  /** Resolves once {@link hasRoom} holds again, or the queue is no longer open. */
  waitForRoom(): Promise<void> {
    if (this.#state !== 'open' || this.hasRoom()) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Drops whatever waits and refuses further messages. */
  close(): void {
    if (this.#state === 'open') this.#finish('closed');
  }

  #finish(state: QueueState): void {
    this.#state = state;
    this.#items = [];
    this.#head = 0;
    this.#bytes = 0;
    this.#wake();
  }

  #pump(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (this.#state === 'open' && this.#head < this.#items.length && this.#sink.buffered() < this.limits.highWaterBytes) {
        const item = this.#items[this.#head]!;
        this.#items[this.#head++] = undefined;
        this.#bytes -= item.size;
        this.#sink.write(item.data, this.#written);
      }
      if (this.#head === this.#items.length) {
        this.#items = [];
        this.#head = 0;
      } else if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
        this.#items = this.#items.slice(this.#head);
        this.#head = 0;
      }
    } finally {
      this.#pumping = false;
    }
    if (this.#waiters.length && this.hasRoom()) this.#wake();
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }
}
