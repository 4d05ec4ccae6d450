import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { Clock } from '../../core/clock.ts';
import type { Config } from '../config.ts';
import type { RuntimeMetrics } from '../metrics.ts';
import { NO_OWNER, toStoredSpec, type SandboxOwner, type SandboxRecord, type SandboxStore } from '../store/sandboxes.ts';
import type { Engine, LiveLimits } from '../engine/engine.ts';
import type { SandboxEnvironments } from './environment.ts';
import { MIB } from './hardening.ts';
import type { Caller } from './caller.ts';
import type { SandboxCreator } from './creator.ts';
import type { SandboxLifecycle } from './lifecycle.ts';
import { resolveSpec, type EffectiveSpec } from './spec.ts';
import { ACTIVE_STATES } from './states.ts';
import type { SandboxTeardown } from './teardown.ts';
import { parseList } from '../../core/validate.ts';

export const POOL_WORKSPACE = '_pool';

/**
 * Identifies interchangeable pooled containers: everything baked into a container when it is
 * created (image, mounts and their size, masked paths, root, workdir, network, ulimits). What
 * the kernel can change on a running container (memory, swap, cpu, pids) and what is not the
 * container's at all (environment, name, labels, maxDuration) is left out: a claim fits those.
 */
export function poolKeyOf(spec: EffectiveSpec): string {
  const { image, securityPolicy, networkMode, workdir, command, profileId, nofile } = spec;
  const { disk, network } = spec.resourceLimits;
  return createHash('sha256')
    .update(JSON.stringify({ image, disk, network, securityPolicy, networkMode, workdir, command, profileId, nofile }))
    .digest('hex')
    .slice(0, 16);
}

/** A spec can be pooled at all when nothing about it is tied to one request's container (its pool's defaults are). */
export const isPoolable = (spec: EffectiveSpec): boolean =>
  spec.command === null && spec.networkMode === 'none' && spec.profileId === undefined && spec.nofile === undefined;

/** Why a request cannot be served from the pool (a cold create follows), or null when a pooled container can be fitted to it. */
export type FitFallback =
  'no_pool' | 'network' | 'command' | 'profile' | 'nofile' | 'disk' | 'workdir' | 'security_policy' | 'empty' | 'update_failed';

/** How `spec` differs from `pooled` in what a claim cannot change; null when the two share a pool key. */
export function unfitReason(spec: EffectiveSpec, pooled: EffectiveSpec | undefined): FitFallback | null {
  if (spec.networkMode !== 'none' || spec.resourceLimits.network) return 'network';
  if (spec.command !== null) return 'command';
  if (spec.profileId !== undefined) return 'profile';
  if (spec.nofile !== undefined) return 'nofile';
  if (!pooled) return 'no_pool';
  if (spec.resourceLimits.disk !== pooled.resourceLimits.disk) return 'disk';
  if (spec.workdir !== pooled.workdir) return 'workdir';
  if (JSON.stringify(spec.securityPolicy) !== JSON.stringify(pooled.securityPolicy)) return 'security_policy';
  return poolKeyOf(spec) === poolKeyOf(pooled) ? null : 'security_policy';
}

/** The live changes that turn a container started with `pooled`'s limits into one with `spec`'s (empty: none). */
export function fitLimits(spec: EffectiveSpec, pooled: EffectiveSpec): LiveLimits {
  const want = spec.resourceLimits;
  const have = pooled.resourceLimits;
  const out: LiveLimits = {};
  if (want.memory !== have.memory) out.memoryBytes = want.memory * MIB;
  if (want.cpu !== have.cpu) out.nanoCpus = Math.round(want.cpu * 1e9);
  if (want.pids !== have.pids) out.pidsLimit = want.pids;
  return out;
}

interface PoolEntry {
  image: string;
  key: string;
  spec: EffectiveSpec;
  filling: Promise<void> | null;
  /** A refill scheduled after a claim, not started yet. */
  timer: NodeJS.Timeout | null;
}

/**
 * How long after a claim the refill starts. The refill's engine calls are event-loop work too:
 * started at once, they compete with the request that claimed the sandbox (its response, its
 * first execute). A short wait lets that request finish first; a burst of claims still gets
 * one refill round.
 */
export const REFILL_DELAY_MS = 50;

export interface PoolDeps {
  /** Fits a claimed container's limits to the request ({@link Engine.updateLimits}); without it only exact requests are served. */
  engine: Pick<Engine, 'updateLimits'>;
  /** Keeps a fitted sandbox's environment (its container was started without it). */
  environments: Pick<SandboxEnvironments, 'keep'>;
  creator: Pick<SandboxCreator, 'createCold' | 'imageInfo'>;
  teardown: Pick<SandboxTeardown, 'destroy'>;
  store: SandboxStore;
  config: Config;
  clock: Clock;
  metrics: RuntimeMetrics;
  lifecycle: SandboxLifecycle;
  logger: Logger;
}

/** What the sandbox manager asks of a pool: a running sandbox for `spec`, or null. */
export interface PoolClaimer {
  claim(spec: EffectiveSpec, caller: Caller, owner?: SandboxOwner, opts?: { networkPolicy?: unknown }): Promise<SandboxRecord | null>;
}

/**
 * The warm pool: per configured image (with the default limits profile) it keeps `size`
 * sandboxes started, so a create for that image is a single atomic claim in the store plus,
 * when its limits differ from the defaults, one live limits update. A pooled
 * sandbox is handed out once and never returned; refills run in the background and never
 * exceed the pool size or the host's sandbox limit.
 */
