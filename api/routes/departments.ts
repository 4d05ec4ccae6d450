import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { isoTime } from '../../core/clock.ts';
import { CreateDepartmentSchema } from '../../orchestration/departments/schemas.ts';
import type { DepartmentService } from '../../orchestration/departments/service.ts';
import type { DepartmentRecord } from '../../orchestration/departments/store.ts';
import { callerOf, send } from '../context.ts';
import { AnyObject, Envelope, IdParams, Page, PageQuery, STANDARD_ERRORS } from '../schemas.ts';

const DepartmentSchema = Type.Object(
  {
    id: Type.String(),
    sessionId: Type.String(),
    name: Type.String(),
    domain: Type.String(),
    capabilities: Type.Array(Type.String()),
    config: AnyObject,
    createdAt: Type.String(),
    updatedAt: Type.String(),
  },
  { additionalProperties: false },
);

const MetricsSchema = Type.Object({
  departmentId: Type.String(),
  sessionId: Type.String(),
  timestamp: Type.String(),
  sandboxes: Type.Object({ running: Type.Integer(), total: Type.Integer() }),
  tasks: Type.Object({ total: Type.Integer(), active: Type.Integer(), failed: Type.Integer() }),
  cpu: Type.Object({ percent: Type.Number(), limitCores: Type.Union([Type.Number(), Type.Null()]) }),
  memory: Type.Object({ usageBytes: Type.Integer(), limitBytes: Type.Union([Type.Integer(), Type.Null()]) }),
  maxConcurrentTasks: Type.Integer(),
});

const view = (r: DepartmentRecord) => ({
  id: r.id,
  sessionId: r.sessionId,
  name: r.name,
  domain: r.domain,
  capabilities: r.capabilities,
  config: r.config as unknown as Record<string, unknown>,
  createdAt: isoTime(r.createdMs),
  updatedAt: isoTime(r.updatedMs),
});

/** The Director Protocol's Department API (`/v1/departments`). */
export const departmentRoutes: FastifyPluginAsync<{ departments: DepartmentService }> = async (base, { departments }) => {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  const Params = IdParams('dep');

  app.post('/departments', {
    config: { scope: 'sessions:write', idempotent: true },
    schema: {
      tags: ['departments'],
      summary: 'Create a department in a session',
      description:
        'The session must be `active` and below its `config.maxDepartments` (409 otherwise). `config.resourceLimits` is a ceiling for every sandbox created with this `departmentId`: it must narrow the session’s limits and the operator’s (400 naming the level, e.g. `session ses_… allows memory ≤ 1024 MiB`, recorded as a `policy_violation`). `config.maxConcurrentTasks` bounds the department’s concurrent workflow runs (default 5).',
      body: CreateDepartmentSchema,
      response: { 201: Envelope(DepartmentSchema), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, view(departments.create(callerOf(req), req.body)), 201),
  });

  app.get('/departments', {
    config: { scope: 'sessions:read' },
    schema: {
      tags: ['departments'],
      summary: 'List departments',
      querystring: Type.Object(
        {
          sessionId: Type.Optional(Type.String({ pattern: '^ses_[A-Za-z0-9_-]{16}$' })),
          domain: Type.Optional(Type.String({ maxLength: 64 })),
          ...PageQuery,
        },
        { additionalProperties: false },
      ),
      response: { 200: Envelope(Page(DepartmentSchema)), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      const { sessionId, domain, limit = 20, offset = 0 } = req.query;
      const page = departments.list(callerOf(req), { ...(sessionId ? { sessionId } : {}), ...(domain ? { domain } : {}), limit, offset });
      return send(reply, { items: page.items.map(view), total: page.total, limit, offset });
    },
  });

  app.get('/departments/:id', {
    config: { scope: 'sessions:read' },
    schema: {
      tags: ['departments'],
      summary: 'Get a department',
      params: Params,
      response: { 200: Envelope(DepartmentSchema), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, view(departments.get(callerOf(req), req.params.id))),
  });

  app.get('/departments/:id/metrics', {
    config: { scope: 'sessions:read' },
    schema: {
      tags: ['departments'],
      summary: 'Department metrics',
      description:
        'Sandboxes of the department (running / not deleted), tasks (executes in its sandboxes and workflow steps: total so far, running now, failed), and CPU (percent of one core, summed) and memory in use by its running sandboxes against the department’s limits, measured by the engine now.',
      params: Params,
      response: { 200: Envelope(MetricsSchema), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, await departments.metrics(callerOf(req), req.params.id)),
  });

  app.delete('/departments/:id', {
    config: { scope: 'sessions:write' },
    schema: {
      tags: ['departments'],
      summary: 'Delete a department',
      description:
        'Beyond the Director Protocol. The department disappears from the API; sandboxes created in it keep running under their session (they are ended with the session).',
      params: Params,
      response: { 200: Envelope(Type.Object({ id: Type.String(), deleted: Type.Literal(true) })), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      departments.delete(callerOf(req), req.params.id);
      return send(reply, { id: req.params.id, deleted: true as const });
    },
  });
};
