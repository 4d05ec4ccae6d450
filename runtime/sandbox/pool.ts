import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { Clock } from '../../core/clock.ts';
import type { Config } from '../config.ts';
import type { RuntimeMetrics } from '../metrics.ts';
import { NO_OWNER, toStoredSpec, type SandboxOwner, type SandboxRecord, type SandboxStore } from '../store/sandboxes.ts';
import type { Engine, LiveLimits } from '../engine/engine.ts';
import type { SandboxEnvironments } from './environment.ts';
import { MIB, tmpfsMounts } from './hardening.ts';
import type { TmpfsResizer } from './tmpfs-size.ts';
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
 * created and not fitted at claim (image, network, security policy: mounts, masked paths,
 * root, command, ulimits). What the kernel can change on a running container (memory, swap,
 * cpu, pids, the size of its tmpfs mounts) and what is not the container's at all
 * (environment, default working directory, name, labels, maxDuration) is left out: a claim fits those.
 */
export function poolKeyOf(spec: EffectiveSpec): string {
  const { image, securityPolicy, networkMode, command } = spec;
  const { network } = spec.resourceLimits;
  // RLIMIT_NOFILE is not in the key: pooled containers all have the operator's, and a request
  // asking for another is never fitted (see unfitReason).
  return createHash('sha256').update(JSON.stringify({ image, network, securityPolicy, networkMode, command })).digest('hex').slice(0, 16);
}

/** A spec can be pooled at all when nothing about it is tied to one request's container (its pool's defaults are). */
export const isPoolable = (spec: EffectiveSpec): boolean =>
  spec.command === null && spec.networkMode === 'none' && spec.profileId === undefined && spec.nofile === undefined;

/** Why a request cannot be served from the pool (a cold create follows), or null when a pooled container can be fitted to it. */
export type FitFallback = 'no_pool' | 'network' | 'command' | 'nofile' | 'disk' | 'workdir' | 'security_policy' | 'empty' | 'update_failed';

/** What a claim can fit beyond the live limits, and what the pooled containers were made with. */
export interface FitAbility {
  /** The tmpfs mounts of a claimed container can be resized (local engine with the helper). */
  tmpfs: boolean;
  /** RLIMIT_NOFILE every pooled container has (the operator's DIRECTOR_NOFILE). */
  nofile: number;
  /** The pooled image's own working directory ('' or '/' when it has none). */
  imageWorkdir?: string;
}

/**
 * Working directories that exist in every container of a pool whatever its image holds, so a
 * claimed sandbox can use them as its default (a cold container's engine would create a missing
 * one; a pooled container was started without it): the pool's own, the root, `/tmp` and the
 * writable mounts.
 */
function workdirFits(spec: EffectiveSpec, pooled: EffectiveSpec, ability: FitAbility): boolean {
  const w = spec.workdir;
  if (w === null || w === pooled.workdir) return true;
  const known = ['/', ...(ability.imageWorkdir ? [ability.imageWorkdir] : [])];
  if (spec.securityPolicy.allowFilesystem) known.push('/tmp', ...spec.securityPolicy.allowedPaths);
  return known.includes(w);
}

/** How `spec` differs from `pooled` in what a claim cannot fit; null when a pooled container can be fitted to it. */
export function unfitReason(spec: EffectiveSpec, pooled: EffectiveSpec | undefined, ability: FitAbility): FitFallback | null {
  // A private network per sandbox (`isolated`) is made for its sandbox: nothing to pool.
  if (spec.networkMode === 'isolated') return 'network';
  if (spec.command !== null) return 'command';
  if ((spec.nofile ?? ability.nofile) !== ability.nofile) return 'nofile';
  if (!pooled) return spec.networkMode !== 'none' ? 'network' : 'no_pool';
  if (spec.resourceLimits.disk !== pooled.resourceLimits.disk && spec.securityPolicy.allowFilesystem && !ability.tmpfs) return 'disk';
  if (!workdirFits(spec, pooled, ability)) return 'workdir';
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
  /** A pool on a Director network: the network and its workspace (only that workspace's requests are served from it). */
  network: { id: string; workspace: string } | null;
  filling: Promise<void> | null;
  /** A refill scheduled after a claim, not started yet. */
  timer: NodeJS.Timeout | null;
  /**
   * The `disk` sizes (MiB) recent claims asked for, oldest first, at most the pool's size: each
   * refill makes its container with the next one (a disk class), so a request like a recent one
   * finds a warm sandbox whose tmpfs mounts already have its size and is not remounted.
   */
  demand: number[];
  /** The image's own working directory, learnt by the first fill (a claim needs it only for a `workdir`). */
  imageWorkdir?: string;
}

