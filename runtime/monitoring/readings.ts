/**
 * A sandbox's resource usage as the Director Protocol's `sandbox_event` shows it
 * (`resourceUsage: {cpu: 25.5, memory: 512}`): `cpu` in percent of one core, `memory` in MiB.
 */
export interface ResourceUsage {
  cpu: number;
  memory: number;
}

/**
 * The latest measured usage of each sandbox the monitoring sampler samples (`POST
 * /v1/monitoring/start`): the sampler writes, lifecycle events read. A sandbox nobody samples
 * has none: its events carry no `resourceUsage` rather than a guess.
 */
export class UsageReadings {
  readonly #latest = new Map<string, ResourceUsage>();

  get(sandboxId: string): ResourceUsage | null {
    return this.#latest.get(sandboxId) ?? null;
  }

  set(sandboxId: string, cpuPercent: number, memoryBytes: number): void {
    this.#latest.set(sandboxId, { cpu: Math.round(cpuPercent * 10) / 10, memory: Math.round(memoryBytes / 1_048_576) });
  }

  delete(sandboxId: string): void {
    this.#latest.delete(sandboxId);
  }
}
