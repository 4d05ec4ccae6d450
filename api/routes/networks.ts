import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type, type Static } from 'typebox';
import { NetworkPolicySchema } from '../../policies/network-policy.ts';
import { AllowAccessSchema } from '../../runtime/network/allow-access.ts';
import { CreateNetworkSchema, type NetworkManager } from '../../runtime/network/manager.ts';
import { PolicyTestSchema } from '../../runtime/network/policy-test.ts';
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
    policy: Type.Union([AnyObject, Type.Null()], {
      description:
        'The policy as stored (what was requested, normalized). `order` is `first-match` (rules in the order written, the first match decides); `deny-first` only for a policy stored before that, which the upgrade kept as it was enforced (deny rules first) because, as written, some of its rules could never match: `review` names them, and a new policy replaces it.',
    }),
    policyInForce: Type.Optional(
      Type.Union([AnyObject, Type.Null()], {
        description:
          "The policy read back from the kernel's nft table: `outbound`/`inbound` rules in the order they are evaluated, with counters; resolved name sets; and `evaluation`, each chain step by step as packets meet it (Director's guards at level `operator` first, then the network's isolation, rules and default at level `network`).",
      }),
    ),
    sandboxes: Type.Optional(Type.Array(Type.String())),
    createdAt: Type.String(),
  },
  { additionalProperties: false },
);

const DecidedBySchema = Type.Object(
  {
    level: Type.Union([Type.Literal('operator'), Type.Literal('network')], {
      description:
        "operator: Director's guards and the operator's settings, evaluated first; network: the network's isolation, policy rules and default",
    }),
    kind: Type.Union([Type.Literal('guard'), Type.Literal('rule'), Type.Literal('default')]),
    tag: Type.String({ description: 'The kernel rule tag (rule comment): `o.range`, `o2`, `o.default`' }),
    guard: Type.Optional(Type.String()),
    rule: Type.Optional(Type.String({ description: 'The policy rule: `outbound[2]`' })),
  },
  { additionalProperties: false },
);

const VerdictSchema = Type.Object(
  {
    verdict: Type.Union([Type.Literal('allow'), Type.Literal('deny')]),
    passes: Type.Boolean({ description: 'Whether the connection gets through (true for a deny in audit mode)' }),
    decidedBy: DecidedBySchema,
    rule: Type.Optional(AnyObject),
    chain: Type.Union([Type.Literal('out'), Type.Literal('in'), Type.Literal('host')]),
    generation: Type.Union([Type.Integer(), Type.Null()], { description: 'The generation of chains in force that was evaluated' }),
    resolver: Type.Optional(
      Type.Object(
        {
          answers: Type.Boolean(),
          reason: Type.Optional(Type.String()),
          decidedBy: Type.Union([DecidedBySchema, Type.Null()]),
        },
        { additionalProperties: false },
      ),
    ),
    address: Type.Union([Type.String(), Type.Null()]),
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
        "Replaces the network's policy in one atomic nft transaction. Each direction's rules are evaluated in the order written and the first rule that matches decides; what no rule matches is denied (a trailing deny-all restates the default). A rule an earlier rule entirely covers (same direction; its protocol, addresses or host names and ports a subset) could never match: the policy is refused with a 400 naming both (`outbound[2] is shadowed by outbound[0]`) and nothing is applied. Host names follow the same order: the Director resolver answers a name only if, among the rules naming it (or naming no destination), an allow rule is reached before denies take all its traffic. Destinations are CIDRs or host names (`*.example.com` allowed; `*` and public suffixes refused). `mode: audit` drops nothing and records what would have been dropped. Always denied first, whatever the policy says (level `operator`, no rule can reopen it): cloud metadata, loopback, link-local, the host, other Director networks, DNS to any resolver but Director's.",
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

  app.post('/networks/:id/policy/test', {
    config: { scope: 'networks:read' },
    schema: {
      tags: ['networks'],
      summary: 'Would a connection get through? A verdict from the rules read back from the kernel',
      description:
        "Evaluates one new connection (direction, protocol, address and/or host name, port) against the network's chains as the kernel holds them now, not against the stored request: rule by rule in the kernel's order, with the sets as they are (resolved addresses included). Answers the verdict (`allow`/`deny`), whether the connection passes (a deny in audit mode passes, logged), what decided (a guard, a policy rule by index, or the default) and its level (`operator`: Director's guards, which no policy can reopen; `network`: the network's isolation, rules and default). For a host name, the Director resolver's decision comes first (`resolver`). An address of the host itself is evaluated against the sandbox → host chain.",
      params: Params,
      body: PolicyTestSchema,
      response: { 200: Envelope(VerdictSchema), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) =>
      send(reply, (await networks.testPolicy(callerOf(req), req.params.id, req.body)) as unknown as Static<typeof VerdictSchema>),
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
      description:
        'The policy in force plus one allow rule per observed destination (by host name when the resolver saw one), placed ahead of the trailing catch-all denies (the default restated) so the first match lets the traffic through. Traffic whose first matching rule is a deny is listed in `blockedByDeny` instead: no allow placed after that deny could reach it. For a policy kept deny-first from before first-match, the proposal is the ordered policy that means the same (deny rules first, rules that could never match listed in `removed`).',
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