/**
 * A refill makes its next container only once claims have been quiet this long (none in flight,
 * none started or finished for this many ms): a container create is the engine's heaviest work and, on a
 * small host, takes the CPU from the requests that just claimed sandboxes (their fitting, their
 * first execute). A burst of claims is served first, then the pool refills.
 */
export const REFILL_QUIET_MS = 100;
/** ...but a refill never waits longer than this per container, so a steady stream of claims does not starve it. */
export const REFILL_MAX_WAIT_MS = 1000;

/** Which Director networks a pool may be kept on: ready shared networks of the asking workspace. */
export interface PoolNetworks {
  ready(workspace: string, networkId: string): boolean;
}

export interface PoolDeps {
  /**
   * Fits a claimed container's limits to the request ({@link Engine.updateLimits}); without it only
   * exact requests are served. `hostPid` (a local engine) is asked once per warm container when it
   * is made, so that a claim finds its cgroups and pid known and makes no engine call.
   */
  engine: Pick<Engine, 'updateLimits' | 'hostPid'>;
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
  /** Resizes a claimed container's tmpfs mounts (`disk`); null: requests for another size are created cold. */
  tmpfs?: TmpfsResizer | null;
  /** The network layer's view of networks; null/absent: no pools on Director networks. */
  networks?: PoolNetworks | null;
}

/** What the sandbox manager asks of a pool: a running sandbox for `spec`, or null. */
export interface PoolClaimer {
  claim(spec: EffectiveSpec, caller: Caller, owner?: SandboxOwner, opts?: { networkPolicy?: unknown }): Promise<SandboxRecord | null>;
}

const entryId = (image: string, networkMode: string): string => (networkMode === 'none' ? image : `${image} on ${networkMode}`);

/**
 * The warm pool: per configured image (with the default limits profile) it keeps `size`
 * sandboxes started, so a create for that image is a single atomic claim in the store plus
 * the fitting below. A request for a pooled image on a Director network starts a pool on that
 * network (a container cannot join a network after it was started without one: see
 * docs/decisions.md), which then refills like the others until the network is deleted. A pooled
 * sandbox is handed out once and never returned; refills run in the background and never exceed
 * the pool size or the host's sandbox limit.
 */
export class WarmPool implements PoolClaimer {
  private readonly deps: PoolDeps;
  private readonly log: Logger;
  private readonly entries = new Map<string, PoolEntry>();
  private stopped = false;
  /** Claims being served now, and when the last one started or ended (performance.now()): refills wait for quiet. */
  private claimsInFlight = 0;
  private lastClaimAt = -Infinity;
  /** Warm sandboxes being removed in the background (gave way, or a previous process's): a drain waits for them. */
  private readonly removing = new Set<Promise<void>>();
  private draining: Promise<void> | null = null;

  constructor(deps: PoolDeps) {
    this.deps = deps;
    this.log = deps.logger.child({ component: 'pool' });
    const { config } = deps;
    if (config.poolSize > 0) {
      for (const image of parseList(config.poolImages)) {
        const spec = resolveSpec({ image }, config);
        if (!isPoolable(spec)) continue;
        // One pool per image: every request for it is fitted to the pool's defaults.
        this.entries.set(entryId(spec.image, 'none'), {
          image: spec.image,
          key: poolKeyOf(spec),
          spec,
          network: null,
          filling: null,
          timer: null,
          // What the last claims asked for before a restart: the first refills make those disk classes.
          demand: deps.store.recentClaimDisks(poolKeyOf(spec), config.poolSize),
        });
      }
    }
  }

  /**
   * The pool of `spec`'s image on `spec`'s network for `workspace`: the image's own pool, one on
   * a Director network (started by this request when the network is the workspace's and ready),
   * or undefined.
   */
  private entryFor(spec: EffectiveSpec, workspace: string): PoolEntry | undefined {
    const base = this.entries.get(entryId(spec.image, 'none'));
    if (spec.networkMode === 'none' || spec.networkMode === 'isolated' || !base) return spec.networkMode === 'none' ? base : undefined;
    const id = entryId(spec.image, spec.networkMode);
    const found = this.entries.get(id);
    if (found) return found.network?.workspace === workspace ? found : undefined;
    if (this.stopped || !this.deps.networks?.ready(workspace, spec.networkMode)) return undefined;
    // First request for this image on this network: its pool starts now (this request is created cold).
    const pooled = resolveSpec(
      { image: spec.image, securityPolicy: { allowNetwork: true }, networkMode: spec.networkMode },
      this.deps.config,
    );
    const entry: PoolEntry = {
      image: spec.image,
      key: poolKeyOf(pooled),
      spec: pooled,
      network: { id: spec.networkMode, workspace },
      filling: null,
      timer: null,
      demand: [],
    };
    this.entries.set(id, entry);
    this.scheduleFill(entry);
    return entry;
  }