export class WarmPool implements PoolClaimer {
  private readonly deps: PoolDeps;
  private readonly log: Logger;
  private readonly entries = new Map<string, PoolEntry>();
  private stopped = false;

  constructor(deps: PoolDeps) {
    this.deps = deps;
    this.log = deps.logger.child({ component: 'pool' });
    const { config } = deps;
    if (config.poolSize > 0) {
      for (const image of parseList(config.poolImages)) {
        const spec = resolveSpec({ image }, config);
        if (!isPoolable(spec)) continue;
        // One pool per image: every request for it is fitted to the pool's defaults.
        this.entries.set(spec.image, { image: spec.image, key: poolKeyOf(spec), spec, filling: null, timer: null });
      }
    }
  }

  /**
   * A running sandbox for `spec`, or null (the caller creates it cold). Any request for a pooled
   * image whose container-baked parts equal the pool's is served: the oldest warm sandbox is
   * claimed atomically in the store (never handed out twice), gets the request's record (spec,
   * name, labels, owner, deadline) and sealed environment, and has its memory, swap, cpu and
   * pids limits changed live before it is returned. A container whose update fails is removed,
   * never returned to the pool. Every outcome is counted in `director_pool_fit_total{result}`.
   */
  async claim(
    spec: EffectiveSpec,
    caller: Caller,
    owner: SandboxOwner = NO_OWNER,
    opts: { networkPolicy?: unknown } = {},
  ): Promise<SandboxRecord | null> {
    const { store, clock, metrics, lifecycle, engine, environments, teardown } = this.deps;
    const entry = this.entries.get(spec.image);
    const unfit = opts.networkPolicy !== undefined ? 'network' : unfitReason(spec, entry?.spec);
    if (unfit || !entry) {
      metrics.poolFit.inc({ result: unfit ?? 'no_pool' });
      return null;
    }
    const limits = fitLimits(spec, entry.spec);
    const fits = Object.keys(limits).length > 0;
    if (fits && !engine.updateLimits) {
      metrics.poolFit.inc({ result: 'update_failed' });
      return null;
    }
    const now = clock.nowMs();
    const rec = store.claimPooled(entry.key, caller.workspace, toStoredSpec(spec), now, now + spec.resourceLimits.maxDuration, owner);
    this.scheduleFill(entry);
    this.updateGauge(entry);
    if (!rec) {
      metrics.poolMisses.inc();
      metrics.poolFit.inc({ result: 'empty' });
      return null;
    }
    environments.keep(rec.id, spec.environment);
    if (fits) {
      try {
        await engine.updateLimits!(rec.containerId!, limits);
      } catch (err) {
        this.log.warn({ err, sandboxId: rec.id }, 'fitting a pooled sandbox failed; it is removed and the request created cold');
        metrics.poolFit.inc({ result: 'update_failed' });
        await teardown.destroy(rec, 'pool fit failed').catch((e: unknown) => this.log.warn({ err: e, sandboxId: rec.id }, 'remove failed'));
        return null;
      }
    }
    metrics.poolHits.inc();
    metrics.poolFit.inc({ result: fits ? 'fitted' : 'exact' });
    lifecycle.emit('deadlineArmed', rec);
    return rec;
  }

  /** Starts filling every pool; resolves when the first fill round has finished. */
  async start(): Promise<void> {
    await Promise.all([...this.entries.values()].map((e) => this.fill(e)));
  }

  stop(): void {
    this.stopped = true;
    for (const e of this.entries.values()) {
      if (e.timer) clearTimeout(e.timer);
      e.timer = null;
    }
  }

  private scheduleFill(entry: PoolEntry): void {
    if (this.stopped || entry.filling || entry.timer) return;
    entry.timer = setTimeout(() => {
      entry.timer = null;
      void this.fill(entry);
    }, REFILL_DELAY_MS);
  }

  /**
   * Removes every warm sandbox not yet handed out (graceful shutdown): a pool belongs to a
   * running server, and leaving it would look like a leak. Claimed sandboxes are untouched.
   */
  async drain(): Promise<void> {
    this.stop();
    await Promise.all([...this.entries.values()].map((e) => e.filling ?? Promise.resolve()));
    const { store, teardown } = this.deps;
    const pooled = store.inStates(ACTIVE_STATES).filter((r) => r.pooled);
    await Promise.all(
      pooled.map((r) =>
        teardown.destroy(r, 'pool drained').catch((err: unknown) => this.log.warn({ err, sandboxId: r.id }, 'pool drain failed')),
      ),
    );
  }

  private updateGauge(entry: PoolEntry): void {
    this.deps.metrics.poolReady.set({ image: entry.image }, this.deps.store.countPooled(entry.key));
  }

  fill(entry: PoolEntry): Promise<void> {
    if (this.stopped) return Promise.resolve();
    entry.filling ??= (async () => {
      const { store, config, creator } = this.deps;
      try {
        const image = await creator.imageInfo(entry.image);
        if (!image) {
          this.log.warn({ image: entry.image }, 'pool image not available; pool stays empty');
          return;
        }
        while (!this.stopped && store.countPooled(entry.key) < config.poolSize && store.countActive() < config.maxSandboxes) {
          await creator.createCold(entry.spec, POOL_WORKSPACE, { imageWorkdir: image.workdir, poolKey: entry.key });
          this.updateGauge(entry);
        }
      } catch (err) {
        this.log.error({ err, image: entry.image }, 'pool refill failed');
      } finally {
        entry.filling = null;
      }
    })();
    return entry.filling;
  }
}
