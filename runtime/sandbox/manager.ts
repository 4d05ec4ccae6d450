import type { Clock } from '../../core/clock.ts';
import type { Config } from '../config.ts';
import type { Engine } from '../engine/engine.ts';
import { conflict, notFound, validationError } from '../../core/errors.ts';
import type { EventSink } from '../events.ts';
import type { RuntimeMetrics } from '../metrics.ts';
import { NO_OWNER, type SandboxFilter, type SandboxOwner, type SandboxRecord, type SandboxStore } from '../store/sandboxes.ts';
import type { LimitCeiling } from '../../policies/limits.ts';
import type { Caller } from './caller.ts';
import type { SandboxCreator } from './creator.ts';
import { engineCall } from './engine-call.ts';
import { recordLifecycle } from './lifecycle.ts';
import type { NetworkAttacher } from './network.ts';
import type { PoolClaimer } from './pool.ts';
import { PolicyViolationError, resolveSpec, type EffectiveSpec } from './spec.ts';
import type { SandboxTeardown } from './teardown.ts';
import type { Ceiling } from '../../policies/profiles.ts';

export type { Caller } from './caller.ts';

/** Security profile ceilings for a create (workspace default, then the named profile); given by the security layer. */
export interface ProfileCeilings {
  /** Outermost first; throws a VALIDATION_ERROR naming `profileId` for a profile the workspace cannot see. */
  ceilingsFor(workspace: string, profileId: string | undefined): Ceiling[];
}

/** What a layer above the runtime adds to a create: its resource ceilings and the records that own the sandbox. */
export interface CreateOptions {
  /** Resource ceilings of the orchestration levels (session, department, environment), outermost first. */
  limitCeilings?: readonly LimitCeiling[];
  owner?: SandboxOwner;
  /**
   * The policy of the sandbox's private network when it gets one (`networkMode: isolated`),
   * instead of deny-all (an environment's policy). Ignored for a shared network: its own policy governs.
   */
  networkPolicy?: unknown;
}

export interface ManagerDeps {
  engine: Engine;
  store: SandboxStore;
  events: EventSink;
  metrics: RuntimeMetrics;
  config: Config;
  clock: Clock;
  network: Pick<NetworkAttacher, 'assertReady'>;
  creator: Pick<SandboxCreator, 'createCold' | 'imageInfo'>;
  teardown: Pick<SandboxTeardown, 'stop' | 'destroy'>;
  /** The warm pool, when one runs: a create it can fit is served from it (see {@link PoolClaimer.claim}). */
  pool: PoolClaimer | null;
  /** Without the security layer no profile applies and `profileId` is refused. */
  profiles: ProfileCeilings | null;
}

/**
 * Sandboxes as callers see them: create (from the warm pool, else cold), stop, delete and
 * lookups, each within the caller's workspace. All state changes go through
 * {@link SandboxStore.transition}, so the lifecycle table in `states.ts` is the one place that
 * says what may follow what; creating and ending are the creator's and the teardown's.
 */
export class SandboxManager {
  readonly deps: ManagerDeps;

  constructor(deps: ManagerDeps) {
    this.deps = deps;
  }

  /** Validates a raw request; policy violations are recorded as security events. */
  resolve(raw: unknown, caller: Caller, limitCeilings: readonly LimitCeiling[] = []): EffectiveSpec {
    try {
      const asked = raw !== null && typeof raw === 'object' ? (raw as { profileId?: unknown }).profileId : undefined;
      const ceilings = this.deps.profiles?.ceilingsFor(caller.workspace, typeof asked === 'string' ? asked : undefined) ?? [];
      return resolveSpec(raw, this.deps.config, ceilings, limitCeilings);
    } catch (err) {
      if (err instanceof PolicyViolationError) {
        const deniedBy = err.details?.deniedBy as { level: string } | undefined;
        this.deps.events.emit({
          type: 'policy_violation',
          severity: 'medium',
          workspace: caller.workspace,
          actor: caller.actor ?? null,
          details: {
            field: err.details?.field,
            issue: err.details?.issue,
            level: deniedBy?.level ?? 'runtime',
            ...(deniedBy ? { deniedBy } : {}),
          },
        });
      }
      throw err;
    }
  }

