import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Registry } from 'prom-client';
import type { Monitoring } from '../../runtime/monitoring/service.ts';
import { callerOf, send } from '../context.ts';
import type { ErrorSummaryRow } from '../http-metrics.ts';
import { AnyObject, Envelope, STANDARD_ERRORS } from '../schemas.ts';

/** The Monitoring API of the Director Protocol (`/v1/monitoring/*`). */
export const monitoringRoutes: FastifyPluginAsync<{
  monitoring: Monitoring;
  registry: Registry;
  errors: () => ErrorSummaryRow[];
  totals: () => { requests: number; errors: number };
}> = async (base, opts) => {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  const { monitoring, registry } = opts;

  app.get('/monitoring/metrics', {
    config: { scope: 'security:read' },
    schema: {
      tags: ['monitoring'],
      summary: "The app's Prometheus metrics as JSON (`{metrics: [{name, type, value, labels}]}`, as in the Director Protocol)",
      response: { 200: Envelope(AnyObject), ...STANDARD_ERRORS },
    },
    handler: async (_req, reply) => {
      const families = await registry.getMetricsAsJSON();
      const metrics = families.flatMap((f) =>
        f.values.map((v) => ({
          name: (v as { metricName?: string }).metricName ?? f.name,
          type: String(f.type),
          value: v.value,
          labels: v.labels,
        })),
      );
      return send(reply, { metrics });
    },
  });

  app.get('/monitoring/health', {
    config: { scope: 'sandboxes:read' },
    schema: {
      tags: ['monitoring'],
      summary: 'Component health: engine, store, nft table, event stream',
      response: { 200: Envelope(AnyObject), ...STANDARD_ERRORS },
    },
    handler: async (_req, reply) => send(reply, await monitoring.health()),
  });

  app.get('/monitoring/stats', {
    config: { scope: 'sandboxes:read' },
    schema: {
      tags: ['monitoring'],
      summary: "Counts of sandboxes, networks and events, and resource totals of the caller's workspace",
      response: { 200: Envelope(AnyObject), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, { ...monitoring.stats(callerOf(req)), http: opts.totals() }),
  });

  app.get('/monitoring/errors', {
    config: { scope: 'security:read' },
    schema: {
      tags: ['monitoring'],
      summary: 'Error responses since start, by code and route template',
      response: { 200: Envelope(AnyObject), ...STANDARD_ERRORS },
    },
    handler: async (_req, reply) => {
      const rows = opts.errors();
      const byCode: Record<string, number> = {};
      for (const r of rows) byCode[r.code] = (byCode[r.code] ?? 0) + r.count;
      return send(reply, { byCode, byRoute: rows.slice(0, 200) });
    },
  });

  const StartBody = Type.Optional(
    Type.Object(
      {
        sandboxIds: Type.Optional(Type.Array(Type.String({ pattern: '^sbx_[A-Za-z0-9_-]{16}$' }), { maxItems: 500 })),
        intervalMs: Type.Optional(Type.Integer({ minimum: 1000, maximum: 3_600_000 })),
      },
      { additionalProperties: false },
    ),
  );
  app.post('/monitoring/start', {
    // The Director Protocol's client starts monitoring with no body: none is an empty one.
    config: { scope: 'sandboxes:read', optionalBody: true },
    schema: {
      tags: ['monitoring'],
      summary: 'Start per-sandbox resource sampling (all running sandboxes of the workspace, or the given ones)',
      body: StartBody,
      response: { 200: Envelope(AnyObject), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) =>
      send(reply, monitoring.startSampling(callerOf(req), req.body?.sandboxIds ?? null, req.body?.intervalMs ?? 5000)),
  });
  app.post('/monitoring/stop', {
    config: { scope: 'sandboxes:read' },
    schema: {
      tags: ['monitoring'],
      summary: 'Stop resource sampling for the workspace',
      response: { 200: Envelope(AnyObject), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, monitoring.stopSampling(callerOf(req))),
  });
};
