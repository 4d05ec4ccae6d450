import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type TSchema } from 'typebox';
import { OUTCOMES } from '../audit/chain.ts';
import type { AuditLog } from '../audit/log.ts';
import { principalOf, send } from '../context.ts';
import { Envelope, STANDARD_ERRORS } from '../schemas.ts';

const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);
const OutcomeSchema = Type.Union(OUTCOMES.map((o) => Type.Literal(o)));

const EntrySchema = Type.Object(
  {
    id: Type.String(),
    seq: Type.Integer(),
    ts: Type.String(),
    actor: Nullable(Type.String()),
    username: Nullable(Type.String()),
    workspace: Nullable(Type.String()),
    action: Type.String({ description: '`METHOD /route/template`' }),
    target: Nullable(Type.String()),
    outcome: OutcomeSchema,
    status: Type.Integer(),
    requestId: Nullable(Type.String()),
    source: Nullable(Type.String()),
    userAgent: Nullable(Type.String()),
    prevHash: Type.String(),
    hash: Type.String({ description: 'sha256(prevHash || canonical JSON of the other fields), hex' }),
  },
  { additionalProperties: false },
);

const ListQuery = Type.Object(
  {
    actor: Type.Optional(
      Type.String({ maxLength: 200, description: "An actor as recorded, or a user id (also matches that user's API keys)" }),
    ),
    action: Type.Optional(Type.String({ maxLength: 200, description: 'e.g. `POST /v1/sandboxes`' })),
    outcome: Type.Optional(OutcomeSchema),
    target: Type.Optional(Type.String({ maxLength: 100 })),
    since: Type.Optional(Type.String({ format: 'date-time' })),
    until: Type.Optional(Type.String({ format: 'date-time' })),
    after: Type.Optional(Type.Integer({ minimum: 0, description: 'Cursor: the `nextCursor` of the previous page' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })),
  },
  { additionalProperties: false },
);

const VerifySchema = Type.Object(
  {
    ok: Type.Boolean(),
    entries: Type.Optional(Type.Integer()),
    head: Type.Optional(Type.String({ description: 'Hash of the newest entry: keep a copy elsewhere to detect truncation' })),
    brokenAt: Type.Optional(Type.Object({ seq: Type.Integer(), id: Type.String() })),
    reason: Type.Optional(Type.Union([Type.Literal('hash_mismatch'), Type.Literal('prev_mismatch'), Type.Literal('gap')])),
  },
  { additionalProperties: false },
);

/** The audit log (`/v1/audit-logs`): the caller's workspace's entries, and chain verification. */
export const auditRoutes: FastifyPluginAsync<{ audit: AuditLog }> = async (base, { audit }) => {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();

  app.get('/audit-logs', {
    config: { scope: 'audit:read' },
    schema: {
      tags: ['audit'],
      summary: 'Audit log entries, oldest first, with cursor paging',
      description:
        "Every mutating request and every authentication or authorization refusal. A caller sees its workspace's entries; entries with no workspace (anonymous failures) are shown to admins only. Page with `after=<nextCursor>`.",
      querystring: ListQuery,
      response: {
        200: Envelope(Type.Object({ items: Type.Array(EntrySchema), nextCursor: Nullable(Type.Integer()) })),
        ...STANDARD_ERRORS,
      },
    },
    handler: async (req, reply) => {
      const p = principalOf(req);
      const { since, until, ...rest } = req.query;
      const page = audit.list({
        ...rest,
        visibleTo: { workspace: p.workspace, admin: p.scopes.has('admin') },
        ...(since ? { sinceMs: Date.parse(since) } : {}),
        ...(until ? { untilMs: Date.parse(until) } : {}),
      });
      return send(reply, page);
    },
  });

  app.get('/audit-logs/verify', {
    config: { scope: 'audit:read' },
    schema: {
      tags: ['audit'],
      summary: 'Verify the whole hash chain',
      description:
        '`{ok: true, entries, head}`, or `{ok: false, brokenAt: {seq, id}, reason}` at the first entry that was edited (`hash_mismatch`), follows a deleted one (`gap`) or is out of order (`prev_mismatch`).',
      response: { 200: Envelope(VerifySchema), ...STANDARD_ERRORS },
    },
    handler: async (_req, reply) => send(reply, audit.verify()),
  });
};
