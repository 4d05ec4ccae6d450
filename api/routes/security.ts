import { Readable } from 'node:stream';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ProfileBodySchema, ProfileConstraintsSchema, ProfileLevelSchema, ProfilePatchSchema } from '../../policies/profiles.ts';
import { isoTime } from '../../core/clock.ts';
import type { Severity as SeverityName } from '../../runtime/events.ts';
import { SeveritySchema as Severity } from '../../runtime/security/alerts.ts';
import { exportLine } from '../../runtime/security/ocsf.ts';
import type { SecurityProfile } from '../../runtime/security/profiles.ts';
import type { Security } from '../../runtime/security/service.ts';
import { parseCursor, parseIso, parseWindow, severitiesOf, type StreamFilter, type StreamScope } from '../../runtime/security/stream.ts';
import { callerOf, principalOf, send } from '../context.ts';
import { AnyObject, Envelope, IdParams, STANDARD_ERRORS } from '../schemas.ts';
import type { Orchestration } from '../../orchestration/orchestration.ts';

const ProfileSchema = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    description: Type.String(),
    level: ProfileLevelSchema,
    constraints: ProfileConstraintsSchema,
    builtin: Type.Boolean({ description: 'Shipped with Director: visible to every workspace, read-only' }),
    createdAt: Type.Union([Type.String(), Type.Null()]),
    updatedAt: Type.Union([Type.String(), Type.Null()]),
  },
  { additionalProperties: false },
);

const view = (p: SecurityProfile) => ({
  id: p.id,
  name: p.name,
  description: p.description,
  level: p.level,
  constraints: p.constraints,
  builtin: p.builtin,
  createdAt: p.builtin ? null : isoTime(p.createdMs),
  updatedAt: p.builtin ? null : isoTime(p.updatedMs),
});

const EventSchema = Type.Object({
  id: Type.String(),
  seq: Type.Integer(),
  type: Type.String(),
  severity: Severity,
  timestamp: Type.String(),
  workspace: Type.Union([Type.String(), Type.Null()]),
  sandboxId: Type.Union([Type.String(), Type.Null()]),
  networkId: Type.Union([Type.String(), Type.Null()]),
  sessionId: Type.Union([Type.String(), Type.Null()]),
  actor: Type.Union([Type.String(), Type.Null()]),
  details: AnyObject,
});

const Id = (prefix: string) => Type.String({ pattern: `^${prefix}_[A-Za-z0-9_-]{16}$` });
const Types = Type.Union([Type.String({ maxLength: 64 }), Type.Array(Type.String({ maxLength: 64 }), { maxItems: 32 })], {
  description: 'Event type; repeat for several',
});
const FilterProps = {
  sandboxId: Type.Optional(Id('sbx')),
  networkId: Type.Optional(Id('net')),
  type: Type.Optional(Types),
  severity: Type.Optional(Severity),
  minSeverity: Type.Optional(Severity),
  since: Type.Optional(Type.String({ description: 'ISO 8601 time, inclusive' })),
  until: Type.Optional(Type.String({ description: 'ISO 8601 time, exclusive' })),
};

interface FilterQuery {
  sandboxId?: string;
  networkId?: string;
  type?: string | string[];
  severity?: SeverityName;
  minSeverity?: SeverityName;
  since?: string;
  until?: string;
}

const filterOf = (q: FilterQuery): StreamFilter => {
  const sinceMs = parseIso('since', q.since);
  const untilMs = parseIso('until', q.until);
  const severities = severitiesOf(q.severity, q.minSeverity);
  return {
    ...(q.sandboxId ? { sandboxId: q.sandboxId } : {}),
    ...(q.networkId ? { networkId: q.networkId } : {}),
    ...(q.type === undefined ? {} : { types: ([] as string[]).concat(q.type) }),
    ...(severities ? { severities } : {}),
    ...(sinceMs === undefined ? {} : { sinceMs }),
    ...(untilMs === undefined ? {} : { untilMs }),
  };
};

/** Host-level events (no workspace: firewall tampering, failed logins) are visible to admins only. */
const scopeOf = (req: FastifyRequest): StreamScope => {
  const p = principalOf(req);
  return { workspace: p.workspace, includeGlobal: p.scopes.has('admin') };
};

/**
 * The Security API (`/v1/security`): profiles and the workspace default profile, enforcement,
 * the one event stream (list, summary, NDJSON/OCSF export) and active alerts, all the runtime's
 * security layer (runtime/security/).
 */
