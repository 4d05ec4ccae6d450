import type { ServerResponse } from 'node:http';
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { SANDBOX_STATES } from '../../runtime/sandbox/states.ts';
import { CreateSandboxSchema, ResourceLimitsSchema, SecurityPolicySchema, findForbidden } from '../../runtime/sandbox/spec.ts';
import { ExecuteSchema } from '../../runtime/sandbox/execute.ts';
import { toView } from '../../runtime/sandbox/view.ts';
import type { Orchestration } from '../../orchestration/orchestration.ts';
import { CreateOwnedSandboxSchema } from '../../orchestration/sandboxes.ts';
import type { EventSink } from '../../runtime/events.ts';
import type { Executor } from '../../runtime/sandbox/execute.ts';
import type { SandboxManager } from '../../runtime/sandbox/manager.ts';
import type { FileTransfer } from '../../runtime/sandbox/transfer.ts';
import type { NetworkLayer } from '../../runtime/runtime.ts';
import { callerOf, send } from '../context.ts';
import { AnyObject, Envelope, IdParams, Page, PageQuery, STANDARD_ERRORS } from '../schemas.ts';
import { streamExecution } from './sse.ts';
import { fileRoutes } from './files.ts';

export const SandboxSchema = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    image: Type.String(),
    status: Type.Union(SANDBOX_STATES.map((s) => Type.Literal(s))),
    reason: Type.Union([Type.String(), Type.Null()]),
    command: Type.Union([Type.Array(Type.String()), Type.Null()]),
    environmentKeys: Type.Array(Type.String(), { description: 'Names of the environment variables; values are never returned' }),
    resourceLimits: Type.Required(ResourceLimitsSchema),
    securityPolicy: Type.Required(SecurityPolicySchema),
    networkMode: Type.String(),
    networkId: Type.Union([Type.String(), Type.Null()]),
    ipAddress: Type.Union([Type.String(), Type.Null()]),
    workdir: Type.Union([Type.String(), Type.Null()]),
    labels: Type.Record(Type.String(), Type.String()),
    exitCode: Type.Union([Type.Integer(), Type.Null()]),
    createdAt: Type.String(),
    startedAt: Type.Union([Type.String(), Type.Null()]),
    expiresAt: Type.Union([Type.String(), Type.Null()]),
    stoppedAt: Type.Union([Type.String(), Type.Null()]),
    sessionId: Type.Union([Type.String(), Type.Null()], { description: 'The session that owns the sandbox' }),
    departmentId: Type.Union([Type.String(), Type.Null()]),
    environmentId: Type.Union([Type.String(), Type.Null()], { description: 'The environment it was made from' }),
  },
  { additionalProperties: false },
);

/** `GET /v1/sandboxes/{id}/metrics`: what SandboxManager.metrics answers, from engine stats. */
const MetricsSchema = Type.Object({
  sandboxId: Type.String(),
  timestamp: Type.String({ description: 'When the engine took the sample' }),
  cpu: Type.Object({ percent: Type.Number({ description: 'Of one core' }), limitCores: Type.Number() }),
  memory: Type.Object({ usageBytes: Type.Integer(), limitBytes: Type.Integer() }),
  pids: Type.Object({ current: Type.Integer(), limit: Type.Integer() }),
  network: Type.Object({ rxBytes: Type.Integer(), txBytes: Type.Integer() }),
  uptimeMs: Type.Integer(),
});

const ExecResultSchema = Type.Object({
  exitCode: Type.Integer(),
  stdout: Type.String(),
  stderr: Type.String(),
  durationMs: Type.Integer(),
  timedOut: Type.Boolean(),
  truncated: Type.Boolean(),
});

