import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { NetworkPolicySchema } from '../../policies/network-policy.ts';
import { AllowAccessSchema, CreateNetworkSchema, type NetworkManager } from '../../runtime/network/manager.ts';
import { proposePolicy } from '../../runtime/network/propose.ts';
import type { NetworkRecord } from '../../runtime/store/networks.ts';
import { isoTime } from '../../core/clock.ts';
import { callerOf, send } from '../context.ts';
import { AnyObject, Envelope, IdParams, Page, PageQuery, STANDARD_ERRORS } from '../schemas.ts';

const NetworkSchema = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    subnet: Type.String(),
    gateway: Type.String(),
    enableDNS: Type.Boolean(),
    internal: Type.Boolean(),
    isolated: Type.Boolean(),
    bridge: Type.String({ description: 'Linux bridge device: `dir-` + the first 8 hex of sha256(id)' }),
    status: Type.String(),
    labels: Type.Record(Type.String(), Type.String()),
    policy: Type.Union([AnyObject, Type.Null()], { description: 'The policy as stored (what was requested, normalized)' }),
    policyInForce: Type.Optional(
      Type.Union([AnyObject, Type.Null()], {
        description: "The policy read back from the kernel's nft table: rules in order, counters, resolved name sets",
      }),
    ),
    sandboxes: Type.Optional(Type.Array(Type.String())),
    createdAt: Type.String(),
  },
  { additionalProperties: false },
);

const view = (r: NetworkRecord) => ({
  id: r.id,
  name: r.name,
  subnet: r.subnet,
  gateway: r.gateway,
  enableDNS: r.enableDns,
  internal: r.internal,
  isolated: r.isolated,
  bridge: r.bridge,
  status: r.status,
  labels: r.labels,
  policy: r.policy as unknown as Record<string, unknown> | null,
  createdAt: isoTime(r.createdMs),
});

/** The Network API of the Director Protocol (`/v1/networks`), plus audit-mode proposals. */
export const networkRoutes: FastifyPluginAsync<{ networks: NetworkManager }> = async (base, { networks }) => {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  const Params = IdParams('net');

  app.post('/networks', {
    config: { scope: 'networks:write', idempotent: true },
    schema: {
      tags: ['networks'],
      summary: "Create a network (a Docker bridge behind Director's nft chains)",
      body: CreateNetworkSchema,
      response: { 201: Envelope(NetworkSchema), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, view(await networks.create(callerOf(req), req.body)), 201),
  });

  app.get('/networks', {
    config: { scope: 'networks:read' },
    schema: {
      tags: ['networks'],
      summary: 'List networks',
      querystring: Type.Object(PageQuery, { additionalProperties: false }),
      response: { 200: Envelope(Page(NetworkSchema)), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      const { limit = 20, offset = 0 } = req.query;
      const page = networks.list(callerOf(req), { limit, offset });
      return send(reply, { items: page.items.map(view), total: page.total, limit, offset });
    },
  });

  app.get('/networks/:id', {
    config: { scope: 'networks:read' },
    schema: {
      tags: ['networks'],
      summary: 'Get a network, with the policy in force read back from the kernel',
      params: Params,
      response: { 200: Envelope(NetworkSchema), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      const caller = callerOf(req);
      const rec = networks.get(caller, req.params.id);
      const inForce = await networks.inForce(caller, rec.id);
      return send(reply, {
        ...view(rec),
        policyInForce: inForce as unknown as Record<string, unknown> | null,
        sandboxes: networks.deps.store.sandboxesOn(rec.id).map((s) => s.id),
      });
    },
  });

  app.post('/networks/:id/policies', {
    config: { scope: 'networks:write' },
    schema: {
      tags: ['networks'],
      summary: 'Apply a network policy',
      description:
        "Replaces the network's policy in one atomic nft transaction. Deny wins over allow; anything not allowed is denied. Destinations are CIDRs or host names (`*.example.com` allowed; `*` and public suffixes refused). `mode: audit` drops nothing and records what would have been dropped. Always denied whatever the policy says: cloud metadata, loopback, link-local, the host, other Director networks, DNS to any resolver but Director's.",
      params: Params,
      body: NetworkPolicySchema,
      response: { 200: Envelope(NetworkSchema), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      const caller = callerOf(req);
      const rec = await networks.applyPolicy(caller, req.params.id, req.body);
      return send(reply, {
        ...view(rec),
        policyInForce: (await networks.inForce(caller, rec.id)) as unknown as Record<string, unknown> | null,
      });
    },
  });

  app.post('/networks/:id/isolate', {
    config: { scope: 'networks:write' },
    schema: {
      tags: ['networks'],
      summary: 'Isolate: drop everything in and out at once, established connections included',
      params: Params,
      response: { 200: Envelope(NetworkSchema), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, view(await networks.isolate(callerOf(req), req.params.id, true))),
  });

  app.post('/networks/:id/release', {
    config: { scope: 'networks:write' },
    schema: {
      tags: ['networks'],
      summary: 'Lift an isolation (the policy in force applies again)',
      params: Params,
      response: { 200: Envelope(NetworkSchema), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, view(await networks.isolate(callerOf(req), req.params.id, false))),
  });

  app.post('/networks/:id/allow-access', {
    config: { scope: 'networks:write' },
    schema: {
      tags: ['networks'],
      summary: 'Add allowed destinations (host name, IP or CIDR; port; tcp or udp) to the policy in force',
      params: Params,
      body: AllowAccessSchema,
      response: { 200: Envelope(NetworkSchema), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, view(await networks.allowAccess(callerOf(req), req.params.id, req.body))),
  });

  app.get('/networks/:id/proposal', {
    config: { scope: 'networks:read' },
    schema: {
      tags: ['networks'],
      summary: 'Audit mode: the minimal allow policy that would have permitted the observed traffic, with a readable diff',
      params: Params,
      response: { 200: Envelope(AnyObject), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      const rec = networks.get(callerOf(req), req.params.id);
      const obs = networks.deps.store.observations(rec.id).map((o) => ({
        direction: o.direction,
        proto: o.proto as 'tcp' | 'udp' | 'icmp',
        remote: o.remote,
        port: o.port || null,
        count: o.count,
        names: networks.deps.store.namesFor(rec.id, o.remote),
      }));
      return send(reply, proposePolicy(rec.policy, obs) as unknown as Record<string, unknown>);
    },
  });

  app.delete('/networks/:id', {
    config: { scope: 'networks:write' },
    schema: {
      tags: ['networks'],
      summary: 'Delete a network (409 while sandboxes use it, unless force=true, which deletes them first)',
      params: Params,
      querystring: Type.Object({ force: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
      response: { 200: Envelope(Type.Object({ id: Type.String(), deleted: Type.Literal(true) })), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      await networks.delete(callerOf(req), req.params.id, { force: req.query.force ?? false });
      return send(reply, { id: req.params.id, deleted: true as const });
    },
  });
};