  /**
   * A running sandbox for `spec`, or null (the caller creates it cold). Any request for a pooled
   * image whose container-baked parts equal the pool's is served: the oldest warm sandbox is
   * claimed atomically in the store (never handed out twice), gets the request's record (spec,
   * name, labels, owner, deadline, default working directory) and sealed environment, and has
   * its memory, swap, cpu and pids limits changed live and its tmpfs mounts resized to the
   * request's `disk` before it is returned. A container whose fitting fails is removed, never
   * returned to the pool. Every outcome is counted in `director_pool_fit_total{result}`.
   */
  async claim(
    spec: EffectiveSpec,
    caller: Caller,
    owner: SandboxOwner = NO_OWNER,
    opts: { networkPolicy?: unknown } = {},
  ): Promise<SandboxRecord | null> {
    this.claimsInFlight++;
    this.lastClaimAt = performance.now();
    try {
      return await this.fitClaim(spec, caller, owner, opts);
    } finally {
      this.claimsInFlight--;
      this.lastClaimAt = performance.now();
    }
  }

  private async fitClaim(
    spec: EffectiveSpec,
    caller: Caller,
    owner: SandboxOwner,
    opts: { networkPolicy?: unknown },
  ): Promise<SandboxRecord | null> {
    const { store, clock, metrics, lifecycle, engine, environments, teardown, config, tmpfs } = this.deps;
    const entry = this.entryFor(spec, caller.workspace);
    // The image's working directory matters only to a request naming another workdir than the pool's.
    const needsImageWorkdir = entry && spec.workdir !== null && spec.workdir !== entry.spec.workdir;
    const imageWorkdir = needsImageWorkdir ? (entry.imageWorkdir ?? (await this.deps.creator.imageInfo(entry.image))?.workdir) : undefined;
    const ability: FitAbility = { tmpfs: Boolean(tmpfs), nofile: config.nofile, ...(imageWorkdir ? { imageWorkdir } : {}) };
    let unfit = opts.networkPolicy !== undefined && spec.networkMode === 'isolated' ? 'network' : unfitReason(spec, entry?.spec, ability);
    // Without the resizer another disk size is served only by a warm sandbox made with it (a disk
    // class), and only when everything else fits.
    // Without it, even a request of the pool's own size takes only a warm sandbox of that size: the
    // pool may hold disk classes of other sizes, which nothing could resize to it.
    const otherDisk = unfit === 'disk';
    const diskOnly = otherDisk || !tmpfs;
    if (otherDisk) unfit = unfitReason(spec, entry?.spec, { ...ability, tmpfs: true });
    if (unfit || !entry) {
      metrics.poolFit.inc({ result: unfit ?? 'no_pool' });
      return null;
    }
    const limits = fitLimits(spec, entry.spec);
    if (Object.keys(limits).length > 0 && !engine.updateLimits) {
      metrics.poolFit.inc({ result: 'update_failed' });
      return null;
    }
    const now = clock.nowMs();
    const claimed = store.claimPooled(entry.key, caller.workspace, toStoredSpec(spec), now, now + spec.resourceLimits.maxDuration, owner, {
      diskOnly,
    });
    this.noteDemand(entry, spec.resourceLimits.disk);
    this.scheduleFill(entry);
    this.updateGauge(entry);
    if (!claimed) {
      metrics.poolMisses.inc();
      metrics.poolFit.inc({ result: otherDisk ? 'disk' : 'empty' });
      return null;
    }
    const rec = claimed.record;
    const mounts = spec.resourceLimits.disk !== claimed.madeWithDisk ? tmpfsMounts(spec) : [];
    const fits = Object.keys(limits).length > 0 || mounts.length > 0 || spec.workdir !== entry.spec.workdir;
    environments.keep(rec.id, spec.environment);
    try {
      await Promise.all([
        Object.keys(limits).length ? engine.updateLimits!(rec.containerId!, limits) : null,
        mounts.length ? tmpfs!.resize(rec.containerId!, mounts) : null,
      ]);
    } catch (err) {
      this.log.warn({ err, sandboxId: rec.id }, 'fitting a pooled sandbox failed; it is removed and the request created cold');
      metrics.poolFit.inc({ result: 'update_failed' });
      await teardown.destroy(rec, 'pool fit failed').catch((e: unknown) => this.log.warn({ err: e, sandboxId: rec.id }, 'remove failed'));
      return null;
    }
    metrics.poolHits.inc();
    metrics.poolFit.inc({ result: fits ? 'fitted' : 'exact' });
    if (spec.securityPolicy.allowFilesystem) metrics.poolDisk.inc({ result: mounts.length ? 'resized' : 'class' });
    lifecycle.emit('deadlineArmed', rec);
    return rec;
  }