export const securityRoutes: FastifyPluginAsync<{
  security: Pick<Security, 'profiles' | 'enforcer' | 'stream' | 'alerts'>;
  /** When given, an enforcement scope may name a session (its sandboxes); without it a session is unknown (404). */
  orchestration?: Pick<Orchestration, 'sandboxes'>;
}> = async (base, { security, orchestration }) => {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  const { profiles, enforcer, stream, alerts } = security;
  const tags = ['security'];

  app.post('/security/profiles', {
    config: { scope: 'security:write', idempotent: true },
    schema: {
      tags,
      summary: 'Create a security profile (a ceiling sandboxes created with it can only narrow)',
      body: ProfileBodySchema,
      response: { 201: Envelope(ProfileSchema), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, view(profiles.create(callerOf(req), req.body)), 201),
  });

  app.get('/security/profiles', {
    config: { scope: 'security:read' },
    schema: {
      tags,
      summary: "List security profiles: the built-ins, then the workspace's own",
      response: { 200: Envelope(Type.Object({ items: Type.Array(ProfileSchema), total: Type.Integer() })), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      const items = profiles.list(callerOf(req).workspace).map(view);
      return send(reply, { items, total: items.length });
    },
  });

  app.get('/security/profiles/:id', {
    config: { scope: 'security:read' },
    schema: {
      tags,
      summary: 'Get a security profile',
      params: IdParams('prf'),
      response: { 200: Envelope(ProfileSchema), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, view(profiles.get(callerOf(req).workspace, req.params.id))),
  });

  app.put('/security/profiles/:id', {
    config: { scope: 'security:write' },
    schema: {
      tags,
      summary: 'Replace a security profile (built-ins are read-only: 403). Running sandboxes keep their limits until enforced.',
      params: IdParams('prf'),
      body: ProfileBodySchema,
      response: { 200: Envelope(ProfileSchema), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, view(profiles.update(callerOf(req), req.params.id, req.body, 'replace'))),
  });

  app.patch('/security/profiles/:id', {
    config: { scope: 'security:write' },
    schema: {
      tags,
      summary: 'Change some fields of a security profile (constraints merge key by key)',
      params: IdParams('prf'),
      body: ProfilePatchSchema,
      response: { 200: Envelope(ProfileSchema), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, view(profiles.update(callerOf(req), req.params.id, req.body, 'merge'))),
  });

  app.delete('/security/profiles/:id', {
    config: { scope: 'security:write' },
    schema: {
      tags,
      summary: 'Delete a security profile (409 while it is the workspace default)',
      params: IdParams('prf'),
      response: { 200: Envelope(Type.Object({ id: Type.String(), deleted: Type.Literal(true) })), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      profiles.delete(callerOf(req), req.params.id);
      return send(reply, { id: req.params.id, deleted: true as const });
    },
  });

  const WorkspaceProfile = Type.Object({ profile: Type.Union([ProfileSchema, Type.Null()]) });
  app.get('/security/workspace-profile', {
    config: { scope: 'security:read' },
    schema: {
      tags,
      summary: "The workspace's default profile: the outermost ceiling of every sandbox it creates",
      response: { 200: Envelope(WorkspaceProfile), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      const p = profiles.workspaceDefault(callerOf(req).workspace);
      return send(reply, { profile: p ? view(p) : null });
    },
  });

  app.put('/security/workspace-profile', {
    config: { scope: 'security:write' },
    schema: {
      tags,
      summary: "Set (or with null clear) the workspace's default profile",
      description:
        'Inheritance is workspace → profile → sandbox: a profile named at create must not exceed the workspace default, and a request can only narrow both. A refusal names the level (`workspace`, `profile` or `operator`) in `details.deniedBy`.',
      body: Type.Object({ profileId: Type.Union([Id('prf'), Type.Null()]) }, { additionalProperties: false }),
      response: { 200: Envelope(WorkspaceProfile), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      const p = profiles.setWorkspaceDefault(callerOf(req), req.body.profileId);
      return send(reply, { profile: p ? view(p) : null });
    },
  });

  app.post('/security/policies/:policyId/enforce', {
    config: { scope: 'security:write' },
    schema: {
      tags,
      summary: 'Enforce a security profile on running sandboxes, or a shipped network policy on a network, now',
      description:
        '`policyId` is a profile id (`prf_...`) or the name of a shipped network policy (`deny-all`, ...). A profile lowers live limits in place (pids), stores `allowExec: false` on the record, and stops a sandbox that cannot comply live (network, filesystem or writable root taken away, lower open-file limit). The scope is the union of what it names: `sandboxId` (must be running for a profile), the running sandboxes on `networkId`, and the running sandboxes of `sessionId` (a session of another workspace is 404). A network policy goes on the named network and on the network of each named sandbox (its private one for `isolated`; a shared network is changed for every sandbox on it); `sessions` lists, per session, the running sandboxes it reached.',
      params: Type.Object(
        { policyId: Type.String({ pattern: '^(prf_[A-Za-z0-9_-]{16}|[A-Za-z0-9][A-Za-z0-9._-]{0,63})$' }) },
        { additionalProperties: false },
      ),
      body: Type.Object(
        {
          scope: Type.Object(
            {
              sandboxId: Type.Optional(Id('sbx')),
              networkId: Type.Optional(Id('net')),
              sessionId: Type.Optional(Id('ses')),
            },
            { additionalProperties: false },
          ),
        },
        { additionalProperties: false },
      ),
      response: { 200: Envelope(AnyObject), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      const caller = callerOf(req);
      const ofSession = orchestration ? (sessionId: string) => orchestration.sandboxes.ofCallersSession(caller, sessionId) : undefined;
      return send(reply, await enforcer.enforce(caller, req.params.policyId, req.body.scope, ofSession));
    },
  });

  app.get('/security/events', {
    config: { scope: 'security:read' },
    schema: {
      tags,
      summary: 'Security events, oldest first, cursor-paged',
      description:
        "Page with `after=<nextCursor>`: the cursor is the last event's `seq`, assigned by the store in the statement that inserts the event, so a reader never misses or repeats an event even while others are written. Events without a workspace (host-level) are visible to admins only.",
      querystring: Type.Object(
        {
          ...FilterProps,
          after: Type.Optional(Type.String({ maxLength: 16 })),
          limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
        },
        { additionalProperties: false },
      ),
      response: {
        200: Envelope(
          Type.Object({ items: Type.Array(EventSchema), nextCursor: Type.Union([Type.String(), Type.Null()]), hasMore: Type.Boolean() }),
        ),
        ...STANDARD_ERRORS,
      },
    },
    handler: async (req, reply) =>
      send(reply, stream.page(scopeOf(req), filterOf(req.query), parseCursor(req.query.after), req.query.limit ?? 100)),
  });

  app.get('/security/events/summary', {
    config: { scope: 'security:read' },
    schema: {
      tags,
      summary: 'Counts over a window: by type, severity and sandbox, top offenders (most high/critical) and a trend',
      querystring: Type.Object(
        {
          window: Type.Optional(Type.String({ maxLength: 8, default: '24h' })),
          buckets: Type.Optional(Type.Integer({ minimum: 1, maximum: 96, default: 12 })),
        },
        { additionalProperties: false },
      ),
      response: { 200: Envelope(AnyObject), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) =>
      send(reply, stream.summary(scopeOf(req), parseWindow(req.query.window ?? '24h'), req.query.buckets ?? 12)),
  });

  app.get('/security/events/export', {
    config: { scope: 'security:read' },
    schema: {
      tags,
      summary: 'Export events as NDJSON (application/x-ndjson), one per line with schemaVersion 1.0 and an OCSF mapping',
      description:
        'Streamed in seq order up to the newest event at the start of the request. OCSF classes: 4001 Network Activity (egress/ingress/dns), 3002 Authentication (auth/login), 1007 Process Activity (exec/oom/timeout/pids), 2004 Detection Finding (alerts, policy violations, tampering), 0 Base Event otherwise.',
      querystring: Type.Object(FilterProps, { additionalProperties: false }),
    },
    handler: async (req, reply) => {
      const rows = stream.export(scopeOf(req), filterOf(req.query));
      const lines = async function* () {
        for await (const e of rows) yield exportLine(e);
      };
      return reply.type('application/x-ndjson; charset=utf-8').header('cache-control', 'no-store').send(Readable.from(lines()));
    },
  });

  app.get('/security/alerts', {
    config: { scope: 'security:read' },
    schema: {
      tags,
      summary: 'Active alerts (rules of policies/alerts.json whose condition holds now)',
      response: { 200: Envelope(Type.Object({ items: Type.Array(AnyObject) })), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      const s = scopeOf(req);
      return send(reply, {
        items: alerts.active().filter((a) => a.workspace === s.workspace || (a.workspace === null && s.includeGlobal)),
      });
    },
  });
};
