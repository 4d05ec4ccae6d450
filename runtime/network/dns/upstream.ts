/**
 * The forwarder's client side: one query to the upstream resolver over UDP (a fresh socket and
 * a random id per query), retried over TCP when the UDP reply is truncated. Replies that do not
 * answer the question as sent are ignored, so a spoofed or stray datagram cannot be passed on.
 */
import dgram from 'node:dgram';
import { randomInt } from 'node:crypto';
import net from 'node:net';
import { answersQuery, encodeUpstreamQuery, type ParsedQuery } from './codec.ts';
import { readMessage, type WireMessage } from './wire.ts';

export interface UpstreamAddress {
  address: string;
  port: number;
}

export interface UpstreamReply {
  /** The reply as received (with Director's upstream id). */
  bytes: Buffer;
  message: WireMessage;
  viaTcp: boolean;
}

export class UpstreamError extends Error {
  readonly kind: 'timeout' | 'failed' | 'aborted';
  constructor(kind: 'timeout' | 'failed' | 'aborted', message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UpstreamError';
    this.kind = kind;
  }
}

/** Tries to read a reply to (q, id); null when it is not one. */
function matching(bytes: Buffer, q: ParsedQuery, id: number): WireMessage | null {
  try {
    const m = readMessage(bytes);
    return answersQuery(m, q, id) ? m : null;
  } catch {
    return null;
  }
}

/**
 * Runs `start` until it settles or `signal` aborts; `start` returns its cleanup, always run.
 */
function exchange<T>(signal: AbortSignal, start: (resolve: (v: T) => void, reject: (e: Error) => void) => () => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let cleanup: (() => void) | undefined;
    const finish = (fn: () => void) => {
      signal.removeEventListener('abort', onAbort);
      cleanup?.();
      fn();
    };
    const onAbort = () => {
      const timedOut = (signal.reason as Error | undefined)?.name === 'TimeoutError';
      finish(() =>
        reject(new UpstreamError(timedOut ? 'timeout' : 'aborted', timedOut ? 'upstream did not answer in time' : 'resolver closed')),
      );
    };
    if (signal.aborted) {
      onAbort();
      return;
    }
    signal.addEventListener('abort', onAbort, { once: true });
    let settled = false;
    const stop = start(
      (v) => {
        if (!settled) {
          settled = true;
          finish(() => resolve(v));
        }
      },
      (e) => {
        if (!settled) {
          settled = true;
          finish(() => reject(e));
        }
      },
    );
    if (settled) stop();
    else cleanup = stop;
  });
}

export class UpstreamClient {
  readonly #upstream: UpstreamAddress;
  readonly #timeoutMs: number;

  /** `timeoutMs` bounds the whole exchange, UDP and TCP retry together. */
  constructor(upstream: UpstreamAddress, timeoutMs: number) {
    this.#upstream = upstream;
    this.#timeoutMs = timeoutMs;
  }

  /** Resolves `q` upstream; rejects with an {@link UpstreamError}. */
  async resolve(q: ParsedQuery, closing: AbortSignal): Promise<UpstreamReply> {
    const signal = AbortSignal.any([closing, AbortSignal.timeout(this.#timeoutMs)]);
    const id = randomInt(0, 0x10000);
    const query = encodeUpstreamQuery(q, id);
    const udp = await this.#udp(query, q, id, signal);
    if (!udp.message.tc) return udp;
    return this.#tcp(query, q, id, signal);
  }

  #udp(query: Buffer, q: ParsedQuery, id: number, signal: AbortSignal): Promise<UpstreamReply> {
    return exchange(signal, (resolve, reject) => {
      const socket = dgram.createSocket(net.isIPv6(this.#upstream.address) ? 'udp6' : 'udp4');
      socket.on('error', (err) => reject(new UpstreamError('failed', `upstream UDP: ${err.message}`, { cause: err })));
      socket.on('message', (bytes) => {
        const message = matching(bytes, q, id);
        if (message) resolve({ bytes, message, viaTcp: false });
      });
      // A connected socket only accepts datagrams from the upstream's address and port.
      socket.connect(this.#upstream.port, this.#upstream.address, (err?: Error) => {
        if (err) {
          reject(new UpstreamError('failed', `upstream UDP connect: ${err.message}`, { cause: err }));
          return;
        }
        socket.send(query, (e) => {
          if (e) reject(new UpstreamError('failed', `upstream UDP send: ${e.message}`, { cause: e }));
        });
      });
      return () => socket.close();
    });
  }

  #tcp(query: Buffer, q: ParsedQuery, id: number, signal: AbortSignal): Promise<UpstreamReply> {
    return exchange(signal, (resolve, reject) => {
      const socket = net.createConnection({ host: this.#upstream.address, port: this.#upstream.port });
      let received = Buffer.alloc(0);
      socket.on('error', (err) => reject(new UpstreamError('failed', `upstream TCP: ${err.message}`, { cause: err })));
      socket.on('connect', () => {
        const length = Buffer.alloc(2);
        length.writeUInt16BE(query.length);
        // No half-close: some servers drop a connection whose write side has ended.
        socket.write(Buffer.concat([length, query]));
      });
      socket.on('data', (chunk: Buffer) => {
        received = Buffer.concat([received, chunk]);
        if (received.length < 2 || received.length < 2 + received.readUInt16BE(0)) return;
        const bytes = received.subarray(2, 2 + received.readUInt16BE(0));
        const message = matching(bytes, q, id);
        if (message && !message.tc) resolve({ bytes, message, viaTcp: true });
        else reject(new UpstreamError('failed', 'upstream TCP reply does not answer the query'));
      });
      socket.on('close', () => reject(new UpstreamError('failed', 'upstream closed the TCP connection without a reply')));
      return () => socket.destroy();
    });
  }
}