  /** Starts filling every pool; resolves when the first fill round has finished. */
  async start(): Promise<void> {
    this.dropPrevious();
    if (this.entries.size > 0) this.deps.tmpfs?.warm?.();
    await Promise.all([...this.entries.values()].map((e) => this.fill(e)));
  }

  stop(): void {
    this.stopped = true;
    this.deps.tmpfs?.close?.();
    for (const e of this.entries.values()) {
      if (e.timer) clearTimeout(e.timer);
      e.timer = null;
    }
  }

  /**
   * Makes room for a user's sandbox at the host limit: the oldest ready warm sandbox leaves the
   * pool at once (never claimable again) and is removed in the background. False when there is
   * none. Warm sandboxes are spare capacity, not users': see docs/decisions.md.
   */
  giveWay(): boolean {
    const { store, clock } = this.deps;
    for (const warm of store.readyPooled()) {
      const leaving = store.leavePool(warm.id, clock.nowMs());
      if (!leaving) continue;
      this.removeInBackground(leaving, 'gave way to a user sandbox at the host limit');
      return true;
    }
    return false;
  }

  /**
   * Warm sandboxes a previous process left (killed before it drained its pool) are not handed
   * out: their exec agent's channel ended with that process, so their executes would go through
   * `docker exec` (tens of ms instead of a few). They leave the pool at once (never claimable)
   * and are removed in the background; the refills replace them.
   */
  private dropPrevious(): void {
    const { store, clock } = this.deps;
    for (const warm of store.inStates(ACTIVE_STATES).filter((r) => r.pooled)) {
      // One already stopping was being removed when that process ended: this one finishes it.
      const leaving = warm.status === 'stopping' ? warm : store.leavePool(warm.id, clock.nowMs());
      if (leaving) this.removeInBackground(leaving, 'left by a previous process');
    }
  }

  private removeInBackground(rec: SandboxRecord, reason: string): void {
    const done: Promise<void> = this.deps.teardown
      .destroy(rec, reason)
      .then(
        () => undefined,
        (err: unknown) => this.log.warn({ err, sandboxId: rec.id }, 'pool removal failed'),
      )
      .finally(() => {
        this.removing.delete(done);
        const entry = [...this.entries.values()].find((e) => e.key === rec.poolKey);
        if (entry) this.updateGauge(entry);
      });
    this.removing.add(done);
  }

  /** A user's sandbox ended: the room it leaves under the host limit may refill pools that stopped at the limit. */
  roomFreed(): void {
    if (this.deps.store.countActive() >= this.deps.config.maxSandboxes) return;
    for (const e of this.entries.values()) if (this.deps.store.countPooled(e.key) < this.deps.config.poolSize) this.scheduleFill(e);
  }

  /** Remembers a claim's disk size for the refills (the most recent `poolSize` only). */
  private noteDemand(entry: PoolEntry, disk: number): void {
    entry.demand.push(disk);
    if (entry.demand.length > this.deps.config.poolSize) entry.demand.shift();
  }

  private scheduleFill(entry: PoolEntry): void {
    if (this.stopped || entry.filling || entry.timer) return;
    entry.timer = setTimeout(() => {
      entry.timer = null;
      void this.fill(entry);
    }, REFILL_QUIET_MS);
  }

  /** Resolves once claims have been quiet for {@link REFILL_QUIET_MS}, or {@link REFILL_MAX_WAIT_MS} after it was called. */
  private async untilQuiet(): Promise<void> {
    const since = performance.now();
    for (;;) {
      const now = performance.now();
      const idle = now - this.lastClaimAt;
      if (this.stopped || now - since >= REFILL_MAX_WAIT_MS || (this.claimsInFlight === 0 && idle >= REFILL_QUIET_MS)) return;
      await new Promise((r) => setTimeout(r, Math.max(10, Math.min(REFILL_QUIET_MS - idle, REFILL_MAX_WAIT_MS - (now - since)))));
    }
  }

