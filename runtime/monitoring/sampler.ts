import type { Logger } from 'pino';
import type { SandboxManager } from '../sandbox/manager.ts';
import type { UsageReadings } from './readings.ts';

export interface Sample {
  sandboxId: string;
  timestamp: string;
  cpuPercent: number;
  memoryBytes: number;
  pids: number;
  rxBytes: number;
  txBytes: number;
}

export interface SamplingStatus {
  active: boolean;
  intervalMs?: number;
  sandboxIds?: string[] | null;
}

/**
 * Per-sandbox resource sampling, switched on and off per workspace: one timer per workspace,
 * reading engine stats of the workspace's running sandboxes (or the chosen ones) and keeping
 * the latest sample of each. Timers are unref'd and all stop with {@link stopAll}.
 */
export class Sampler {
  readonly #sandboxes: Pick<SandboxManager, 'list' | 'metrics'>;
  readonly #log: Logger | undefined;
  readonly #timers = new Map<string, { timer: NodeJS.Timeout; sandboxIds: string[] | null; intervalMs: number }>();
  readonly #latest = new Map<string, Sample>();
  readonly #readings: UsageReadings | null;

  /** `readings`: where lifecycle events find each sampled sandbox's latest usage. */
  constructor(sandboxes: Pick<SandboxManager, 'list' | 'metrics'>, logger?: Logger, readings: UsageReadings | null = null) {
    this.#sandboxes = sandboxes;
    this.#log = logger;
    this.#readings = readings;
  }

  /** Samples the workspace's running sandboxes (or `sandboxIds`) now and every `intervalMs`; replaces a sampling in progress. */
  start(workspace: string, sandboxIds: string[] | null, intervalMs: number): void {
    this.stop(workspace);
    const tick = async () => {
      const ids = sandboxIds ?? this.#sandboxes.list({ workspace }, { status: 'running', limit: 500, offset: 0 }).items.map((r) => r.id);
      for (const id of ids) {
        try {
          const m = await this.#sandboxes.metrics({ workspace }, id);
          this.#latest.set(`${workspace}|${id}`, {
            sandboxId: id,
            timestamp: m.timestamp,
            cpuPercent: m.cpu.percent,
            memoryBytes: m.memory.usageBytes,
            pids: m.pids.current,
            rxBytes: m.network.rxBytes,
            txBytes: m.network.txBytes,
          });
          this.#readings?.set(id, m.cpu.percent, m.memory.usageBytes);
        } catch {
          // Gone or not running any more: its sample goes with it.
          this.#latest.delete(`${workspace}|${id}`);
          this.#readings?.delete(id);
        }
      }
    };
    const run = () => void tick().catch((err: unknown) => this.#log?.warn({ err, workspace }, 'resource sampling failed'));
    const timer = setInterval(run, intervalMs);
    timer.unref();
    run();
    this.#timers.set(workspace, { timer, sandboxIds, intervalMs });
  }

  /** Stops the workspace's sampling and forgets its samples; false when none ran. */
  stop(workspace: string): boolean {
    const t = this.#timers.get(workspace);
    if (!t) return false;
    clearInterval(t.timer);
    this.#timers.delete(workspace);
    for (const [k, v] of this.#latest)
      if (k.startsWith(`${workspace}|`)) {
        this.#latest.delete(k);
        this.#readings?.delete(v.sandboxId);
      }
    return true;
  }

  status(workspace: string): SamplingStatus {
    const t = this.#timers.get(workspace);
    return t ? { active: true, intervalMs: t.intervalMs, sandboxIds: t.sandboxIds } : { active: false };
  }

  samples(workspace: string): Sample[] {
    return [...this.#latest.entries()].filter(([k]) => k.startsWith(`${workspace}|`)).map(([, v]) => v);
  }

  stopAll(): void {
    for (const w of [...this.#timers.keys()]) this.stop(w);
  }
}
