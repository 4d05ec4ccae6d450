import type { Clock } from '../../core/clock.ts';
import { conflict } from '../../core/errors.ts';
import type { Engine } from '../engine/engine.ts';
import type { EventSink } from '../events.ts';
import type { SandboxRecord, SandboxStore } from '../store/sandboxes.ts';
import type { Caller } from './caller.ts';
import { engineCall } from './engine-call.ts';
import { recordLifecycle, type SandboxLifecycle } from './lifecycle.ts';
import type { NetworkAttacher } from './network.ts';
import type { UsageReadings } from '../monitoring/readings.ts';

export interface TeardownDeps {
  engine: Engine;
  store: SandboxStore;
  events: EventSink;
  clock: Clock;
  network: Pick<NetworkAttacher, 'release'>;
  lifecycle: SandboxLifecycle;
  /** The monitoring sampler's latest usage per sandbox, for the stop and delete events. */
  usage?: Pick<UsageReadings, 'get'>;
}

/**
 * Ending sandboxes: stop (the container stays, stopped) and destroy (container and private
 * network removed, record deleted), whoever asks: the API, the supervisor at a deadline, the
 * pool draining, a forced network delete, enforcement. Emits `ended`.
 */
export class SandboxTeardown {
  readonly #deps: TeardownDeps;

  constructor(deps: TeardownDeps) {
    this.#deps = deps;
  }

  /** Stops a running sandbox (SIGTERM, then SIGKILL after `graceS`; 0 kills at once). A stopped one is returned as is. */
  async stop(rec: SandboxRecord, reason: string, graceS: number, caller?: Caller): Promise<SandboxRecord> {
    const { store, engine, clock } = this.#deps;
    if (rec.status === 'stopped' || rec.status === 'failed') return rec;
    if (rec.status === 'creating') throw conflict(`sandbox ${rec.id} is still being created`, { status: rec.status });
    if (rec.status === 'running' && !store.transition(rec.id, 'stopping', clock.nowMs())) return store.byId(rec.id) ?? rec;
    if (rec.containerId) {
      await engineCall(() => (graceS > 0 ? engine.stopContainer(rec.containerId!, graceS) : engine.killContainer(rec.containerId!)));
    }
    const state = rec.containerId ? await engine.inspectContainer(rec.containerId).catch(() => null) : null;
    const done =
      store.transition(rec.id, 'stopped', clock.nowMs(), { reason, stoppedMs: clock.nowMs(), exitCode: state?.exitCode ?? null }) ??
      store.byId(rec.id)!;
    recordLifecycle(this.#deps.events, 'sandbox_stopped', done, caller, { reason }, this.#deps.usage);
    this.#deps.lifecycle.emit('ended', done);
    return done;
  }

  /** Removes the container (and a private network) and marks the record deleted. */
  async destroy(rec: SandboxRecord, reason: string, caller?: Caller): Promise<void> {
    const { store, engine, clock } = this.#deps;
    // Stopping first, so the engine's `die` event for the removal is not read as an exit.
    if (rec.status === 'running') store.transition(rec.id, 'stopping', clock.nowMs());
    if (rec.containerId) await engineCall(() => engine.removeContainer(rec.containerId!));
    if (rec.networkId) await this.#deps.network.release({ id: rec.id, workspace: rec.workspace, networkId: rec.networkId });
    const now = clock.nowMs();
    const deleted = store.transition(rec.id, 'deleted', now, {
      deletedMs: now,
      stoppedMs: rec.stoppedMs ?? now,
      reason: rec.reason ?? reason,
    });
    if (deleted) recordLifecycle(this.#deps.events, 'sandbox_deleted', deleted, caller, { reason }, this.#deps.usage);
    this.#deps.lifecycle.emit('ended', rec);
  }

  /** {@link destroy} by id (a forced network delete); an unknown id is nothing to do. */
  async destroyById(id: string, reason: string): Promise<void> {
    const rec = this.#deps.store.byId(id);
    if (rec) await this.destroy(rec, reason);
  }
}
