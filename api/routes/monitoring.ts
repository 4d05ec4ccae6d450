import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Runtime } from '../../runtime/runtime.ts';
import { callerOf, send } from '../context.ts';
import type { ErrorSummaryRow } from '../http-metrics.ts';
import { readiness } from '../health.ts';
import { AnyObject, Envelope, STANDARD_ERRORS } from '../schemas.ts';

interface Sample {
  sandboxId: string;
  timestamp: string;
  cpuPercent: number;
  memoryBytes: number;
  pids: number;
  rxBytes: number;
  txBytes: number;
}

/**
 * Per-sandbox resource sampling, switched on and off through the API: one timer per workspace,
 * reading engine stats of the workspace's running sandboxes (or the chosen ones). The latest
 * samples appear in /v1/monitoring/stats.
 */
class Sampler {
  private readonly rt: Runtime;
  private readonly timers = new Map<string, { timer: NodeJS.Timeout; sandboxIds: string[] | null; intervalMs: number }>();
  readonly latest = new Map<string, Sample>();
  constructor(rt: Runtime) {
    this.rt = rt;
  }
  start(workspace: string, sandboxIds: string[] | null, intervalMs: number) {
    this.stop(workspace);
    const tick = async () => {
      const ids = sandboxIds ?? this.rt.sandboxes.list({ workspace }, { status: 'running', limit: 500, offset: 0 }).items.map((r) => r.id);
      for (const id of ids) {
        try {
          const m = await this.rt.sandboxes.metrics({ workspace }, id);
          this.latest.set(`${workspace}|${id}`, {
            sandboxId: id,
            timestamp: m.timestamp,
            cpuPercent: m.cpu.percent,
            memoryBytes: m.memory.usageBytes,
            pids: m.pids.current,
            rxBytes: m.network.rxBytes,
            txBytes: m.network.txBytes,
          });
        } catch {
          this.latest.delete(`${workspace}|${id}`);
        }
      }
    };
    const timer = setInterval(() => void tick(), intervalMs);
    timer.unref();
    void tick();
    this.timers.set(workspace, { timer, sandboxIds, intervalMs });
  }
  stop(workspace: string): boolean {
    const t = this.timers.get(workspace);
    if (!t) return false;
    clearInterval(t.timer);
    this.timers.delete(workspace);
    for (const k of this.latest.keys()) if (k.startsWith(`${workspace}|`)) this.latest.delete(k);
    return true;
  }
  status(workspace: string) {
    const t = this.timers.get(workspace);
    return t ? { active: true, intervalMs: t.intervalMs, sandboxIds: t.sandboxIds } : { active: false };
  }
  samples(workspace: string): Sample[] {
    return [...this.latest.entries()].filter(([k]) => k.startsWith(`${workspace}|`)).map(([, v]) => v);
  }
  stopAll() {
    for (const w of [...this.timers.keys()]) this.stop(w);
  }
}

/** The Monitoring API of the Director Protocol (`/v1/monitoring/*`). */
export const monitoringRoutes: FastifyPluginAsync<{
  runtime: Runtime;
  errors: () => ErrorSummaryRow[];
  totals: () => { requests: number; errors: number };
}> = async (base, opts) => {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  const rt = opts.runtime;
  const sampler = new Sampler(rt);
  app.addHook('onClose', async () => sampler.stopAll());

  app.get('/monitoring/metrics', {
    config: { scope: 'security:read' },
    schema: {
      tags: ['monitoring'],
      summary: "The app's Prometheus metrics as JSON (`{metrics: [{name, type, value, labels}]}`, as in the seed)",
      response: { 200: Envelope(AnyObject), ...STANDARD_ERRORS },
    },
    handler: async (_req, reply) => {
      const families = await rt.metrics.registry.getMetricsAsJSON();
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
    handler: async (_req, reply) => {
      const r = await readiness(rt);
      const fw = rt.networks?.firewall.status ?? null;
      return send(reply, {
        status: r.ready && !fw?.tampered ? 'healthy' : 'degraded',
        checks: r.checks,
        firewall: fw,
        supervisor: { engineUp: rt.supervisor.engineUp },
      });
    },
  });

  app.get('/monitoring/stats', {
    config: { scope: 'sandboxes:read' },
    schema: {
      tags: ['monitoring'],
      summary: "Counts of sandboxes, networks and events, and resource totals of the caller's workspace",
      response: { 200: Envelope(AnyObject), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      const caller = callerOf(req);
      const byState: Record<string, number> = {};
      const running = rt.sandboxes.list(caller, { status: 'running', limit: 10_000, offset: 0 }).items;
      for (const state of ['creating', 'running', 'stopping', 'stopped', 'failed'] as const)
        byState[state] = rt.sandboxes.list(caller, { status: state, limit: 1, offset: 0 }).total;
      const samples = sampler.samples(caller.workspace);
      const events = rt.db.sql
        .prepare('SELECT severity, count(*) AS n FROM events WHERE workspace = ? AND ts_ms > ? GROUP BY severity')
        .all(caller.workspace, Date.now() - 86_400_000) as { severity: string; n: number }[];
      return send(reply, {
        sandboxes: { byState, total: Object.values(byState).reduce((a, b) => a + b, 0) },
        networks: rt.networks ? { total: rt.networks.manager.list(caller, { limit: 1, offset: 0 }).total } : null,
        events: { last24h: Object.fromEntries(events.map((e) => [e.severity, e.n])) },
        resources: {
          allocated: {
            cpuCores: running.reduce((a, r) => a + r.spec.resourceLimits.cpu, 0),
            memoryMb: running.reduce((a, r) => a + r.spec.resourceLimits.memory, 0),
            pids: running.reduce((a, r) => a + r.spec.resourceLimits.pids, 0),
          },
          sampled: samples.length
            ? {
                sandboxes: samples.length,
                cpuPercent: samples.reduce((a, s) => a + s.cpuPercent, 0),
                memoryBytes: samples.reduce((a, s) => a + s.memoryBytes, 0),
                pids: samples.reduce((a, s) => a + s.pids, 0),
              }
            : null,
          samples,
        },
        monitoring: sampler.status(caller.workspace),
        http: opts.totals(),
      });
    },
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
    config: { scope: 'sandboxes:read' },
    schema: {
      tags: ['monitoring'],
      summary: 'Start per-sandbox resource sampling (all running sandboxes of the workspace, or the given ones)',
      body: StartBody,
      response: { 200: Envelope(AnyObject), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      const caller = callerOf(req);
      const ids = req.body?.sandboxIds ?? null;
      for (const id of ids ?? []) rt.sandboxes.get(caller, id);
      sampler.start(caller.workspace, ids, req.body?.intervalMs ?? 5000);
      return send(reply, sampler.status(caller.workspace));
    },
  });
  app.post('/monitoring/stop', {
    config: { scope: 'sandboxes:read' },
    schema: {
      tags: ['monitoring'],
      summary: 'Stop resource sampling for the workspace',
      response: { 200: Envelope(AnyObject), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      const caller = callerOf(req);
      return send(reply, { stopped: sampler.stop(caller.workspace), ...sampler.status(caller.workspace) });
    },
  });
};
