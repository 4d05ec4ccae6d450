import type { FastifyReply } from 'fastify';
import { serveEventStream } from '../event-stream.ts';
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
export function streamChat(
  reply: FastifyReply,
  open: (signal: AbortSignal) => AsyncGenerator<ChatEvent>,
  headers: Record<string, string> = {},
): Promise<FastifyReply> {
  return serveEventStream(reply, open, {
    heartbeatMs: HEARTBEAT_MS,
    headers,
    frame: sseFrame,
    errorData: (code, message) => ({ type: 'error', code, message }),
    endEvent: false,
  });
}
