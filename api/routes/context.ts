import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { isoTime } from '../../core/clock.ts';
import { ContextItemSchema, CreateContextSchema } from '../../orchestration/context/schemas.ts';
import type { ContextService } from '../../orchestration/context/service.ts';
import type { ContextItemRecord, ContextWindowRecord } from '../../orchestration/context/store.ts';
import { callerOf, send } from '../context.ts';
import { AnyObject, Envelope, IdParams, Page, PageQuery, STANDARD_ERRORS } from '../schemas.ts';

const WindowSchema = Type.Object(
  {
    id: Type.String(),
    sessionId: Type.String(),
    name: Type.String(),
    config: AnyObject,
    itemCount: Type.Integer(),
    sizeBytes: Type.Integer(),
    createdAt: Type.String(),
    updatedAt: Type.String(),
  },
  { additionalProperties: false },
);

const ItemSchema = Type.Object(
  {
    id: Type.String(),
    contextId: Type.String(),
    type: Type.String(),
    content: Type.String(),
    metadata: AnyObject,
    importance: Type.Number(),
    sizeBytes: Type.Integer(),
    createdAt: Type.String(),
  },
  { additionalProperties: false },
);

const itemView = (it: ContextItemRecord) => ({
  id: it.id,
  contextId: it.contextId,
  type: it.type,
  content: it.content,
  metadata: it.metadata,
  importance: it.importance,
  sizeBytes: it.sizeBytes,
  createdAt: isoTime(it.createdMs),
});

const RETENTION =
  'Retention: an item older than `retentionPolicy.maxAge` disappears unless its importance (metadata.importance, else from metadata.priority: low 0.25, medium 0.5, high 0.75, critical 1; default 0.5) is at least `retentionPolicy.importanceThreshold`. Beyond `config.maxSize` items, the least important item goes, then the oldest; the ids removed by an add are returned in `evicted`. An item larger than DIRECTOR_CONTEXT_ITEM_MAX_BYTES is refused with 413.';

/** The Director Protocol's Context API (`/v1/context`). */
export const contextRoutes: FastifyPluginAsync<{ context: ContextService }> = async (base, { context }) => {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  const Params = IdParams('ctx');
  const view = (w: ContextWindowRecord) => {
    const s = context.stats(w);
    return {
      id: w.id,
      sessionId: w.sessionId,
      name: w.name,
      config: w.config as unknown as Record<string, unknown>,
      itemCount: s.items,
      sizeBytes: s.bytes,
      createdAt: isoTime(w.createdMs),
      updatedAt: isoTime(w.updatedMs),
    };
  };

  app.post('/context', {
    config: { scope: 'sessions:write', idempotent: true },
    schema: {
      tags: ['context'],
      summary: 'Create a context window in a session',
      description: `The session must be active. Items are checked (and \`file://\` items read) before anything is stored: one bad item stores nothing. ${RETENTION}`,
      body: CreateContextSchema,
      response: { 201: Envelope(Type.Intersect([WindowSchema, Type.Object({ evicted: Type.Array(Type.String()) })])), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      const { window, evicted } = await context.create(callerOf(req), req.body);
      return send(reply, { ...view(window), evicted }, 201);
    },
  });

  app.post('/context/:id/items', {
    config: { scope: 'sessions:write', idempotent: true },
    schema: {
      tags: ['context'],
      summary: 'Add an item to a context window',
      description: RETENTION,
      params: Params,
      body: ContextItemSchema,
      response: { 201: Envelope(Type.Intersect([ItemSchema, Type.Object({ evicted: Type.Array(Type.String()) })])), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      const { item, evicted } = await context.addItem(callerOf(req), req.params.id, req.body);
      return send(reply, { ...itemView(item), evicted }, 201);
    },
  });

  app.get('/context/:id', {
    config: { scope: 'sessions:read' },
    schema: {
      tags: ['context'],
      summary: 'Get a context window',
      params: Params,
      response: { 200: Envelope(WindowSchema), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, view(context.get(callerOf(req), req.params.id))),
  });

  app.get('/context/:id/items', {
    config: { scope: 'sessions:read' },
    schema: {
      tags: ['context'],
      summary: 'List the items of a context window',
      description: 'In the order they were added; expired items are gone.',
      params: Params,
      querystring: Type.Object(PageQuery, { additionalProperties: false }),
      response: { 200: Envelope(Page(ItemSchema)), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      const { limit = 20, offset = 0 } = req.query;
      const page = context.items(callerOf(req), req.params.id, limit, offset);
      return send(reply, { items: page.items.map(itemView), total: page.total, limit, offset });
    },
  });
};
