import type { Logger } from 'pino';
import { Emitter } from '../../core/emitter.ts';
import type { EventSink } from '../events.ts';
import type { SandboxRecord } from '../store/sandboxes.ts';
import type { Caller } from './caller.ts';
import type { UsageReadings } from '../monitoring/readings.ts';

/**
 * What happens to a sandbox that other parts of the server follow. The parts that make it happen
 * (creator, pool, teardown, supervisor) emit; the parts that react (executor, supervisor, later
 * the orchestration layer) subscribe in the composition root (`createRuntime`), in the order
 * registered there.
 */
export interface SandboxLifecycleEvents {
  /** A container runs (a cold create reached `running`; warm-pool sandboxes included). */
  started: SandboxRecord;
  /** A running sandbox got its wall-time deadline: a cold create for a caller, or a claim from the pool. */
  deadlineArmed: SandboxRecord;
  /** A sandbox ended: stopped, deleted, exited on its own, or found gone by reconciliation. */
  ended: SandboxRecord;
}

export type SandboxLifecycle = Emitter<SandboxLifecycleEvents>;

/** The lifecycle of one runtime; a listener's failure is logged and does not stop the others. */
export function createSandboxLifecycle(logger: Logger): SandboxLifecycle {
  return new Emitter<SandboxLifecycleEvents>((err, event) => logger.error({ err, event }, 'sandbox lifecycle listener failed'));
}

/**
 * Records a lifecycle step (`sandbox_created`, `sandbox_stopped` ...) in the event stream; pooled
 * sandboxes are not reported. With `usage`, the sandbox's latest measured usage goes in
 * `details.resourceUsage` when there is one (the WebSocket's `sandbox_event` carries it).
 */
export function recordLifecycle(
  events: EventSink,
  type: string,
  rec: SandboxRecord,
  caller: Caller | undefined,
  details: Record<string, unknown>,
  usage?: Pick<UsageReadings, 'get'>,
): void {
  if (rec.pooled) return;
  const resourceUsage = usage?.get(rec.id);
  if (resourceUsage) details = { ...details, resourceUsage };
  events.emit({
    type,
    severity: 'info',
    workspace: rec.workspace,
    sandboxId: rec.id,
    networkId: rec.networkId,
    actor: caller?.actor ?? null,
    details: { status: rec.status, ...details },
  });
}
