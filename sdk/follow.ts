/**
 * Following a resumable server-sent event stream (a workflow's events, a chat turn): every event
 * carries an id, and when the connection drops before the stream said it was over, the SDK
 * reconnects with `Last-Event-ID` and continues exactly after the last event it yielded (the
 * server never repeats or skips one). Errors the API answers (404, 403 ...) are not retried.
 */
import { apiError, ConnectionError, DirectorApiError } from './errors.ts';
import { backoffDelayMs, reconnectSettings, type ReconnectOptions } from './backoff.ts';
import { parseSse } from './sse.ts';

/** An event as followed: its id (the resume point) and its JSON data. */
export interface FollowedEvent {
  id: number;
  type: string;
  data: Record<string, unknown>;
}

export interface FollowOptions {
  /** Start after this event id (default: from the first). */
  after?: number;
  signal?: AbortSignal;
  /** Reconnect after a drop (default true; the delays of {@link ReconnectOptions}, 5 failed attempts in a row at most). */
  reconnect?: boolean | ReconnectOptions;
}

/** How one stream is opened and when it is over. */
export interface FollowSource {
  /** Opens the stream after `after` (undefined: from the start); throws the API's error when refused. */
  open(after: number | undefined, signal: AbortSignal | undefined): Promise<Response>;
  /** Whether this event is the last one (the server closes after it). */
  isLast(event: FollowedEvent): boolean;
  /** Whether a failure of {@link open} may be followed by another `open` (default: any connection failure may). */
  reopenable?(err: unknown): boolean;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

/**
 * Yields the events of `source` from `opts.after` on, reconnecting after drops, until the last
 * one (yielded) or a stream-ending `end` event (not yielded). An `error` event without an id (the
 * server's source failed) is thrown as the API error it carries.
 */
export async function* follow(source: FollowSource, opts: FollowOptions = {}): AsyncGenerator<FollowedEvent> {
  const rc = reconnectSettings(opts.reconnect, { maxAttempts: 5 });
  let after = opts.after;
  let failures = 0;
  for (;;) {
    let dropped: unknown = null;
    try {
      const res = await source.open(after, opts.signal);
      if (!res.body) throw new ConnectionError({ code: 'CONNECTION_ERROR', message: 'the event stream answered without a body' });
      for await (const ev of parseSse(res.body)) {
        if (ev.event === 'end') return;
        const data = JSON.parse(ev.data) as Record<string, unknown>;
        if (ev.id === undefined || ev.id === '') {
          if (ev.event === 'error') {
            throw apiError({
              code: typeof data.code === 'string' ? data.code : 'INTERNAL_ERROR',
              message: typeof data.message === 'string' ? data.message : 'the event stream failed',
              status: res.status,
              requestId: res.headers.get('x-request-id'),
            });
          }
          continue;
        }
        const event: FollowedEvent = { id: Number(ev.id), type: ev.event, data };
        after = event.id;
        failures = 0;
        yield event;
        if (source.isLast(event)) return;
      }
      dropped = new ConnectionError({ code: 'CONNECTION_ERROR', message: 'the event stream ended before it was over' });
    } catch (err) {
      // Answers of the API (not found, forbidden ...) and the caller's abort end the follow.
      if (opts.signal?.aborted || (err instanceof DirectorApiError && !(err instanceof ConnectionError))) throw err;
      if ((err as { name?: string }).name === 'AbortError') throw err;
      if (source.reopenable && !source.reopenable(err)) throw err;
      dropped = err;
    }
    failures++;
    if (!rc || failures > rc.maxAttempts) throw dropped;
    await sleep(backoffDelayMs(rc, failures - 1), opts.signal);
    if (opts.signal?.aborted) throw opts.signal.reason ?? new Error('aborted');
  }
}
