import type { OutgoingHttpHeaders } from 'node:http';
import type { FastifyReply } from 'fastify';
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
