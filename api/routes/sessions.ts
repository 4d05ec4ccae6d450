import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { isoTime } from '../../core/clock.ts';
import type { SessionService } from '../../orchestration/sessions/service.ts';
import { CreateSessionSchema, SessionStatusSchema, UpdateSessionSchema } from '../../orchestration/sessions/schemas.ts';
import type { SessionRecord } from '../../orchestration/sessions/store.ts';
import { callerOf, send } from '../context.ts';
import { AnyObject, Envelope, IdParams, Page, PageQuery, STANDARD_ERRORS } from '../schemas.ts';

export const SessionSchema = Type.Object(
  {
    id: Type.String(),
    type: Type.String(),
    name: Type.String(),
    description: Type.String(),
    status: SessionStatusSchema,
    reason: Type.Union([Type.String(), Type.Null()], { description: 'Why the session ended; null while it is open' }),
    config: AnyObject,
    metrics: Type.Object({ activeDepartments: Type.Integer(), totalTasks: Type.Integer() }),
    createdAt: Type.String(),
    updatedAt: Type.String(),
    expiresAt: Type.Union([Type.String(), Type.Null()], { description: 'When the timeout ends the session; null once ended' }),
    endedAt: Type.Union([Type.String(), Type.Null()]),
  },
  { additionalProperties: false },
);

const ListQuery = Type.Object({ status: Type.Optional(SessionStatusSchema), ...PageQuery }, { additionalProperties: false });

/** The Director Protocol's Session API (`/v1/sessions`). */
export const sessionRoutes: FastifyPluginAsync<{ sessions: SessionService }> = async (base, { sessions }) => {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  const Params = IdParams('ses');
  const view = (r: SessionRecord) => ({
    id: r.id,
    type: r.type,
    name: r.name,
    description: r.description,
    status: r.status,
    reason: r.reason,
    config: r.config as unknown as Record<string, unknown>,
    metrics: sessions.metrics(r),
    createdAt: isoTime(r.createdMs),
    updatedAt: isoTime(r.updatedMs),
    expiresAt: r.expiresMs === null ? null : isoTime(r.expiresMs),
    endedAt: r.endedMs === null ? null : isoTime(r.endedMs),
  });

  app.post('/sessions', {
    config: { scope: 'sessions:write', idempotent: true },
    schema: {
      tags: ['sessions'],
      summary: 'Create a session',
      description:
        'A session owns what is made in it: sandboxes (`sessionId` on `POST /v1/sandboxes`), departments, context windows, checkpoints and workflow runs. It starts `active` and ends when its `config.timeout` passes (`expired`), when its owner completes it (`PUT {status: "completed"}`) or on `DELETE` (`terminated`). Emits `session_update` on the WebSocket and the `session.created` webhook.',
      body: CreateSessionSchema,
      response: { 201: Envelope(SessionSchema), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, view(sessions.create(callerOf(req), req.body)), 201),
  });

  app.get('/sessions', {
    config: { scope: 'sessions:read' },
    schema: {
      tags: ['sessions'],
      summary: 'List sessions',
      description: 'Newest first. Without `status`, every session but terminated (deleted) ones.',
      querystring: ListQuery,
      response: { 200: Envelope(Page(SessionSchema)), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      const { status, limit = 20, offset = 0 } = req.query;
      const page = sessions.list(callerOf(req), { ...(status ? { status } : {}), limit, offset });
      return send(reply, { items: page.items.map(view), total: page.total, limit, offset });
    },
  });

  app.get('/sessions/:id', {
    config: { scope: 'sessions:read' },
    schema: {
      tags: ['sessions'],
      summary: 'Get a session',
      params: Params,
      response: { 200: Envelope(SessionSchema), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, view(sessions.get(callerOf(req), req.params.id))),
  });

  app.put('/sessions/:id', {
    config: { scope: 'sessions:write' },
    schema: {
      tags: ['sessions'],
      summary: 'Update a session',
      description:
        '`config` is merged key by key (unset keys keep their values; `null` removes an optional key). A new `timeout` counts from the creation: one already passed expires the session now. `status` may be `paused` (no new work), `active` or `completed` (ends it: its sandboxes stop, its runs are cancelled). An ended session cannot be changed (409).',
      params: Params,
      body: UpdateSessionSchema,
      response: { 200: Envelope(SessionSchema), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, view(await sessions.update(callerOf(req), req.params.id, req.body))),
  });

  app.delete('/sessions/:id', {
    config: { scope: 'sessions:write' },
    schema: {
      tags: ['sessions'],
      summary: 'Delete a session and everything it owns',
      description:
        'Cascades: running work is cancelled, the session’s sandboxes (their containers and private networks) are removed, its departments, context windows and checkpoints (their stored files) are deleted. The session is then gone from the API (404). Emits `session_update` with status `terminated` and the `session.ended` webhook.',
      params: Params,
      response: { 200: Envelope(Type.Object({ id: Type.String(), deleted: Type.Literal(true) })), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      await sessions.delete(callerOf(req), req.params.id);
      return send(reply, { id: req.params.id, deleted: true as const });
    },
  });
};
