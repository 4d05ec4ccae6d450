import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { isoTime } from '../../core/clock.ts';
import { validationError } from '../../core/errors.ts';
import { WEBHOOK_EVENTS } from '../../runtime/webhooks/catalogue.ts';
import type { Webhooks } from '../../runtime/webhooks/service.ts';
import type { AttemptRecord, DeliveryRecord, WebhookRecord } from '../../runtime/webhooks/store.ts';
import { callerOf, send } from '../context.ts';
import { Envelope, IdParams, Page, PageQuery, STANDARD_ERRORS } from '../schemas.ts';

export interface WebhookRouteOptions {
  webhooks: Webhooks;
}

const WebhookSchema = Type.Object(
  {
    id: Type.String(),
    url: Type.String(),
    events: Type.Array(Type.String()),
    secretSet: Type.Literal(true, { description: 'The secret is stored for signing and never returned' }),
    pendingDeliveries: Type.Integer(),
    droppedDeliveries: Type.Integer({ description: 'Deliveries dropped because the queue was full' }),
    createdBy: Type.Union([Type.String(), Type.Null()]),
    createdAt: Type.String(),
  },
  { additionalProperties: false },
);

const AttemptSchema = Type.Object(
  {
    attempt: Type.Integer(),
    at: Type.String(),
    statusCode: Type.Union([Type.Integer(), Type.Null()]),
    error: Type.Union([Type.String(), Type.Null()]),
    durationMs: Type.Integer(),
    nextAttemptAt: Type.Union([Type.String(), Type.Null()]),
  },
  { additionalProperties: false },
);

const DeliverySchema = Type.Object(
  {
    id: Type.String(),
    webhookId: Type.String(),
    event: Type.String(),
    eventId: Type.Union([Type.String(), Type.Null()]),
    state: Type.Union([Type.Literal('pending'), Type.Literal('delivered'), Type.Literal('failed'), Type.Literal('dropped')]),
    attempts: Type.Integer(),
    statusCode: Type.Union([Type.Integer(), Type.Null()], { description: 'Status of the last attempt' }),
    error: Type.Union([Type.String(), Type.Null()], {
      description: 'Error of the last attempt (timeout, connection, refused target, redirect)',
    }),
    durationMs: Type.Union([Type.Integer(), Type.Null()], { description: 'Duration of the last attempt' }),
    nextAttemptAt: Type.Union([Type.String(), Type.Null()]),
    createdAt: Type.String(),
    completedAt: Type.Union([Type.String(), Type.Null()]),
    attemptLog: Type.Array(AttemptSchema),
  },
  { additionalProperties: false },
);

const CreateWebhookSchema = Type.Object(
  {
    url: Type.String({ minLength: 1, maxLength: 2048, description: 'http(s) URL the events are POSTed to' }),
    events: Type.Array(Type.String({ minLength: 1, maxLength: 80 }), {
      minItems: 1,
      maxItems: 32,
      description: `Any of ${WEBHOOK_EVENTS.join(', ')}, or security.<type>`,
    }),
    secret: Type.String({
      minLength: 16,
      maxLength: 256,
      description: 'HMAC-SHA256 key for X-Director-Signature; at least 16 characters; never returned',
    }),
  },
  { additionalProperties: false },
);

const DeliveriesQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 20 })),
    cursor: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]{1,32}$', description: '`nextCursor` of the previous page' })),
    state: Type.Optional(Type.Union([Type.Literal('pending'), Type.Literal('delivered'), Type.Literal('failed'), Type.Literal('dropped')])),
  },
  { additionalProperties: false },
);

const iso = (ms: number | null): string | null => (ms === null ? null : isoTime(ms));

const attemptView = (a: AttemptRecord) => ({
  attempt: a.attempt,
  at: isoTime(a.startedMs),
  statusCode: a.statusCode,
  error: a.error,
  durationMs: a.durationMs,
  nextAttemptAt: iso(a.nextMs),
});

const deliveryView = (d: DeliveryRecord, attempts: AttemptRecord[]) => {
  const last = attempts.at(-1);
  return {
    id: d.id,
    webhookId: d.webhookId,
    event: d.event,
    eventId: d.eventId,
    state: d.state,
    attempts: d.attempts,
    statusCode: last?.statusCode ?? null,
    error: last?.error ?? null,
    durationMs: last?.durationMs ?? null,
    nextAttemptAt: d.state === 'pending' ? iso(d.nextMs) : null,
    createdAt: isoTime(d.createdMs),
    completedAt: iso(d.completedMs),
    attemptLog: attempts.map(attemptView),
  };
};

const encodeCursor = (seq: number): string => Buffer.from(`s${seq}`).toString('base64url');
function decodeCursor(cursor: string): number {
  const m = /^s([0-9]{1,15})$/.exec(Buffer.from(cursor, 'base64url').toString());
  if (!m) throw validationError('query.cursor', 'is not a cursor this API returned');
  return Number(m[1]);
}

