import type { OutgoingHttpHeaders } from 'node:http';
import type { FastifyReply } from 'fastify';
import { serveEventStream } from '../event-stream.ts';
import type { ExecChunk } from '../../runtime/sandbox/execute.ts';

/**
 * Streams an execution as server-sent events: `stdout` / `stderr` events carry `{"data": text}`,
 * the final `exit` event carries the result without output. Every event has an increasing id.
 * Errors after the stream started arrive as an `error` event in the envelope's error shape.
 */
export async function streamExecution(reply: FastifyReply, chunks: AsyncGenerator<ExecChunk>): Promise<FastifyReply> {
  // Pull the first chunk before committing to a 200: validation and authorization errors,
  // which the generator raises before anything runs, still answer with a proper status.
  const first = await chunks.next();
  reply.hijack();
  const raw = reply.raw;
  // A hijacked reply sends none of the headers set on it: carry them over (request id, rate limit).
  raw.writeHead(200, {
    ...(reply.getHeaders() as OutgoingHttpHeaders),
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
    'x-request-id': reply.request.id,
  });
  let id = 0;
  const write = (event: string, data: unknown) => raw.write(`id: ${++id}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  const emit = (c: ExecChunk) => {
    if (c.type === 'exit') {
      const { type: _t, ...rest } = c;
      write('exit', rest);
    } else write(c.type, { data: c.data });
  };
  try {
    if (!first.done) emit(first.value);
    for await (const c of chunks) emit(c);
  } catch (err) {
    const e = err as { code?: string; message?: string };
    write('error', { code: e.code ?? 'INTERNAL_ERROR', message: e.code ? e.message : 'internal error' });
  } finally {
    raw.end();
  }
  return reply;
}

/** One entry of a resumable event stream: `seq` is its SSE id (what `Last-Event-ID` names). */
export interface StreamedEvent {
  seq: number;
  type: string;
  data: unknown;
}

/**
 * Streams a resumable event log as server-sent events: each event carries its `seq` as id, so a
 * client that reconnects with `Last-Event-ID` continues exactly after it. A comment line every
 * `heartbeatMs` keeps proxies from closing an idle stream. When the log ends, a final `end` event
 * (without id) says so. A client that goes away aborts `signal`, which ends `events`.
 */
export function streamEvents(
  reply: FastifyReply,
  open: (signal: AbortSignal) => AsyncGenerator<StreamedEvent>,
  opts: { heartbeatMs: number },
): Promise<FastifyReply> {
  return serveEventStream(reply, open, {
    heartbeatMs: opts.heartbeatMs,
    frame: (e) => `id: ${e.seq}\nevent: ${e.type}\ndata: ${JSON.stringify(e.data)}\n\n`,
    errorData: (code, message) => ({ code, message }),
    endEvent: true,
  });
}