  async create(raw: unknown, caller: Caller, opts: CreateOptions = {}): Promise<SandboxRecord> {
    const started = performance.now();
    const spec = this.resolve(raw, caller, opts.limitCeilings);
    const owner = opts.owner ?? NO_OWNER;
    const { network, pool, creator, metrics, events } = this.deps;
    network.assertReady();
    if (pool) {
      const claimed = await pool.claim(spec, caller, owner, opts.networkPolicy !== undefined ? { networkPolicy: opts.networkPolicy } : {});
      if (claimed) {
        metrics.createSeconds.observe({ source: 'pool' }, (performance.now() - started) / 1000);
        recordLifecycle(events, 'sandbox_created', claimed, caller, { source: 'pool' });
        return claimed;
      }
    }
    const image = await creator.imageInfo(spec.image);
    if (!image)
      throw validationError('image', `image ${spec.image} is not available on this engine (Director does not pull from registries)`);
    const rec = await creator.createCold(spec, caller.workspace, {
      imageWorkdir: image.workdir,
      owner,
      ...(opts.networkPolicy !== undefined ? { networkPolicy: opts.networkPolicy } : {}),
    });
    metrics.createSeconds.observe({ source: 'cold' }, (performance.now() - started) / 1000);
    recordLifecycle(events, 'sandbox_created', rec, caller, { source: 'cold' });
    return rec;
  }

  get(caller: Caller, id: string): SandboxRecord {
    const rec = this.deps.store.get(caller.workspace, id);
    if (!rec) {
      // Same answer as a missing id; recorded when the id exists in another workspace.
      const other = this.deps.store.byId(id);
      if (other && other.workspace !== caller.workspace && !other.pooled) {
        this.deps.events.emit({
          type: 'cross_workspace_attempt',
          severity: 'high',
          workspace: caller.workspace,
          actor: caller.actor ?? null,
          details: { resource: 'sandbox', id },
        });
      }
      throw notFound('sandbox', id);
    }
    return rec;
  }

  list(caller: Caller, filter: SandboxFilter): { items: SandboxRecord[]; total: number } {
    return this.deps.store.list(caller.workspace, filter);
  }

  async metrics(caller: Caller, id: string) {
    const rec = this.get(caller, id);
    if (rec.status !== 'running' || !rec.containerId)
      throw conflict(`sandbox ${id} is ${rec.status}; metrics exist only while it runs`, { status: rec.status });
    const s = await engineCall(() => this.deps.engine.stats(rec.containerId!));
    return {
      sandboxId: id,
      timestamp: new Date(s.timestampMs).toISOString(),
      cpu: { percent: Math.round(s.cpuPercent * 100) / 100, limitCores: rec.spec.resourceLimits.cpu },
      memory: { usageBytes: s.memoryBytes, limitBytes: s.memoryLimitBytes },
      pids: { current: s.pids, limit: s.pidsLimit || rec.spec.resourceLimits.pids },
      network: { rxBytes: s.networkRxBytes, txBytes: s.networkTxBytes },
      uptimeMs: rec.startedMs ? this.deps.clock.nowMs() - rec.startedMs : 0,
    };
  }

  /** Stops a running sandbox (SIGTERM, then SIGKILL after `graceS`). Stopping a stopped one is a no-op. */
  async stop(caller: Caller, id: string, opts: { graceS?: number; reason?: string } = {}): Promise<SandboxRecord> {
    const rec = this.get(caller, id);
    return this.deps.teardown.stop(rec, opts.reason ?? 'stopped by request', opts.graceS ?? 2, caller);
  }

  /** Removes the container (and a private network) and marks the record deleted. */
  async delete(caller: Caller, id: string): Promise<void> {
    const rec = this.get(caller, id);
    if (rec.status === 'creating') throw conflict(`sandbox ${id} is still being created`, { status: rec.status });
    await this.deps.teardown.destroy(rec, 'deleted by request', caller);
  }
}
