import type { Logger } from 'pino';
import type { Clock } from '../../core/clock.ts';
import { DirectorError, conflict, unavailable } from '../../core/errors.ts';
import { newId } from '../../core/ids.ts';
import type { Config } from '../config.ts';
import type { ContainerSpec, Engine, ImageInfo } from '../engine/engine.ts';
import { EngineUnavailableError } from '../engine/engine.ts';
import type { RuntimeMetrics } from '../metrics.ts';
import { NO_OWNER, toStoredSpec, type SandboxOwner, type SandboxRecord, type SandboxStore } from '../store/sandboxes.ts';
import { engineCall } from './engine-call.ts';
import { buildContainerSpec } from './hardening.ts';
import type { SandboxLifecycle } from './lifecycle.ts';
import type { NetworkAttacher } from './network.ts';
import type { EffectiveSpec } from './spec.ts';
import type { Agents } from './agent/agents.ts';
import { withAgent } from './agent/mount.ts';

export interface CreatorDeps {
  engine: Engine;
  store: SandboxStore;
  metrics: RuntimeMetrics;
  config: Config;
  clock: Clock;
  logger: Logger;
  network: NetworkAttacher;
  lifecycle: SandboxLifecycle;
  /** Exec agents (docs/agent.md); null: sandboxes run without one and executes use `docker exec`. */
  agents?: Agents | null;
  /**
   * Removes one ready warm sandbox to make room for a user's sandbox (the warm pool's
   * {@link WarmPool.giveWay}); false when there is none. Without it warm sandboxes count like any other.
   */
  giveWay?: () => boolean;
}

const IMAGE_CACHE_MS = 10_000;

/**
 * Cold creation: a container made and started for one validated spec, for a caller or for the
 * warm pool. Apart from the sandbox manager so that the pool, which needs it, can itself be
 * given to the manager. Emits `started` (and `deadlineArmed` when the sandbox has a deadline).
 */
export class SandboxCreator {
  readonly #deps: CreatorDeps;
  readonly #images = new Map<string, { info: ImageInfo; atMs: number }>();

  constructor(deps: CreatorDeps) {
    this.#deps = deps;
  }

  /** Image metadata, cached briefly: it is read on every cold create and changes rarely. */
  async imageInfo(ref: string): Promise<ImageInfo | null> {
    const hit = this.#images.get(ref);
    const now = this.#deps.clock.nowMs();
    if (hit && now - hit.atMs < IMAGE_CACHE_MS) return hit.info;
    const info = await engineCall(() => this.#deps.engine.imageInfo(ref));
    if (info) this.#images.set(ref, { info, atMs: now });
    else this.#images.delete(ref);
    return info;
  }

  /**
   * What the agent runs as the sandbox's command: the sandbox's own `command` (or `sleep
   * infinity` when the image has an entrypoint to run it through), behind the image's
   * entrypoint, as the engine would have run them; null: the agent alone keeps the sandbox up.
   */
  async #agentCommand(spec: EffectiveSpec): Promise<string[] | null> {
    const entrypoint = (await this.imageInfo(spec.image))?.entrypoint ?? [];
    if (spec.command) return [...entrypoint, ...spec.command];
    return entrypoint.length ? [...entrypoint, 'sleep', 'infinity'] : null;
  }

  /**
   * Creates and starts a container for `spec`. On any failure the container and network it
   * got are removed and the record is marked failed: nothing half-created stays behind.
   */
  async createCold(
    spec: EffectiveSpec,
    workspace: string,
    opts: {
      imageWorkdir: string;
      poolKey?: string;
      owner?: SandboxOwner;
      networkPolicy?: unknown;
      /** The workspace whose network `spec.networkMode` names, when the record's is another (a warm pool's on that network). */
      networkWorkspace?: string;
    },
  ): Promise<SandboxRecord> {
    const { store, engine, clock, config, network, lifecycle, logger: log, agents } = this.#deps;
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
    // Warm sandboxes do not count against users' creates: at the limit one of them gives way
    // (removed in the background; its record leaves the count at once). The pool never fills
    // beyond the limit.
    const full = () => store.countActive() >= config.maxSandboxes;
    const refuse = opts.poolKey ? full() : store.countActiveUsers() >= config.maxSandboxes || (full() && !this.#deps.giveWay?.());
    if (refuse) {
      throw new DirectorError('SERVICE_UNAVAILABLE', `this host runs its maximum of ${config.maxSandboxes} sandboxes`, {
        limit: config.maxSandboxes,
      });
    }
    store.insert(record);
    let containerId: string | null = null;
    let networkId: string | null = null;
    try {
      let attachment: ContainerSpec['network'] = { mode: 'none' };
      if (spec.networkMode !== 'none') {
        const att = await network.attach(
          { id, workspace: opts.networkWorkspace ?? workspace },
          spec.networkMode,
          opts.networkPolicy !== undefined ? { policy: opts.networkPolicy } : {},
        );
        attachment = att.network;
        networkId = att.networkId;
        store.patch(id, clock.nowMs(), { networkId });
      }
      const hardened = buildContainerSpec(
        spec,
        {
          sandboxId: id,
          workspace,
          runtimeName: config.runtimeName,
          network: attachment,
          imageWorkdir: opts.imageWorkdir,
          ...(opts.poolKey ? { poolKey: opts.poolKey } : {}),
        },
        config,
      );
      const cspec = agents ? withAgent(hardened, await agents.open(id, workspace), await this.#agentCommand(spec)) : hardened;
      containerId = await engine.createContainer(cspec);
      store.patch(id, clock.nowMs(), { containerId });
      const t0 = performance.now();
      await engine.startContainer(containerId);
      // The agent says hello before anything else runs in the sandbox; only then is it running.
      await agents?.connected(id, containerId);
      this.#deps.metrics.startSeconds.observe((performance.now() - t0) / 1000);
      let ipAddress: string | null = null;
      if (networkId) {
        const state = await engine.inspectContainer(containerId);
        ipAddress = Object.values(state?.ipAddresses ?? {})[0] || null;
        await network.attached?.({ id, workspace, networkId, ipAddress });
      }
      const startedMs = clock.nowMs();
      const running = store.transition(id, 'running', startedMs, {
        startedMs,
        ipAddress,
        deadlineMs: opts.poolKey ? null : startedMs + spec.resourceLimits.maxDuration,
      });
      if (!running) throw conflict(`sandbox ${id} was removed while it was being created`);
      lifecycle.emit('started', running);
      if (running.deadlineMs) lifecycle.emit('deadlineArmed', running);
      return running;
    } catch (err) {
      log.warn({ err, sandboxId: id }, 'sandbox create failed; cleaning up');
      if (containerId)
        await engine
          .removeContainer(containerId)
          .catch((e: unknown) => log.error({ err: e, sandboxId: id }, 'cleanup: remove container failed'));
      await agents?.close(id);
      if (networkId)
        await network
          .release({ id, workspace, networkId })
          .catch((e: unknown) => log.error({ err: e, sandboxId: id }, 'cleanup: release network failed'));
      store.transition(id, 'failed', clock.nowMs(), {
        reason: `create failed: ${(err as Error).message}`.slice(0, 500),
        stoppedMs: clock.nowMs(),
      });
      if (err instanceof EngineUnavailableError) throw unavailable('the container engine is unavailable', err);
      throw err;
    }
  }
}
