import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { FastifyReply } from 'fastify';
import type { ChatEvent } from '../../orchestration/chat/events.ts';

/** A comment line this often keeps proxies from closing a stream that waits (for a person's approval, say). */
const HEARTBEAT_MS = 15_000;

/** One chat event as an SSE frame: its seq as id, its type as event name, and `{type, ...data}` as data (the Denkeeper seed's shape). */
export const sseFrame = (e: Pick<ChatEvent, 'seq' | 'type' | 'data'>): string =>
  `id: ${e.seq}\nevent: ${e.type}\ndata: ${JSON.stringify({ type: e.type, ...e.data })}\n\n`;

/**
 * Streams chat events as server-sent events until `events` ends. Each frame carries its seq as
 * `id`, so a client that lost the connection resumes with `Last-Event-ID` on
 * `GET /v1/chat/{sessionId}/events`. The turn itself does not depend on this response: a client
 * that goes away only stops its own stream.
 */
export async function streamChat(
  reply: FastifyReply,
  open: (signal: AbortSignal) => AsyncGenerator<ChatEvent>,
  headers: Record<string, string> = {},
): Promise<FastifyReply> {
  const ac = new AbortController();
  reply.hijack();
  const raw: ServerResponse = reply.raw;
  // A hijacked reply sends none of the headers set on it: carry them over (request id, rate limit).
  raw.writeHead(200, {
    ...(reply.getHeaders() as OutgoingHttpHeaders),
    ...headers,
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
    'x-request-id': reply.request.id,
  });
  raw.once('close', () => ac.abort());
  const beat = setInterval(() => raw.write(': keep-alive\n\n'), HEARTBEAT_MS);
  beat.unref();
  try {
    for await (const e of open(ac.signal)) {
      if (ac.signal.aborted) break;
      raw.write(sseFrame(e));
    }
  } catch (err) {
    const e = err as { code?: string; message?: string };
    raw.write(
      `event: error\ndata: ${JSON.stringify({ type: 'error', code: e.code ?? 'INTERNAL_ERROR', message: e.code ? e.message : 'internal error' })}\n\n`,
    );
  } finally {
    clearInterval(beat);
    raw.end();
  }
  return reply;
}
