import type { FastifyInstance } from 'fastify';
import { Counter, Histogram, type Registry } from 'prom-client';

export interface ErrorSummaryRow {
  code: string;
  route: string;
  method: string;
  count: number;
  lastAt: string;
}

/**
 * HTTP metrics by route template (never the raw URL: ids would make labels unbounded), method
 * and status, plus an in-memory error summary by code and route for /v1/monitoring/errors.
 */
export function installHttpMetrics(app: FastifyInstance, registry: Registry): { errors: () => ErrorSummaryRow[]; totals: () => { requests: number; errors: number } } {
  const requests = new Counter({ name: 'director_http_requests_total', help: 'HTTP requests by route template, method and status code.', labelNames: ['route', 'method', 'status'], registers: [registry] });
  const duration = new Histogram({
    name: 'director_http_request_duration_seconds',
    help: 'HTTP request latency by route template and method.',
    labelNames: ['route', 'method'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const errors = new Map<string, ErrorSummaryRow>();
  let total = 0;
  let failed = 0;
  app.addHook('onSend', async (req, reply, payload) => {
    if (reply.statusCode >= 400 && typeof payload === 'string') {
      const code = /"code":"([A-Z_]{1,40})"/.exec(payload.slice(0, 200))?.[1] ?? `HTTP_${reply.statusCode}`;
      const route = req.routeOptions.url ?? 'unmatched';
      const key = `${code}|${req.method}|${route}`;
      const row = errors.get(key) ?? { code, route, method: req.method, count: 0, lastAt: '' };
      row.count++;
      row.lastAt = new Date().toISOString();
      if (errors.size < 2000 || errors.has(key)) errors.set(key, row);
    }
    return payload;
  });
  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    total++;
    if (reply.statusCode >= 500) failed++;
    requests.inc({ route, method: req.method, status: String(reply.statusCode) });
    duration.observe({ route, method: req.method }, reply.elapsedTime / 1000);
  });
  return {
    errors: () => [...errors.values()].sort((a, b) => b.count - a.count),
    totals: () => ({ requests: total, errors: failed }),
  };
}
