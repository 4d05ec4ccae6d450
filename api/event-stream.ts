import type { OutgoingHttpHeaders } from 'node:http';
import type { FastifyReply } from 'fastify';

/** How one kind of stream writes its frames (workflow events, chat events ...). */
export interface EventStreamFormat<E> {
  /** A comment line this often keeps proxies from closing an idle stream. */
  heartbeatMs: number;
  /** Extra response headers (rate limit, resume hints). */
  headers?: Record<string, string>;
  /** One event as an SSE frame, ending with the blank line. */
  frame(e: E): string;
  /** The `data` of the `error` event sent when the source fails. */
  errorData(code: string, message: string): Record<string, unknown>;
  /** Sends a final `event: end` when the source ends on its own. */
  endEvent: boolean;
}

/**
 * Serves a source of events as server-sent events on a hijacked reply. A hijacked reply sends
 * none of the headers set on it, so they are carried over (request id, rate limit). A client that
 * goes away aborts `signal`, which ends the source; the stream itself changes nothing else.
 */
export async function serveEventStream<E>(
  reply: FastifyReply,
  open: (signal: AbortSignal) => AsyncGenerator<E>,
  fmt: EventStreamFormat<E>,
): Promise<FastifyReply> {
  const ac = new AbortController();
  reply.hijack();
  const raw = reply.raw;
  raw.writeHead(200, {
    ...(reply.getHeaders() as OutgoingHttpHeaders),
    ...fmt.headers,
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
    'x-request-id': reply.request.id,
  });
  raw.once('close', () => ac.abort());
  const beat = setInterval(() => raw.write(': keep-alive\n\n'), fmt.heartbeatMs);
  beat.unref();
  try {
    for await (const e of open(ac.signal)) {
      if (ac.signal.aborted) break;
      raw.write(fmt.frame(e));
      // Node corks a response's socket at each write until the next tick, and that tick waits
      // for every microtask queued meanwhile: a model stream whose chunks arrived together would
      // hold its first `content` frame back until the whole turn had been processed. Each frame
      // goes out as it is written (a second uncork at that tick does nothing).
      if (raw.socket?.writableCorked) raw.socket.uncork();
    }
    if (fmt.endEvent && !ac.signal.aborted) raw.write('event: end\ndata: {}\n\n');
  } catch (err) {
    const e = err as { code?: string; message?: string };
    const data = fmt.errorData(e.code ?? 'INTERNAL_ERROR', e.code ? (e.message ?? '') : 'internal error');
    raw.write(`event: error\ndata: ${JSON.stringify(data)}\n\n`);
  } finally {
    clearInterval(beat);
    raw.end();
  }
  return reply;
}
