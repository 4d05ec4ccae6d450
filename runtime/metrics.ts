import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { SANDBOX_STATES } from './sandbox/states.ts';

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
  /** Every create's outcome at the pool: `exact`, `fitted` (served) or the reason it was created cold. */
  poolFit: Counter<'result'>;
  poolReady: Gauge<'image'>;
  /** Served sandboxes with writable tmpfs mounts by how their `disk` was met: `class` (made with that size), `resized` (remounted at claim). */
  poolDisk: Counter<'result'>;
  sandboxes: Gauge<'state'>;
  /** Sets the source the `director_sandboxes` gauge reads at scrape time. */
  onCollectSandboxes(fn: () => Record<string, number>): void;
  /** Sets the component health read at scrape time (engine, store, firewall: 1 up, 0 down). */
  onCollectHealth(fn: () => Promise<Record<'engine' | 'store' | 'firewall', number>>): void;
  /** Sets the source of per-network packet/byte counters (read from nft at scrape time). */
  onCollectNetworks(fn: () => Promise<NetworkCounters[]>): void;
}

export interface NetworkCounters {
  network: string;
  counters: { allowed: { packets: number; bytes: number } | null; denied: { packets: number; bytes: number } | null } | null;
}

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export function createRuntimeMetrics(registry = new Registry(), opts: { processMetrics?: boolean } = {}): RuntimeMetrics {
  if (opts.processMetrics) {
    collectDefaultMetrics({ register: registry, prefix: 'director_' });
    // prom-client names three gauges `*_total`, which Prometheus conventions (and promtool) reserve for counters.
    for (const name of [
      'director_nodejs_active_handles_total',
      'director_nodejs_active_requests_total',
      'director_nodejs_active_resources_total',
    ])
      registry.removeSingleMetric(name);
  }
  let source: () => Record<string, number> = () => ({});
  const sandboxes = new Gauge({
    name: 'director_sandboxes',
    help: 'Sandboxes by state (pool excluded).',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      this.reset();
      const counts = source();
      for (const state of SANDBOX_STATES) this.set({ state }, counts[state] ?? 0);
    },
  });
  let networks: () => Promise<NetworkCounters[]> = () => Promise.resolve([]);
  let cached: { atMs: number; rows: Promise<NetworkCounters[]> } | null = null;
  // One nft read serves both families in a scrape (and scrapes within a second).
  const networkRows = () => {
    if (!cached || Date.now() - cached.atMs > 1000) cached = { atMs: Date.now(), rows: networks().catch(() => []) };
    return cached.rows;
  };
  const fromNft = (name: string, help: string, field: 'packets' | 'bytes') =>
    new Counter({
      name,
      help,
      labelNames: ['network', 'verdict'],
      registers: [registry],
      async collect() {
        this.reset();
        for (const row of await networkRows()) {
          for (const verdict of ['allowed', 'denied'] as const) {
            const v = row.counters?.[verdict]?.[field];
            if (v) this.inc({ network: row.network, verdict }, v);
          }
        }
      },
    });
  fromNft(
    'director_network_packets_total',
    'Packets per network by verdict, from the nft counters (isolated sandbox networks summed as network="isolated").',
    'packets',
  );
  fromNft('director_network_bytes_total', 'Bytes per network by verdict, from the nft counters.', 'bytes');
  let health: () => Promise<Record<'engine' | 'store' | 'firewall', number>> = () => Promise.resolve({ engine: 1, store: 1, firewall: 1 });
  new Gauge({
    name: 'director_component_up',
    help: 'Whether a component works (1) or not (0): engine (answers a ping), store (takes writes), firewall (nft table and hooks in place).',
    labelNames: ['component'],
    registers: [registry],
    async collect() {
      const h = await health().catch(() => ({ engine: 0, store: 0, firewall: 0 }));
      for (const [component, v] of Object.entries(h)) this.set({ component }, v);
    },
  });
  return {
    registry,
    onCollectHealth: (fn) => {
      health = fn;
    },
    onCollectNetworks: (fn) => {
      networks = fn;
    },
    createSeconds: new Histogram({
      name: 'director_sandbox_create_duration_seconds',
      help: 'Time from create request to a running sandbox.',
      labelNames: ['source'],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    startSeconds: new Histogram({
      name: 'director_sandbox_start_duration_seconds',
      help: 'Time the engine took to start a sandbox container.',
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    execSeconds: new Histogram({
      name: 'director_exec_duration_seconds',
      help: 'Duration of executes.',
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    execTotal: new Counter({
      name: 'director_exec_total',
      help: 'Executes by result (ok, nonzero, timeout, denied, error).',
      labelNames: ['result'],
      registers: [registry],
    }),
    eventsTotal: new Counter({
      name: 'director_security_events_total',
      help: 'Security events by type and severity.',
      labelNames: ['type', 'severity'],
      registers: [registry],
    }),
    poolHits: new Counter({ name: 'director_pool_hits_total', help: 'Creates served from the warm pool.', registers: [registry] }),
    poolMisses: new Counter({
      name: 'director_pool_misses_total',
      help: 'Creates that found no warm sandbox for their profile.',
      registers: [registry],
    }),
    poolFit: new Counter({
      name: 'director_pool_fit_total',
      help: 'Creates by what the warm pool did: served as pooled (exact), served after a live limits update (fitted), or created cold and why (no_pool, network, command, profile, nofile, disk, workdir, security_policy, empty, update_failed).',
      labelNames: ['result'],
      registers: [registry],
    }),
    poolDisk: new Counter({
      name: 'director_pool_disk_total',
      help: 'Sandboxes served from the warm pool by how their disk size was met: class (a warm sandbox made with that size) or resized (its tmpfs remounted at claim).',
      labelNames: ['result'],
      registers: [registry],
    }),
    poolReady: new Gauge({
      name: 'director_pool_ready',
      help: 'Warm sandboxes ready per pooled image.',
      labelNames: ['image'],
      registers: [registry],
    }),
    sandboxes,
    onCollectSandboxes: (fn) => {
      source = fn;
    },
  };
}
