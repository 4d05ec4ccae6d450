import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { Clock } from '../../core/clock.ts';
import type { Config } from '../config.ts';
import type { RuntimeMetrics } from '../metrics.ts';
import { NO_OWNER, type SandboxOwner, type SandboxRecord, type SandboxStore } from '../store/sandboxes.ts';
import type { Caller } from './caller.ts';
import type { SandboxCreator } from './creator.ts';
import type { SandboxLifecycle } from './lifecycle.ts';
import { resolveSpec, type EffectiveSpec } from './spec.ts';
import { ACTIVE_STATES } from './states.ts';
import type { SandboxTeardown } from './teardown.ts';
import { parseList } from '../../core/validate.ts';

export const POOL_WORKSPACE = '_pool';

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
  claim(spec: EffectiveSpec, caller: Caller, owner?: SandboxOwner): SandboxRecord | null;
}

/**
 * The warm pool: per configured image (with the default limits profile) it keeps `size`
 * sandboxes started, so a matching create is a single atomic claim in the store. A pooled
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
        const key = poolKeyOf(spec);
        this.entries.set(key, { image, key, spec, filling: null, timer: null });
      }
    }
  }

  claim(spec: EffectiveSpec, caller: Caller, owner: SandboxOwner = NO_OWNER): SandboxRecord | null {
    const entry = this.entries.get(poolKeyOf(spec));
    const { store, clock, metrics, lifecycle } = this.deps;
    if (!entry) return null;
    const now = clock.nowMs();
    const rec = store.claimPooled(entry.key, caller.workspace, spec.name, spec.labels, now, now + spec.resourceLimits.maxDuration, owner);
    if (rec) {
      metrics.poolHits.inc();
      lifecycle.emit('deadlineArmed', rec);
    } else {
      metrics.poolMisses.inc();
    }
    this.scheduleFill(entry);
    this.updateGauge(entry);
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