  /**
   * The network `networkId` is being deleted: its pools stop refilling and their warm sandboxes
   * are removed (called by the network layer before it removes the network).
   */
  async dropNetwork(networkId: string): Promise<void> {
    const dropped = [...this.entries].filter(([, e]) => e.network?.id === networkId);
    for (const [id, e] of dropped) {
      this.entries.delete(id);
      if (e.timer) clearTimeout(e.timer);
      e.timer = null;
    }
    await Promise.all(dropped.map(([, e]) => e.filling ?? Promise.resolve()));
    // By the records' network, not the entries: a refill that found the network gone has already
    // dropped its entry, and its warm sandboxes must go with the network all the same.
    await this.destroyPooled((r) => r.networkId === networkId, `network ${networkId} deleted`);
  }

  /**
   * Removes the warm sandboxes `which` selects. Each leaves the pool first, atomically
   * ({@link SandboxStore.leavePool}): one a claim handed out meanwhile is a user's and stays, and
   * one already leaving is being removed elsewhere (a drain waits for those).
   */
  private async destroyPooled(which: (r: SandboxRecord) => boolean, reason: string): Promise<void> {
    const { store, teardown, clock } = this.deps;
    const leaving = store
      .inStates(ACTIVE_STATES)
      .filter((r) => r.pooled && which(r))
      .map((r) => store.leavePool(r.id, clock.nowMs()))
      .filter((r): r is SandboxRecord => r !== null);
    await Promise.all(
      leaving.map((r) =>
        teardown.destroy(r, reason).catch((err: unknown) => this.log.warn({ err, sandboxId: r.id }, 'pool removal failed')),
      ),
    );
  }

  /**
   * Removes every warm sandbox not yet handed out (graceful shutdown): a pool belongs to a
   * running server, and leaving it would look like a leak. Claimed sandboxes are untouched.
   */
  drain(): Promise<void> {
    // Once: the server drains it alongside closing its HTTP side, and the runtime's close again.
    this.draining ??= (async () => {
      this.stop();
      await Promise.all([...this.entries.values()].map((e) => e.filling ?? Promise.resolve()));
      await Promise.all([this.destroyPooled(() => true, 'pool drained'), ...this.removing]);
    })();
    return this.draining;
  }

  /** Warm sandboxes per image, its pools on networks included (one label per image keeps the series bounded). */
  private updateGauge(entry: PoolEntry): void {
    this.deps.metrics.poolReady.set({ image: entry.image }, this.deps.store.countPooledImage(entry.image));
  }

  /** Whether `entry` is still one of this pool's (a dropped network's pool stops filling). */
  private live(entry: PoolEntry): boolean {
    return !this.stopped && this.entries.get(entryId(entry.image, entry.spec.networkMode)) === entry;
  }

  fill(entry: PoolEntry): Promise<void> {
    if (!this.live(entry)) return Promise.resolve();
    entry.filling ??= (async () => {
      const { store, config, creator } = this.deps;
      try {
        const image = await creator.imageInfo(entry.image);
        if (!image) {
          this.log.warn({ image: entry.image }, 'pool image not available; pool stays empty');
          return;
        }
        entry.imageWorkdir = image.workdir;
        while (this.live(entry) && store.countPooled(entry.key) < config.poolSize && store.countActive() < config.maxSandboxes) {
          if (entry.network && !this.deps.networks?.ready(entry.network.workspace, entry.network.id)) {
            // The network went away (or is being deleted) without dropNetwork: its pool ends here,
            // and its warm sandboxes, which nobody can be given any more, go with it.
            this.entries.delete(entryId(entry.image, entry.spec.networkMode));
            const gone = entry.network.id;
            await this.destroyPooled((r) => r.networkId === gone, `network ${gone} gone`);
            return;
          }
          await this.untilQuiet();
          if (!this.live(entry) || store.countPooled(entry.key) >= config.poolSize || store.countActive() >= config.maxSandboxes) break;
          // The next disk class recent claims asked for (the pool's own size when none did).
          const disk = entry.demand.shift() ?? entry.spec.resourceLimits.disk;
          const spec =
            disk === entry.spec.resourceLimits.disk
              ? entry.spec
              : { ...entry.spec, resourceLimits: { ...entry.spec.resourceLimits, disk } };
          const made = await creator.createCold(spec, POOL_WORKSPACE, {
            imageWorkdir: image.workdir,
            poolKey: entry.key,
            ...(entry.network ? { networkWorkspace: entry.network.workspace } : {}),
          });
          // Learnt now, not by the claim: where its cgroups are and its init's host pid.
          if (made.containerId) await this.deps.engine.hostPid?.(made.containerId).catch(() => null);
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