const ListQuery = Type.Object(
  {
    status: Type.Optional(Type.Union(SANDBOX_STATES.map((s) => Type.Literal(s)))),
    sessionId: Type.Optional(Type.String({ pattern: '^ses_[A-Za-z0-9_-]{16}$', description: 'Only the sandboxes of this session' })),
    departmentId: Type.Optional(Type.String({ pattern: '^dep_[A-Za-z0-9_-]{16}$', description: 'Only the sandboxes of this department' })),
    label: Type.Optional(
      Type.Union(
        [
          Type.String({ pattern: '^[a-z0-9][a-z0-9._/-]{0,62}=.{0,256}$' }),
          Type.Array(Type.String({ pattern: '^[a-z0-9][a-z0-9._/-]{0,62}=.{0,256}$' }), { maxItems: 16 }),
        ],
        { description: 'key=value; repeat for several (all must match)' },
      ),
    ),
    ...PageQuery,
  },
  { additionalProperties: false },
);

export interface SandboxRouteOptions {
  sandboxes: SandboxManager;
  /** The runtime's Executor, or the orchestration's wrapper that counts a session's executes as tasks. */
  executor: Pick<Executor, 'prepare' | 'run' | 'stream'>;
  files: FileTransfer;
  /** Where a refused create is recorded (`policy_violation`). */
  events: EventSink;
  /** For the policy in force of a sandbox's network; null when networking is off. */
  networks: Pick<NetworkLayer, 'store' | 'firewall'> | null;
  fileMaxBytes: number;
  /** When given, creates with `sessionId`/`departmentId`/`environmentId` go through it. */
  orchestration?: Pick<Orchestration, 'sandboxes'>;
}

