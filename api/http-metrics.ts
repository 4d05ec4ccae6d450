import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Registry } from 'prom-client';
import { routeConfigOf } from './context.ts';
import { timestampNow } from './envelope.ts';

export interface ErrorSummaryRow {
  code: string;
  route: string;
  method: string;
  count: number;
  lastAt: string;
}

const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** One route template and method: its latency histogram, and its request count per status. */
interface Series {
  route: string;
  method: string;
  /** Per bucket (not cumulative), the last slot counting those above every bound. */
  buckets: Float64Array;
  sum: number;
  count: number;
  byStatus: Map<number, number>;
}

/**
 * The request counter and latency histogram, kept as plain numbers per series and handed to
 * the registry as two metrics that build their values when scraped. prom-client's own
 * `inc`/`observe` validate and hash the label set on every call, even through `labels()`
 * children; here a request costs two map lookups and a few additions, and the label work
 * happens once per series per scrape. The exposition is the same as prom-client's.
 */
class RouteMetrics {
  readonly #series = new Map<string, Map<string, Series>>();

  record(route: string, method: string, status: number, seconds: number): void {
    let byMethod = this.#series.get(route);
    if (!byMethod) this.#series.set(route, (byMethod = new Map<string, Series>()));
    let s = byMethod.get(method);
    if (!s)
      byMethod.set(
        method,
        (s = { route, method, buckets: new Float64Array(DURATION_BUCKETS.length + 1), sum: 0, count: 0, byStatus: new Map() }),
      );
    let i = 0;
    while (i < DURATION_BUCKETS.length && seconds > DURATION_BUCKETS[i]!) i++;
    s.buckets[i]!++;
    s.sum += seconds;
    s.count++;
    s.byStatus.set(status, (s.byStatus.get(status) ?? 0) + 1);
  }

  *#all(): Generator<Series> {
    for (const byMethod of this.#series.values()) yield* byMethod.values();
  }

  reset(): void {
    this.#series.clear();
  }

  /** The two metrics, in the shape prom-client's registry reads (`name`, `type`, `get()`, `reset()`). */
  register(registry: Registry): void {
    const duration = 'director_http_request_duration_seconds';
    const scraped = (name: string, help: string, type: 'counter' | 'histogram', values: () => MetricValue[]) => {
      const metric = {
        name,
        help,
        type,
        aggregator: 'sum',
        get: () => ({ name, help, type, aggregator: 'sum', values: values() }),
        reset: () => this.reset(),
      };
      registry.registerMetric(metric as unknown as Parameters<Registry['registerMetric']>[0]);
    };
    scraped('director_http_requests_total', 'HTTP requests by route template, method and status code.', 'counter', () => {
      const values: MetricValue[] = [];
      for (const s of this.#all())
        for (const [status, n] of s.byStatus)
          values.push({ labels: { route: s.route, method: s.method, status: String(status) }, value: n });
      return values;
    });
    scraped(duration, 'HTTP request latency by route template and method.', 'histogram', () => {
      const values: MetricValue[] = [];
      for (const s of this.#all()) {
        const labels = { route: s.route, method: s.method };
        let acc = 0;
        DURATION_BUCKETS.forEach((le, i) => {
          acc += s.buckets[i]!;
          values.push({ labels: { le, ...labels }, value: acc, metricName: `${duration}_bucket` });
        });
        values.push({ labels: { le: '+Inf', ...labels }, value: s.count, metricName: `${duration}_bucket` });
        values.push({ labels, value: s.sum, metricName: `${duration}_sum` });
        values.push({ labels, value: s.count, metricName: `${duration}_count` });
      }
      return values;
    });
  }
}

interface MetricValue {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

/**
 * HTTP metrics by route template (never the raw URL: ids would make labels unbounded), method
 * and status, plus an in-memory error summary by code and route for /v1/monitoring/errors.
 */
export function createHttpMetrics(registry: Registry): {
  observe: (req: FastifyRequest, reply: FastifyReply) => void;
  errors: () => ErrorSummaryRow[];
  totals: () => { requests: number; errors: number };
} {
  const metrics = new RouteMetrics();
  metrics.register(registry);
  const errors = new Map<string, ErrorSummaryRow>();
  let total = 0;
  let failed = 0;
  /** Counts one finished request; the app's single `onResponse` hook calls it. */
  const observe = (req: FastifyRequest, reply: FastifyReply): void => {
    const status = reply.statusCode;
    const route = routeConfigOf(req).url ?? 'unmatched';
    total++;
    if (status >= 500) failed++;
    metrics.record(route, req.method, status, reply.elapsedTime / 1000);
    if (status >= 400) {
      // The code the error envelope carried (sendFail notes it), else the bare status.
      const code = req.errorCode ?? `HTTP_${status}`;
      const key = `${code}|${req.method}|${route}`;
      const row = errors.get(key) ?? { code, route, method: req.method, count: 0, lastAt: '' };
      row.count++;
      row.lastAt = timestampNow();
      if (errors.size < 2000 || errors.has(key)) errors.set(key, row);
    }
  };
  return {
    observe,
    errors: () => [...errors.values()].sort((a, b) => b.count - a.count),
    totals: () => ({ requests: total, errors: failed }),
  };
}
