import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { isoTime } from '../../core/clock.ts';
import { CreateAgentSchema } from '../../orchestration/agents/schemas.ts';
import type { AgentService } from '../../orchestration/agents/service.ts';
import type { AgentRecord } from '../../orchestration/agents/store.ts';
import { callerOf, send } from '../context.ts';
import { AnyObject, Envelope, IdParams, Page, PageQuery, STANDARD_ERRORS } from '../schemas.ts';

export const AgentSchema = Type.Object({
  id: Type.String(),
  name: Type.String(),
  sessionId: Type.String(),
  departmentId: Type.String(),
  provider: Type.Union([Type.String(), Type.Null()], { description: "A registered provider, or null for the instance's" }),
  model: Type.Union([Type.String(), Type.Null()], { description: "Null: the provider's default model" }),
  systemPrompt: Type.String(),
  tools: Type.Array(Type.String()),
  approvalPolicy: Type.Unknown(),
  maxSteps: Type.Integer(),
  maxTokens: Type.Union([Type.Integer(), Type.Null()]),
  maxOutputTokens: Type.Integer(),
  maxHistoryMessages: Type.Integer(),
  temperature: Type.Union([Type.Number(), Type.Null()]),
  secrets: Type.Record(Type.String(), Type.String(), {
    description: 'Environment variable → vault secret id (the values are never shown)',
  }),
  sandbox: Type.Object({ image: Type.Union([Type.String(), Type.Null()]) }),
  createdBy: Type.Union([Type.String(), Type.Null()]),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});

const AgentEventSchema = Type.Object({
  seq: Type.Integer(),
  type: Type.String(),
  timestamp: Type.String(),
  sessionId: Type.String(),
  turnId: Type.Union([Type.String(), Type.Null()]),
  data: AnyObject,
});

export const agentView = (a: AgentRecord) => ({
  id: a.id,
  name: a.name,
  sessionId: a.sessionId,
  departmentId: a.departmentId,
  provider: a.config.provider,
  model: a.config.model,
  systemPrompt: a.config.systemPrompt,
  tools: a.config.tools,
  approvalPolicy: a.config.approvalPolicy,
  maxSteps: a.config.maxSteps,
  maxTokens: a.config.maxTokens,
  maxOutputTokens: a.config.maxOutputTokens,
  maxHistoryMessages: a.config.maxHistoryMessages,
  temperature: a.config.temperature,
  secrets: a.config.secrets,
  sandbox: { image: a.config.image },
  createdBy: a.createdBy,
  createdAt: isoTime(a.createdMs),
  updatedAt: isoTime(a.updatedMs),
});

/** Agents (`/v1/agents`): the agent platform seed's list / spawn / get / remove and cursor-paged events. */
export const agentRoutes: FastifyPluginAsync<{ agents: AgentService }> = async (base, { agents }) => {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  const Params = IdParams('agt');

  app.post('/agents', {
    config: { scope: 'agents:write', idempotent: true },
    schema: {
      tags: ['agents'],
      summary: 'Create an agent',
      description:
        "An agent belongs to a department (so to that department's session, which must be active) and chats there (`POST /v1/chat`). Its tools run in its own sandbox in the session, made on first use under the department's and session's limits from the session's environment. `approvalPolicy` says which tool calls wait for a person (default: reads run at once, `execute` and `write_file` wait); `maxSteps` bounds tool rounds per turn (default 10), `maxTokens` the tokens per turn. `secrets` binds vault secrets into the tools' executions as environment variables.",
      body: CreateAgentSchema,
      response: { 201: Envelope(AgentSchema), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, agentView(agents.create(callerOf(req), req.body)), 201),
  });

  app.get('/agents', {
    config: { scope: 'agents:read' },
    schema: {
      tags: ['agents'],
      summary: 'List agents',
      querystring: Type.Object(
        {
          sessionId: Type.Optional(Type.String({ pattern: '^ses_[A-Za-z0-9_-]{16}$' })),
          departmentId: Type.Optional(Type.String({ pattern: '^dep_[A-Za-z0-9_-]{16}$' })),
          ...PageQuery,
        },
        { additionalProperties: false },
      ),
      response: { 200: Envelope(Page(AgentSchema)), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      const { sessionId, departmentId, limit = 20, offset = 0 } = req.query;
      const page = agents.list(callerOf(req), {
        ...(sessionId ? { sessionId } : {}),
        ...(departmentId ? { departmentId } : {}),
        limit,
        offset,
      });
      return send(reply, { items: page.items.map(agentView), total: page.total, limit, offset });
    },
  });

  app.get('/agents/:id', {
    config: { scope: 'agents:read' },
    schema: { tags: ['agents'], summary: 'Get an agent', params: Params, response: { 200: Envelope(AgentSchema), ...STANDARD_ERRORS } },
    handler: async (req, reply) => send(reply, agentView(agents.get(callerOf(req), req.params.id))),
  });

  app.delete('/agents/:id', {
    config: { scope: 'agents:write' },
    schema: {
      tags: ['agents'],
      summary: 'Delete an agent',
      description:
        'Its turn in progress is cancelled (waiting tool calls with it) and its auto-approve rules are removed; its messages stay in the session.',
      params: Params,
      response: { 200: Envelope(Type.Object({ id: Type.String(), deleted: Type.Literal(true) })), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      await agents.delete(callerOf(req), req.params.id);
      return send(reply, { id: req.params.id, deleted: true as const });
    },
  });

  app.get('/agents/:id/events', {
    config: { scope: 'agents:read' },
    schema: {
      tags: ['agents'],
      summary: "An agent's recent events (cursor-paged ring buffer)",
      description:
        "The agent's last 200 events with sequential ids from 1 (`turn_started`, `tool_start`, `tool_approval`, `approval_decided`, `tool_end`, `usage`, `message`, `done`, `error`; the streamed deltas are in the chat stream). Poll with `after` = the last `seq` seen; `missed` counts events the ring dropped since then. Kept in memory: a restart empties it.",
      params: Params,
      querystring: Type.Object(
        {
          after: Type.Optional(Type.Integer({ minimum: 0, default: 0 })),
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 200 })),
        },
        { additionalProperties: false },
      ),
      response: {
        200: Envelope(
          Type.Object({ events: Type.Array(AgentEventSchema), cursor: Type.Integer(), oldest: Type.Integer(), missed: Type.Integer() }),
        ),
        ...STANDARD_ERRORS,
      },
    },
    handler: async (req, reply) => send(reply, agents.events(callerOf(req), req.params.id, req.query.after ?? 0, req.query.limit ?? 200)),
  });
};