/** The Sandbox API of the Director Protocol (`/v1/sandboxes`). */
export const sandboxRoutes: FastifyPluginAsync<SandboxRouteOptions> = async (base, opts) => {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  const { sandboxes, executor, events, networks, orchestration } = opts;

  app.post('/sandboxes', {
    config: { scope: 'sandboxes:write', idempotent: true },
    schema: {
      tags: ['sandboxes'],
      summary: 'Create a sandbox',
      description:
        'Creates and starts a hardened sandbox. Unknown fields, and fields asking for engine powers (Privileged, Binds, CapAdd, NetworkMode host, Runtime, ...), are refused with 400 and recorded as a `policy_violation` event; nothing is created. A matching request is served from the warm pool. Honours `Idempotency-Key`.',
      body: orchestration ? CreateOwnedSandboxSchema : CreateSandboxSchema,
      response: { 201: Envelope(SandboxSchema), ...STANDARD_ERRORS },
    },
    // Before schema validation, so a refused power is named precisely and recorded as a policy violation.
    preValidation: async (req) => {
      const hit = findForbidden(req.body, '');
      if (hit) {
        const caller = callerOf(req);
        events.emit({
          type: 'policy_violation',
          severity: 'medium',
          workspace: caller.workspace,
          actor: caller.actor ?? null,
          details: { field: hit.details?.field, issue: hit.details?.issue, level: 'request' },
        });
        throw hit;
      }
    },
    handler: async (req, reply) => {
      const caller = callerOf(req);
      const rec = orchestration ? await orchestration.sandboxes.create(caller, req.body) : await sandboxes.create(req.body, caller);
      return send(reply, toView(rec), 201);
    },
  });

  app.get('/sandboxes', {
    config: { scope: 'sandboxes:read' },
    schema: {
      tags: ['sandboxes'],
      summary: 'List sandboxes',
      querystring: ListQuery,
      response: { 200: Envelope(Page(SandboxSchema)), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      const { status, sessionId, departmentId, limit = 20, offset = 0 } = req.query;
      const labels: Record<string, string> = {};
      for (const l of ([] as string[]).concat(req.query.label ?? [])) {
        const i = l.indexOf('=');
        labels[l.slice(0, i)] = l.slice(i + 1);
      }
      const filter = {
        ...(status ? { status } : {}),
        ...(sessionId ? { sessionId } : {}),
        ...(departmentId ? { departmentId } : {}),
        labels,
        limit,
        offset,
      };
      const page = orchestration ? orchestration.sandboxes.list(callerOf(req), filter) : sandboxes.list(callerOf(req), filter);
      return send(reply, { items: page.items.map(toView), total: page.total, limit, offset });
    },
  });

  app.get('/sandboxes/:id', {
    config: { scope: 'sandboxes:read' },
    schema: {
      tags: ['sandboxes'],
      summary: 'Get a sandbox and its status',
      params: IdParams('sbx'),
      response: { 200: Envelope(SandboxSchema), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, toView(sandboxes.get(callerOf(req), req.params.id))),
  });

  app.get('/sandboxes/:id/metrics', {
    config: { scope: 'sandboxes:read' },
    schema: {
      tags: ['sandboxes'],
      summary: 'Resource usage (cpu %, memory, pids, network bytes) from engine stats',
      params: IdParams('sbx'),
      response: { 200: Envelope(MetricsSchema), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, await sandboxes.metrics(callerOf(req), req.params.id)),
  });

  app.post('/sandboxes/:id/execute', {
    config: { scope: 'sandboxes:exec' },
    schema: {
      tags: ['sandboxes'],
      summary: 'Execute a command',
      description:
        'Runs argv (no shell) or a shell string (`/bin/sh -c`). JSON result by default; with `Accept: text/event-stream` the output streams as server-sent events `stdout`, `stderr` (data: JSON `{"data": "..."}`) and a final `exit` (the result without output), each with an id. A timeout kills the whole process group. Output over DIRECTOR_EXEC_OUTPUT_LIMIT_BYTES per stream is cut and `truncated` set.',
      params: IdParams('sbx'),
      body: ExecuteSchema,
      response: { 200: Envelope(ExecResultSchema), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      const caller = callerOf(req);
      if ((req.headers.accept ?? '').includes('text/event-stream')) {
        executor.prepare(caller, req.params.id, req.body);
        return streamExecution(reply, executor.stream(caller, req.params.id, req.body, closedSignal(reply.raw)));
      }
      return send(reply, await executor.run(caller, req.params.id, req.body, closedSignal(reply.raw)));
    },
  });

  app.get('/sandboxes/:id/network-policy', {
    config: { scope: 'sandboxes:read' },
    schema: {
      tags: ['sandboxes'],
      summary: 'The network policy actually in force for this sandbox, read back from the kernel',
      description:
        "The sandbox's network (its private one for `isolated`) as the nft table has it: rules in order, guards, counters and resolved name sets. `null` policy: the sandbox has no network interface.",
      params: IdParams('sbx'),
      response: { 200: Envelope(AnyObject), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      const rec = sandboxes.get(callerOf(req), req.params.id);
      const net = rec.networkId && networks ? networks.store.byId(rec.networkId) : null;
      const inForce = net && networks ? await networks.firewall.view(net) : null;
      return send(reply, {
        sandboxId: rec.id,
        networkMode: rec.spec.networkMode,
        networkId: rec.networkId,
        ipAddress: rec.ipAddress,
        policyInForce: inForce as unknown as Record<string, unknown> | null,
      });
    },
  });

  app.post('/sandboxes/:id/stop', {
    config: { scope: 'sandboxes:write' },
    schema: {
      tags: ['sandboxes'],
      summary: 'Stop a sandbox (SIGTERM, then SIGKILL after a grace period)',
      params: IdParams('sbx'),
      response: { 200: Envelope(SandboxSchema), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, toView(await sandboxes.stop(callerOf(req), req.params.id))),
  });

  app.delete('/sandboxes/:id', {
    config: { scope: 'sandboxes:write' },
    schema: {
      tags: ['sandboxes'],
      summary: 'Delete a sandbox (its container and private network are removed)',
      params: IdParams('sbx'),
      response: { 200: Envelope(Type.Object({ id: Type.String(), deleted: Type.Literal(true) })), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      await sandboxes.delete(callerOf(req), req.params.id);
      return send(reply, { id: req.params.id, deleted: true as const });
    },
  });

  await app.register(fileRoutes, { files: opts.files, maxBytes: opts.fileMaxBytes });
};

/**
 * Aborts when the client goes away before the response is complete. Listens on the response,
 * not the socket: a keep-alive socket serves many requests, and a listener per request left
 * on it would pile up for the connection's whole life.
 */
function closedSignal(res: ServerResponse): AbortSignal {
  const ac = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) ac.abort();
  });
  return ac.signal;
}
