import type { Health } from '../health.ts';
import type { NetworkManager } from '../network/manager.ts';
import type { Caller, SandboxManager } from '../sandbox/manager.ts';
import type { Supervisor } from '../sandbox/supervisor.ts';
import type { EventStream } from '../security/stream.ts';
import { Sampler, type SamplingStatus } from './sampler.ts';

const DAY_MS = 86_400_000;
const STATES = ['creating', 'running', 'stopping', 'stopped', 'failed'] as const;

export interface MonitoringDeps {
  sandboxes: Pick<SandboxManager, 'list' | 'get' | 'metrics'>;
  /** null when the network layer is off. */
  networks: Pick<NetworkManager, 'list'> | null;
  /** The event stream's queries (the last day's events by severity, by the runtime's clock). */
  stream: Pick<EventStream, 'recentBySeverity'>;
  health: Health;
  supervisor: Pick<Supervisor, 'engineUp'>;
  sampler: Sampler;
}

/**
 * What the Monitoring API reports (`/v1/monitoring/*`), computed here so it can be asked without
 * HTTP: component health, a workspace's counts and resource totals, and per-sandbox sampling.
 */
export class Monitoring {
  readonly #deps: MonitoringDeps;

  constructor(deps: MonitoringDeps) {
    this.#deps = deps;
  }

  /** Engine, store, nft table and event stream, plus the firewall's and supervisor's own state. */
  async health() {
    const { health, supervisor } = this.#deps;
    const r = await health.readiness();
    const fw = health.firewallStatus();
    return {
      status: r.ready && !fw?.tampered ? 'healthy' : 'degraded',
      checks: r.checks,
      firewall: fw,
      supervisor: { engineUp: supervisor.engineUp },
    };
  }

  /** Counts of sandboxes, networks and the last day's events, and resource totals of the caller's workspace. */
  stats(caller: Caller) {
    const { sandboxes, networks, stream, sampler } = this.#deps;
    const byState: Record<string, number> = {};
    const running = sandboxes.list(caller, { status: 'running', limit: 10_000, offset: 0 }).items;
    for (const state of STATES) byState[state] = sandboxes.list(caller, { status: state, limit: 1, offset: 0 }).total;
    const samples = sampler.samples(caller.workspace);
    return {
      sandboxes: { byState, total: Object.values(byState).reduce((a, b) => a + b, 0) },
      networks: networks ? { total: networks.list(caller, { limit: 1, offset: 0 }).total } : null,
      events: { last24h: stream.recentBySeverity(caller.workspace, DAY_MS) },
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
    };
  }

  /** Starts sampling the workspace's running sandboxes, or the named ones (each must be the caller's: 404 otherwise). */
  startSampling(caller: Caller, sandboxIds: string[] | null, intervalMs: number): SamplingStatus {
    for (const id of sandboxIds ?? []) this.#deps.sandboxes.get(caller, id);
    this.#deps.sampler.start(caller.workspace, sandboxIds, intervalMs);
    return this.#deps.sampler.status(caller.workspace);
  }

  stopSampling(caller: Caller): SamplingStatus & { stopped: boolean } {
    const stopped = this.#deps.sampler.stop(caller.workspace);
    return { stopped, ...this.#deps.sampler.status(caller.workspace) };
  }

  /** Stops every workspace's sampling (runtime shutdown). */
  close(): void {
    this.#deps.sampler.stopAll();
  }
}
