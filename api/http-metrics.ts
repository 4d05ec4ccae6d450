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
  // Callback-style hooks: they run on every request (see the note in app.ts).
  app.addHook('onSend', (req, reply, payload, done) => {
    if (reply.statusCode >= 400 && typeof payload === 'string') {
      const code = /"code":"([A-Z_]{1,40})"/.exec(payload.slice(0, 200))?.[1] ?? `HTTP_${reply.statusCode}`;
      const route = req.routeOptions.url ?? 'unmatched';
      const key = `${code}|${req.method}|${route}`;
      const row = errors.get(key) ?? { code, route, method: req.method, count: 0, lastAt: '' };
      row.count++;
      row.lastAt = new Date().toISOString();
      if (errors.size < 2000 || errors.has(key)) errors.set(key, row);
    }
    done(null, payload);
  });
  // Label-bound children per route/method(/status): prom-client hashes the label object on
  // every inc/observe otherwise. Bounded: route templates × methods × statuses.
  const children = new Map<string, { requests: ReturnType<typeof requests.labels>; duration: ReturnType<typeof duration.labels> }>();
  app.addHook('onResponse', (req, reply, done) => {
    const route = req.routeOptions.url ?? 'unmatched';
    total++;
    if (reply.statusCode >= 500) failed++;
    const key = `${route}\n${req.method}\n${reply.statusCode}`;
    let c = children.get(key);
    if (!c) {
      c = { requests: requests.labels({ route, method: req.method, status: String(reply.statusCode) }), duration: duration.labels({ route, method: req.method }) };
      children.set(key, c);
    }
    c.requests.inc();
    c.duration.observe(reply.elapsedTime / 1000);
    done();
  });
  return {
    errors: () => [...errors.values()].sort((a, b) => b.count - a.count),
    totals: () => ({ requests: total, errors: failed }),
  };
}
