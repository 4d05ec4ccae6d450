import type { Logger } from 'pino';
import { NO_OWNER, type SandboxOwner, type SandboxRecord } from '../store/sandboxes.ts';
import { isPoolable, poolKeyOf, type Caller, type SandboxManager } from './manager.ts';
import { resolveSpec, type EffectiveSpec } from './spec.ts';
import { ACTIVE_STATES } from './states.ts';
import { parseList } from '../../core/validate.ts';

export const POOL_WORKSPACE = '_pool';

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

/**
 * The warm pool: per configured image (with the default limits profile) it keeps `size`
 * sandboxes started, so a matching create is a single atomic claim in the store. A pooled
 * sandbox is handed out once and never returned; refills run in the background and never
 * exceed the pool size or the host's sandbox limit.
 */
export class WarmPool {
  private readonly manager: SandboxManager;
  private readonly log: Logger;
  private readonly entries = new Map<string, PoolEntry>();
  private stopped = false;

  constructor(manager: SandboxManager, log: Logger) {
    this.manager = manager;
    this.log = log.child({ component: 'pool' });
    const { config } = manager.deps;
    if (config.poolSize > 0) {
      for (const image of parseList(config.poolImages)) {
        const spec = resolveSpec({ image }, config);
        if (!isPoolable(spec)) continue;
        const key = poolKeyOf(spec);
        this.entries.set(key, { image, key, spec, filling: null, timer: null });
      }
    }
    manager.claimFromPool = (spec, caller, owner) => this.claim(spec, caller, owner);
  }

  claim(spec: EffectiveSpec, caller: Caller, owner: SandboxOwner = NO_OWNER): SandboxRecord | null {
    const entry = this.entries.get(poolKeyOf(spec));
    const { store, clock, metrics } = this.manager.deps;
    if (!entry) return null;
    const now = clock.nowMs();
    const rec = store.claimPooled(entry.key, caller.workspace, spec.name, spec.labels, now, now + spec.resourceLimits.maxDuration, owner);
    if (rec) {
      metrics.poolHits.inc();
      this.manager.onDeadlineArmed?.(rec);
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
    const { store } = this.manager.deps;
    const pooled = store.inStates(ACTIVE_STATES).filter((r) => r.pooled);
    await Promise.all(
      pooled.map((r) =>
        this.manager.destroy(r, 'pool drained').catch((err: unknown) => this.log.warn({ err, sandboxId: r.id }, 'pool drain failed')),
      ),
    );
  }

  private updateGauge(entry: PoolEntry): void {
    this.manager.deps.metrics.poolReady.set({ image: entry.image }, this.manager.deps.store.countPooled(entry.key));
  }

  fill(entry: PoolEntry): Promise<void> {
    if (this.stopped) return Promise.resolve();
    entry.filling ??= (async () => {
      const { store, config } = this.manager.deps;
      try {
        const image = await this.manager.imageInfo(entry.image);
        if (!image) {
          this.log.warn({ image: entry.image }, 'pool image not available; pool stays empty');
          return;
        }
        while (!this.stopped && store.countPooled(entry.key) < config.poolSize && store.countActive() < config.maxSandboxes) {
          await this.manager.createCold(entry.spec, POOL_WORKSPACE, { imageWorkdir: image.workdir, poolKey: entry.key });
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
