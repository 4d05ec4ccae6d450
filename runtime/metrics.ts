import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The runtime's Prometheus metrics, in a registry owned by the app (never the global one).
 * One prefix (`director_`), base units (seconds, bytes), `_total` counters, and only bounded
 * label values: no sandbox ids, no user-chosen strings except configured image names.
 */
export interface RuntimeMetrics {
  registry: Registry;
  createSeconds: Histogram<'source'>;
  startSeconds: Histogram;
  execSeconds: Histogram;
  execTotal: Counter<'result'>;
  eventsTotal: Counter<'type' | 'severity'>;
  poolHits: Counter;
  poolMisses: Counter;
  poolReady: Gauge<'image'>;
  sandboxes: Gauge<'state'>;
  /** Sets the source the `director_sandboxes` gauge reads at scrape time. */
  onCollectSandboxes(fn: () => Record<string, number>): void;
}

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export function createRuntimeMetrics(registry = new Registry(), opts: { processMetrics?: boolean } = {}): RuntimeMetrics {
  if (opts.processMetrics) collectDefaultMetrics({ register: registry, prefix: 'director_' });
  let source: () => Record<string, number> = () => ({});
  const sandboxes = new Gauge({
    name: 'director_sandboxes',
    help: 'Sandboxes by state (pool excluded).',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      this.reset();
      const counts = source();
      for (const state of ['creating', 'running', 'stopping', 'stopped', 'failed', 'deleted']) this.set({ state }, counts[state] ?? 0);
    },
  });
  return {
    registry,
    createSeconds: new Histogram({ name: 'director_sandbox_create_duration_seconds', help: 'Time from create request to a running sandbox.', labelNames: ['source'], buckets: LATENCY_BUCKETS, registers: [registry] }),
    startSeconds: new Histogram({ name: 'director_sandbox_start_duration_seconds', help: 'Time the engine took to start a sandbox container.', buckets: LATENCY_BUCKETS, registers: [registry] }),
    execSeconds: new Histogram({ name: 'director_exec_duration_seconds', help: 'Duration of executes.', buckets: LATENCY_BUCKETS, registers: [registry] }),
    execTotal: new Counter({ name: 'director_exec_total', help: 'Executes by result (ok, nonzero, timeout, denied, error).', labelNames: ['result'], registers: [registry] }),
    eventsTotal: new Counter({ name: 'director_security_events_total', help: 'Security events by type and severity.', labelNames: ['type', 'severity'], registers: [registry] }),
    poolHits: new Counter({ name: 'director_pool_hits_total', help: 'Creates served from the warm pool.', registers: [registry] }),
    poolMisses: new Counter({ name: 'director_pool_misses_total', help: 'Creates that found no warm sandbox for their profile.', registers: [registry] }),
    poolReady: new Gauge({ name: 'director_pool_ready', help: 'Warm sandboxes ready per pooled image.', labelNames: ['image'], registers: [registry] }),
    sandboxes,
    onCollectSandboxes: (fn) => {
      source = fn;
    },
  };
}