/**
 * Webhooks (`/v1/webhooks`): signed, at-least-once deliveries of Director's events to HTTP
 * receivers, with a delivery log. The deliveries themselves are the runtime's (runtime/webhooks/).
 */
export const webhookRoutes: FastifyPluginAsync<WebhookRouteOptions> = async (base, { webhooks }) => {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();

  const view = (r: WebhookRecord) => ({
    id: r.id,
    url: r.url,
    events: r.events,
    secretSet: true as const,
    pendingDeliveries: webhooks.pendingCount(r.id),
    droppedDeliveries: r.dropped,
    createdBy: r.createdBy,
    createdAt: isoTime(r.createdMs),
  });
  const Params = IdParams('whk');

  app.post('/webhooks', {
    config: { scope: 'webhooks:write', idempotent: true },
    schema: {
      tags: ['webhooks'],
      summary: 'Create a webhook',
      description: [
        'Events of this workspace are POSTed to `url` as `{event, data, timestamp}` (the body is exactly `JSON.stringify` of that object), with `X-Director-Signature: sha256=<hex HMAC-SHA256 of the body keyed with secret>`, `X-Director-Delivery` (the same on every retry of one delivery: deduplicate on it), `X-Director-Event`, `X-Director-Attempt` and `X-Director-Timestamp` (unix seconds of the attempt).',
        'Delivery is at least once, in order per webhook: any answer but 2xx (redirects are not followed), a timeout (10 s) or a connection error is retried with exponential backoff (1 s, 2 s, 4 s, ... up to 8 attempts). The queue survives restarts; when a webhook has 1000 deliveries pending the oldest is dropped and counted.',
        `Events: ${WEBHOOK_EVENTS.join(', ')}; security.<type> (e.g. security.egress_denied) filters security.event by type.`,
        'The target must be http(s), carry no credentials, and neither be nor resolve to a loopback, private, link-local, cloud-metadata, CGNAT, unspecified, multicast or reserved address (IPv4-mapped and NAT64 forms included); names are resolved again at every delivery. Operators open targets with `DIRECTOR_WEBHOOK_ALLOW_PRIVATE=true` (loopback, private, link-local, CGNAT; not metadata) or `DIRECTOR_WEBHOOK_ALLOWED_CIDRS` (comma-separated CIDRs, opened whatever they hold).',
      ].join('\n\n'),
      body: CreateWebhookSchema,
      response: { 201: Envelope(WebhookSchema), 422: STANDARD_ERRORS[400], ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, view(await webhooks.create(callerOf(req), req.body)), 201),
  });

  app.get('/webhooks', {
    config: { scope: 'webhooks:write' },
    schema: {
      tags: ['webhooks'],
      summary: "List the workspace's webhooks",
      querystring: Type.Object(PageQuery, { additionalProperties: false }),
      response: { 200: Envelope(Page(WebhookSchema)), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      const { limit = 20, offset = 0 } = req.query;
      const page = webhooks.list(callerOf(req), { limit, offset });
      return send(reply, { items: page.items.map(view), total: page.total, limit, offset });
    },
  });

  app.get('/webhooks/:id', {
    config: { scope: 'webhooks:write' },
    schema: {
      tags: ['webhooks'],
      summary: 'Get a webhook (never its secret)',
      params: Params,
      response: { 200: Envelope(WebhookSchema), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, view(webhooks.get(callerOf(req), req.params.id))),
  });

  app.get('/webhooks/:id/deliveries', {
    config: { scope: 'webhooks:write' },
    schema: {
      tags: ['webhooks'],
      summary: 'The delivery log of a webhook, newest first: state, every attempt (status code or error, duration), next retry',
      params: Params,
      querystring: DeliveriesQuery,
      response: {
        200: Envelope(
          Type.Object({ items: Type.Array(DeliverySchema), limit: Type.Integer(), nextCursor: Type.Union([Type.String(), Type.Null()]) }),
        ),
        ...STANDARD_ERRORS,
      },
    },
    handler: async (req, reply) => {
      const rec = webhooks.get(callerOf(req), req.params.id);
      const { limit = 20, cursor, state } = req.query;
      const rows = webhooks.deliveries(rec, {
        limit: limit + 1,
        ...(cursor === undefined ? {} : { beforeSeq: decodeCursor(cursor) }),
        ...(state === undefined ? {} : { state }),
      });
      const page = rows.slice(0, limit);
      const last = page.at(-1);
      return send(reply, {
        items: page.map((r) => deliveryView(r.delivery, r.attempts)),
        limit,
        nextCursor: rows.length > limit && last ? encodeCursor(last.delivery.seq) : null,
      });
    },
  });

  app.delete('/webhooks/:id', {
    config: { scope: 'webhooks:write' },
    schema: {
      tags: ['webhooks'],
      summary: 'Delete a webhook, its pending deliveries and its log',
      params: Params,
      response: { 200: Envelope(Type.Object({ id: Type.String(), deleted: Type.Literal(true) })), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      webhooks.delete(callerOf(req), req.params.id);
      return send(reply, { id: req.params.id, deleted: true as const });
    },
  });
};
