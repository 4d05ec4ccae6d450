import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { isoTime } from '../../core/clock.ts';
import { DirectorError, validationError } from '../../core/errors.ts';
import { ChatRequestSchema } from '../../orchestration/chat/schemas.ts';
import type { ChatService, TurnResult } from '../../orchestration/chat/service.ts';
import type { MessageRecord } from '../../orchestration/chat/messages.ts';
import { callerOf, send } from '../context.ts';
import { AnyObject, Envelope, ErrorEnvelope, IdParams, Page, PageQuery, STANDARD_ERRORS } from '../schemas.ts';
import { streamChat } from './chat-stream.ts';

const UsageSchema = Type.Object({
  inputTokens: Type.Integer(),
  outputTokens: Type.Integer(),
  totalTokens: Type.Integer(),
  reasoningTokens: Type.Integer(),
  cachedInputTokens: Type.Integer(),
});

const ChatAnswerSchema = Type.Object({
  sessionId: Type.String(),
  turnId: Type.String(),
  agentId: Type.String(),
  response: Type.String({ description: 'Everything the model said in the turn, as streamed' }),
  finishReason: Type.Union([Type.String(), Type.Null()]),
  reason: Type.Union([Type.String(), Type.Null()], {
    description: '`step_budget`, `token_budget` or `superseded` when the turn ended early; null otherwise',
  }),
  usage: UsageSchema,
  cost: Type.Union([Type.Number(), Type.Null()], { description: 'USD when the model is priced (DIRECTOR_LLM_PRICING), else null' }),
  steps: Type.Integer({ description: 'Model calls made' }),
});

const MessageSchema = Type.Object({
  id: Type.String(),
  seq: Type.Integer(),
  turnId: Type.Union([Type.String(), Type.Null()]),
  agentId: Type.Union([Type.String(), Type.Null()]),
  role: Type.String(),
  content: Type.Unknown({
    description: 'Text, or parts (text, reasoning, tool-call, tool-result) as the model sees them; secrets redacted',
  }),
  createdAt: Type.String(),
});

const SessionParams = IdParams('ses');

const lastEventId = (header: unknown, after: number | undefined): number => {
  if (after !== undefined) return after;
  if (header === undefined) return 0;
  const v: unknown = Array.isArray(header) ? (header as unknown[])[0] : header;
  if (typeof v !== 'string' || !/^\d{1,15}$/.test(v.trim()))
    throw validationError('Last-Event-ID', 'must be an event id (a non-negative integer)');
  return Number(v.trim());
};

const wantsStream = (accept: string | undefined) => (accept ?? '').includes('text/event-stream');

