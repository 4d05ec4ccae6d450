import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { Clock } from '../../core/clock.ts';
import type { Config } from '../config.ts';
import type { Engine, ContainerSpec, ImageInfo } from '../engine/engine.ts';
import { EngineUnavailableError } from '../engine/engine.ts';
import { DirectorError, conflict, notFound, unavailable, validationError } from '../../core/errors.ts';
import type { EventSink } from '../events.ts';
import { newId } from '../../core/ids.ts';
import type { RuntimeMetrics } from '../metrics.ts';
import { NO_OWNER, type SandboxFilter, type SandboxOwner, type SandboxRecord, type SandboxStore } from '../store/sandboxes.ts';
import type { LimitCeiling } from '../../policies/limits.ts';
import { toStoredSpec } from '../store/sandboxes.ts';
import { buildContainerSpec } from './hardening.ts';
import type { NetworkAttacher } from './network.ts';
import { PolicyViolationError, resolveSpec, type EffectiveSpec } from './spec.ts';
import type { Ceiling } from '../../policies/profiles.ts';

export interface ManagerDeps {
  engine: Engine;
  store: SandboxStore;
  events: EventSink;
  metrics: RuntimeMetrics;
  config: Config;
  clock: Clock;
  logger: Logger;
  network: NetworkAttacher;
}

const IMAGE_CACHE_MS = 10_000;

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

export interface Caller {
  workspace: string;
  /** Who asked (user or key id), for events. */
  actor?: string;
}

/** Identifies interchangeable sandboxes: same image and the same effective limits/policy. */
export function poolKeyOf(spec: EffectiveSpec): string {
  const { image, resourceLimits, securityPolicy, networkMode, workdir } = spec;
  return createHash('sha256')
    .update(JSON.stringify({ image, resourceLimits, securityPolicy, networkMode, workdir }))
    .digest('hex')
    .slice(0, 16);
}

/** A spec can be served from the pool when nothing about it is baked into the container per request. */
export const isPoolable = (spec: EffectiveSpec): boolean =>
  spec.command === null &&
  Object.keys(spec.environment).length === 0 &&
  spec.networkMode === 'none' &&
  spec.profileId === undefined &&
  spec.nofile === undefined;

/** Security profile ceilings for a create (workspace default, then the named profile); set by the security layer. */
export interface ProfileCeilings {
  /** Outermost first; throws a VALIDATION_ERROR naming `profileId` for a profile the workspace cannot see. */
  ceilingsFor(workspace: string, profileId: string | undefined): Ceiling[];
}

/**
 * Sandbox lifecycle: create (from the warm pool or cold), stop, delete and lookups. All
 * state changes go through {@link SandboxStore.transition}, so the lifecycle table in
 * `states.ts` is the one place that says what may follow what.
 */
export class SandboxManager {
  readonly deps: ManagerDeps;
  /** Set by the pool when one runs; returns a claimed running sandbox or null. */
  claimFromPool: ((spec: EffectiveSpec, caller: Caller, owner: SandboxOwner) => SandboxRecord | null) | null = null;
  onDeadlineArmed: ((r: SandboxRecord) => void) | null = null;
  /** Called once a container runs (the executor pre-starts its exec launcher). */
  onStarted: ((r: SandboxRecord) => void) | null = null;
  /** Called once a sandbox ended: stopped, deleted, exited on its own or found gone (the executor forgets it). */
  onEnded: ((r: SandboxRecord) => void) | null = null;
  /** Set by the security layer (`runtime/security/`); without it no profile applies and `profileId` is refused. */
  profiles: ProfileCeilings | null = null;

  constructor(deps: ManagerDeps) {
    this.deps = deps;
  }

  private get log(): Logger {
    return this.deps.logger;
  }