/** Chat (the Denkeeper seed's `POST /chat`, under `/v1`), its resumable stream, and a session's messages and stats. */
export const chatRoutes: FastifyPluginAsync<{ chat: ChatService }> = async (base, { chat }) => {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();

  const answer = (r: TurnResult) => {
    if (r.error?.code === 'CANCELLED')
      throw new DirectorError('CONFLICT', `the turn was cancelled: ${r.error.message}`, { turnId: r.turnId, sessionId: r.sessionId });
    if (r.error) {
      throw new DirectorError('SERVICE_UNAVAILABLE', `the model provider failed: ${r.error.message}`, {
        reason: r.error.code === 'PROVIDER_TIMEOUT' ? 'provider_timeout' : 'provider_error',
        turnId: r.turnId,
        sessionId: r.sessionId,
      });
    }
    return {
      sessionId: r.sessionId,
      turnId: r.turnId,
      agentId: r.agentId,
      response: r.response,
      finishReason: r.finishReason,
      reason: r.reason,
      usage: r.usage,
      cost: r.cost,
      steps: r.steps,
    };
  };

  app.post('/chat', {
    config: { scope: 'chat' },
    schema: {
      tags: ['chat'],
      summary: 'Send a message to an agent',
      description:
        "Runs one turn of the agent in its session: the model (through the agent's provider) answers and may call tools (`execute`, `read_file`, `write_file`, `list_files`), which run in the agent's sandbox inside the session under the department's limits and the network policy, after approval where the agent's policy wants it. JSON (default): waits for the whole turn, approvals included, and answers `{sessionId, response, usage, cost}`; a provider failure answers 503 (`details.reason` `provider_error` or `provider_timeout`). With `Accept: text/event-stream`: server-sent events `content`, `thinking`, `tool_start`, `tool_approval`, `tool_end`, `usage`, then `done` or `error`, each with an id (headers `X-Director-Session-Id` and `X-Director-Turn-Id` name the turn; `X-Director-Turn-After` is the event id this turn's events come after); a client that disconnects does not stop the turn and resumes with `GET /v1/chat/{sessionId}/events` and `Last-Event-ID` (its last event's id, or `X-Director-Turn-After` when it got none, so an earlier turn's kept events are not replayed). One turn at a time per session: a message while a turn runs is refused with 409, except while that turn waits for approval, when it supersedes it (the waiting calls are denied as `superseded` and this turn starts once that one ended). With no LLM provider configured: 503 naming the DIRECTOR_LLM_* settings.",
      body: ChatRequestSchema,
      response: { 200: Envelope(ChatAnswerSchema), ...STANDARD_ERRORS, 409: ErrorEnvelope },
    },
    handler: async (req, reply) => {
      const caller = callerOf(req);
      const turn = chat.send(caller, req.body);
      if (wantsStream(req.headers.accept)) {
        return streamChat(reply, (signal) => chat.follow(caller, turn.sessionId, turn.fromSeq, { turnId: turn.id, signal }), {
          'x-director-session-id': turn.sessionId,
          'x-director-turn-id': turn.id,
          'x-director-turn-after': String(turn.fromSeq),
        });
      }
      return send(reply, answer(await turn.finished));
    },
  });

  app.get('/chat/:id/events', {
    config: { scope: 'chat' },
    schema: {
      tags: ['chat'],
      summary: "Resume a session's chat stream",
      description:
        "Server-sent events of the session's chat after `Last-Event-ID` (or `?after=`): what was kept (DIRECTOR_CHAT_EVENT_RETENTION_MS), then live until the turn in progress ends with `done` or `error`; with no turn in progress the stream ends after what was kept. The ids are those of `POST /v1/chat`'s stream.",
      params: SessionParams,
      querystring: Type.Object(
        {
          after: Type.Optional(
            Type.Integer({ minimum: 0, description: 'Resume after this event id (for clients that cannot set Last-Event-ID)' }),
          ),
        },
        { additionalProperties: false },
      ),
      response: STANDARD_ERRORS,
    },
    handler: async (req, reply) => {
      const caller = callerOf(req);
      const after = lastEventId(req.headers['last-event-id'], req.query.after);
      // Checks the session (404) now, while the answer can still be an error status; the stream follows it afresh.
      chat.follow(caller, req.params.id, after);
      return streamChat(reply, (signal) => chat.follow(caller, req.params.id, after, { signal }));
    },
  });

  const messageView = (m: MessageRecord) => ({
    id: m.id,
    seq: m.seq,
    turnId: m.turnId,
    agentId: m.agentId,
    role: m.role,
    content: m.content,
    createdAt: isoTime(m.createdMs),
  });

  app.get('/sessions/:id/messages', {
    config: { scope: 'sessions:read' },
    schema: {
      tags: ['chat'],
      summary: "A session's messages",
      description:
        'In order: user messages, what agents answered (text, reasoning, tool calls) and tool results, as the models saw them, with vault secrets redacted. `after` pages by `seq`.',
      params: SessionParams,
      querystring: Type.Object({ after: Type.Optional(Type.Integer({ minimum: 0 })), ...PageQuery }, { additionalProperties: false }),
      response: { 200: Envelope(Page(MessageSchema)), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      const { after, limit = 100, offset = 0 } = req.query;
      const page = chat.messages(callerOf(req), req.params.id, { ...(after !== undefined ? { after } : {}), limit, offset });
      return send(reply, { items: page.items.map(messageView), total: page.total, limit, offset });
    },
  });

  app.get('/sessions/:id/stats', {
    config: { scope: 'sessions:read' },
    schema: {
      tags: ['chat'],
      summary: "A session's chat telemetry",
      description:
        'Turns by state, tokens (input, output, reasoning, cached input), cost in USD (the sum over turns of priced models; null when none was priced; `unpricedTurns` counts the others), messages, tool calls by tool and by outcome (`ok`, `error`, `denied`, `invalid`), approvals by decision, and the models used.',
      params: SessionParams,
      response: { 200: Envelope(AnyObject), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, chat.stats(callerOf(req), req.params.id) as unknown as Record<string, unknown>),
  });
};