  /** Validates a raw request; policy violations are recorded as security events. */
  resolve(raw: unknown, caller: Caller, limitCeilings: readonly LimitCeiling[] = []): EffectiveSpec {
    try {
      const asked = raw !== null && typeof raw === 'object' ? (raw as { profileId?: unknown }).profileId : undefined;
      const ceilings = this.profiles?.ceilingsFor(caller.workspace, typeof asked === 'string' ? asked : undefined) ?? [];
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
    this.deps.network.assertReady();
    if (isPoolable(spec) && opts.networkPolicy === undefined && this.claimFromPool) {
      const claimed = this.claimFromPool(spec, caller, owner);
      if (claimed) {
        this.deps.metrics.createSeconds.observe({ source: 'pool' }, (performance.now() - started) / 1000);
        this.lifecycleEvent('sandbox_created', claimed, caller, { source: 'pool' });
        return claimed;
      }
    }
    const image = await this.imageInfo(spec.image);
    if (!image)
      throw validationError('image', `image ${spec.image} is not available on this engine (Director does not pull from registries)`);
    const rec = await this.createCold(spec, caller.workspace, {
      imageWorkdir: image.workdir,
      owner,
      ...(opts.networkPolicy !== undefined ? { networkPolicy: opts.networkPolicy } : {}),
    });
    this.deps.metrics.createSeconds.observe({ source: 'cold' }, (performance.now() - started) / 1000);
    this.lifecycleEvent('sandbox_created', rec, caller, { source: 'cold' });
    return rec;
  }

  /**
   * Creates and starts a container for `spec`. On any failure the container and network it
   * got are removed and the record is marked failed: nothing half-created stays behind.
   */
  async createCold(
    spec: EffectiveSpec,
    workspace: string,
    opts: { imageWorkdir: string; poolKey?: string; owner?: SandboxOwner; networkPolicy?: unknown },
  ): Promise<SandboxRecord> {
    const { store, engine, clock, config } = this.deps;
    const id = newId('sbx');
    const now = clock.nowMs();
    const record: SandboxRecord = {
      id,
      workspace,
      name: spec.name,
      image: spec.image,
      status: 'creating',
      reason: null,
      spec: toStoredSpec(spec),
      labels: spec.labels,
      containerId: null,
      networkId: null,
      ipAddress: null,
      pooled: Boolean(opts.poolKey),
      poolKey: opts.poolKey ?? null,
      exitCode: null,
      createdMs: now,
      updatedMs: now,
      startedMs: null,
      deadlineMs: null,
      stoppedMs: null,
      deletedMs: null,
      owner: opts.owner ?? NO_OWNER,
    };
    // Count and insert in one synchronous step: concurrent creates cannot both take the last slot.
    if (store.countActive() >= config.maxSandboxes) {
      throw new DirectorError('SERVICE_UNAVAILABLE', `this host runs its maximum of ${config.maxSandboxes} sandboxes`, {
        limit: config.maxSandboxes,
      });
    }
    store.insert(record);
    let containerId: string | null = null;
    let networkId: string | null = null;
    try {
      let network: ContainerSpec['network'] = { mode: 'none' };
      if (spec.networkMode !== 'none') {
        const att = await this.deps.network.attach(
          { id, workspace },
          spec.networkMode,
          opts.networkPolicy !== undefined ? { policy: opts.networkPolicy } : {},
        );
        network = att.network;
        networkId = att.networkId;
        store.patch(id, clock.nowMs(), { networkId });
      }
      const cspec = buildContainerSpec(
        spec,
        {
          sandboxId: id,
          workspace,
          runtimeName: config.runtimeName,
          network,
          imageWorkdir: opts.imageWorkdir,
          ...(opts.poolKey ? { poolKey: opts.poolKey } : {}),
        },
        config,
      );
      containerId = await engine.createContainer(cspec);
      store.patch(id, clock.nowMs(), { containerId });
      const t0 = performance.now();
      await engine.startContainer(containerId);
      this.deps.metrics.startSeconds.observe((performance.now() - t0) / 1000);
      let ipAddress: string | null = null;
      if (networkId) {
        const state = await engine.inspectContainer(containerId);
        ipAddress = Object.values(state?.ipAddresses ?? {})[0] || null;
        await this.deps.network.attached?.({ id, workspace, networkId, ipAddress });
      }
      const startedMs = clock.nowMs();
      const running = store.transition(id, 'running', startedMs, {
        startedMs,
        ipAddress,
        deadlineMs: opts.poolKey ? null : startedMs + spec.resourceLimits.maxDuration,
      });
      if (!running) throw conflict(`sandbox ${id} was removed while it was being created`);
      this.onStarted?.(running);
      if (running.deadlineMs) this.onDeadlineArmed?.(running);
      return running;
    } catch (err) {
      this.log.warn({ err, sandboxId: id }, 'sandbox create failed; cleaning up');
      if (containerId)
        await engine
          .removeContainer(containerId)
          .catch((e: unknown) => this.log.error({ err: e, sandboxId: id }, 'cleanup: remove container failed'));
      if (networkId)
        await this.deps.network
          .release({ id, workspace, networkId })
          .catch((e: unknown) => this.log.error({ err: e, sandboxId: id }, 'cleanup: release network failed'));
      store.transition(id, 'failed', clock.nowMs(), {
        reason: `create failed: ${(err as Error).message}`.slice(0, 500),
        stoppedMs: clock.nowMs(),
      });
      if (err instanceof EngineUnavailableError) throw unavailable('the container engine is unavailable', err);
      throw err;
    }
  }

  private readonly images = new Map<string, { info: ImageInfo; atMs: number }>();

  /** Image metadata, cached briefly: it is read on every cold create and changes rarely. */
  async imageInfo(ref: string): Promise<ImageInfo | null> {
    const hit = this.images.get(ref);
    const now = this.deps.clock.nowMs();
    if (hit && now - hit.atMs < IMAGE_CACHE_MS) return hit.info;
    const info = await this.wrapEngine(() => this.deps.engine.imageInfo(ref));
    if (info) this.images.set(ref, { info, atMs: now });
    else this.images.delete(ref);
    return info;
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
    const s = await this.wrapEngine(() => this.deps.engine.stats(rec.containerId!));
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
    return this.stopRecord(rec, opts.reason ?? 'stopped by request', opts.graceS ?? 2, caller);
  }

  async stopRecord(rec: SandboxRecord, reason: string, graceS: number, caller?: Caller): Promise<SandboxRecord> {
    const { store, engine, clock } = this.deps;
    if (rec.status === 'stopped' || rec.status === 'failed') return rec;
    if (rec.status === 'creating') throw conflict(`sandbox ${rec.id} is still being created`, { status: rec.status });
    if (rec.status === 'running' && !store.transition(rec.id, 'stopping', clock.nowMs())) return store.byId(rec.id) ?? rec;
    if (rec.containerId) {
      await this.wrapEngine(() => (graceS > 0 ? engine.stopContainer(rec.containerId!, graceS) : engine.killContainer(rec.containerId!)));
    }
    const state = rec.containerId ? await engine.inspectContainer(rec.containerId).catch(() => null) : null;
    const done =
      store.transition(rec.id, 'stopped', clock.nowMs(), { reason, stoppedMs: clock.nowMs(), exitCode: state?.exitCode ?? null }) ??
      store.byId(rec.id)!;
    this.lifecycleEvent('sandbox_stopped', done, caller, { reason });
    this.onEnded?.(done);
    return done;
  }

  /** Removes the container (and a private network) and marks the record deleted. */
  async delete(caller: Caller, id: string): Promise<void> {
    const rec = this.get(caller, id);
    if (rec.status === 'creating') throw conflict(`sandbox ${id} is still being created`, { status: rec.status });
    await this.destroy(rec, 'deleted by request', caller);
  }

  async destroy(rec: SandboxRecord, reason: string, caller?: Caller): Promise<void> {
    const { store, engine, clock } = this.deps;
    // Stopping first, so the engine's `die` event for the removal is not read as an exit.
    if (rec.status === 'running') store.transition(rec.id, 'stopping', clock.nowMs());
    if (rec.containerId) await this.wrapEngine(() => engine.removeContainer(rec.containerId!));
    if (rec.networkId) await this.deps.network.release({ id: rec.id, workspace: rec.workspace, networkId: rec.networkId });
    const now = clock.nowMs();
    const deleted = store.transition(rec.id, 'deleted', now, {
      deletedMs: now,
      stoppedMs: rec.stoppedMs ?? now,
      reason: rec.reason ?? reason,
    });
    if (deleted) this.lifecycleEvent('sandbox_deleted', deleted, caller, { reason });
    this.onEnded?.(rec);
  }

  lifecycleEvent(type: string, rec: SandboxRecord, caller: Caller | undefined, details: Record<string, unknown>): void {
    if (rec.pooled) return;
    this.deps.events.emit({
      type,
      severity: 'info',
      workspace: rec.workspace,
      sandboxId: rec.id,
      networkId: rec.networkId,
      actor: caller?.actor ?? null,
      details: { status: rec.status, ...details },
    });
  }

  async wrapEngine<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof EngineUnavailableError) throw unavailable('the container engine is unavailable', err);
      throw err;
    }
  }
}
