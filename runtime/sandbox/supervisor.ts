import type { Logger } from 'pino';
import type { Clock } from '../../core/clock.ts';
import type { Config } from '../config.ts';
import { EngineUnavailableError, type Engine } from '../engine/engine.ts';
import type { EventSink } from '../events.ts';
import type { SandboxRecord, SandboxStore } from '../store/sandboxes.ts';
import { LABEL } from './hardening.ts';
import { recordLifecycle, type SandboxLifecycle } from './lifecycle.ts';
import type { NetworkAttacher } from './network.ts';
import { ACTIVE_STATES } from './states.ts';
import type { SandboxTeardown } from './teardown.ts';
import type { UsageReadings } from '../monitoring/readings.ts';

const MAX_TIMER_MS = 2 ** 31 - 1;
/** How long boot waits for creates a killed predecessor may have left in flight in the engine. */
const BOOT_CREATE_GRACE_MS = 1500;
const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((r) => {
    const t = setTimeout(r, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        r();
      },
      { once: true },
    );
  });

export interface SupervisorDeps {
  engine: Engine;
  store: SandboxStore;
  events: EventSink;
  config: Config;
  clock: Clock;
  logger: Logger;
  network: Pick<NetworkAttacher, 'release'>;
  teardown: Pick<SandboxTeardown, 'stop'>;
  lifecycle: SandboxLifecycle;
  /** The monitoring sampler's latest usage per sandbox, for the exit event. */
  usage?: Pick<UsageReadings, 'get'>;
}

/**
 * Keeps records and containers in agreement: wall-time deadlines, engine events (OOM kills,
 * exits) and reconciliation at boot and on a timer, which removes containers no record owns
 * and fails records whose container vanished. Safe to run after a SIGKILL at any moment.
 */
export class Supervisor {
  private readonly deps: SupervisorDeps;
  private readonly log: Logger;
  private readonly deadlines = new Map<string, NodeJS.Timeout>();
  private readonly abort = new AbortController();
  private reconcileTimer: NodeJS.Timeout | null = null;
  private reconciling: Promise<void> | null = null;
  engineUp = true;

  constructor(deps: SupervisorDeps) {
    this.deps = deps;
    this.log = deps.logger.child({ component: 'supervisor' });
  }

  private get labels(): Record<string, string> {
    return { [LABEL.managed]: 'true', [LABEL.runtime]: this.deps.config.runtimeName };
  }

  /** Boot: reconcile once (creating records left by a crash are failed), then watch. */
  async start(): Promise<void> {
    await this.reconcile({ boot: true });
    void this.watchEvents();
    this.reconcileTimer = setInterval(
      () => void this.reconcile({ boot: false }).catch((err: unknown) => this.log.error({ err }, 'reconcile failed')),
      this.deps.config.reconcileIntervalMs,
    );
    this.reconcileTimer.unref();
  }

  stop(): void {
    this.abort.abort();
    if (this.reconcileTimer) clearInterval(this.reconcileTimer);
    for (const t of this.deadlines.values()) clearTimeout(t);
    this.deadlines.clear();
  }

  /** (Re)sets the wall-time kill of a running sandbox (the lifecycle's `deadlineArmed`, and reconciliation). */
  armDeadline(rec: SandboxRecord): void {
    if (rec.deadlineMs === null || rec.status !== 'running') return;
    clearTimeout(this.deadlines.get(rec.id));
    const wait = Math.max(0, Math.min(MAX_TIMER_MS, rec.deadlineMs - this.deps.clock.nowMs()));
    const t = setTimeout(() => {
      this.deadlines.delete(rec.id);
      void this.onDeadline(rec.id).catch((err: unknown) => this.log.error({ err, sandboxId: rec.id }, 'deadline kill failed'));
    }, wait);
    t.unref();
    this.deadlines.set(rec.id, t);
  }

  private async onDeadline(id: string): Promise<void> {
    const { store, clock, events } = this.deps;
    const rec = store.byId(id);
    if (!rec || rec.status !== 'running' || rec.deadlineMs === null) return;
    if (rec.deadlineMs > clock.nowMs()) return this.armDeadline(rec);
    this.log.info({ sandboxId: id }, 'maxDuration reached: killing sandbox');
    events.emit({
      type: 'timeout_killed',
      severity: 'medium',
      workspace: rec.workspace,
      sandboxId: rec.id,
      details: { scope: 'sandbox', maxDurationMs: rec.spec.resourceLimits.maxDuration },
    });
    await this.deps.teardown.stop(rec, 'max_duration', 0);
  }

  /** Follows the engine's container events; reconnects (and reconciles) after an engine outage. */
  private async watchEvents(): Promise<void> {
    const signal = this.abort.signal;
    let backoff = 250;
    while (!signal.aborted) {
      try {
        for await (const ev of this.deps.engine.events(this.labels, signal)) {
          backoff = 250;
          if (!this.engineUp) {
            this.engineUp = true;
            void this.reconcile({ boot: false }).catch(() => undefined);
          }
          const id = ev.labels[LABEL.sandbox];
          if (!id) continue;
          if (ev.action === 'oom') this.onOom(id);
          else if (ev.action === 'die') await this.onExit(id);
        }
      } catch (err) {
        if (signal.aborted) return;
        if (err instanceof EngineUnavailableError) this.engineUp = false;
        this.log.warn({ err }, 'engine event stream failed; retrying');
      }
      await sleep(backoff, signal);
      backoff = Math.min(backoff * 2, 10_000);
    }
  }

  private onOom(id: string): void {
    const { store, events } = this.deps;
    const rec = store.byId(id);
    if (!rec || rec.pooled) return;
    events.emit({
      type: 'oom_killed',
      severity: 'high',
      workspace: rec.workspace,
      sandboxId: id,
      details: { memoryLimitMb: rec.spec.resourceLimits.memory },
    });
  }

  /** The container's main process ended on its own (or was killed by the kernel). */
  private async onExit(id: string): Promise<void> {
    const { store, engine, clock } = this.deps;
    const rec = store.byId(id);
    if (!rec || rec.status !== 'running' || !rec.containerId) return;
    const state = await engine.inspectContainer(rec.containerId);
    if (state?.running) return;
    const oom = state?.oomKilled ?? false;
    const exitCode = state?.exitCode ?? null;
    const to = oom || (exitCode !== null && exitCode !== 0) ? 'failed' : 'stopped';
    const done = store.transition(id, to, clock.nowMs(), {
      exitCode,
      stoppedMs: clock.nowMs(),
      reason: oom ? 'oom_killed' : `exited with code ${exitCode}`,
    });
    clearTimeout(this.deadlines.get(id));
    this.deadlines.delete(id);
    this.deps.lifecycle.emit('ended', rec);
    if (done) recordLifecycle(this.deps.events, 'sandbox_exited', done, undefined, { exitCode, oomKilled: oom }, this.deps.usage);
  }

  /** One reconciliation pass (serialized: concurrent callers share the pass in progress). */
  reconcile(opts: { boot: boolean }): Promise<void> {
    this.reconciling ??= this.reconcileOnce(opts).finally(() => (this.reconciling = null));
    return this.reconciling;
  }

  private async reconcileOnce({ boot }: { boot: boolean }): Promise<void> {
    const { store, engine, clock } = this.deps;
    // A create the previous process sent just before it died may still be completing in the
    // engine: give it time to appear, so it is seen (and removed) by this pass.
    if (boot && store.inStates(['creating']).length > 0) await new Promise((r) => setTimeout(r, BOOT_CREATE_GRACE_MS));
    const containers = await engine.listContainers(this.labels);
    const byId = new Map(containers.map((c) => [c.labels[LABEL.sandbox] ?? '', c]));
    let removed = 0;
    for (const c of containers) {
      const id = c.labels[LABEL.sandbox];
      const rec = id ? store.byId(id) : null;
      const creatingHere = rec?.status === 'creating' && !boot;
      if (creatingHere) continue;
      // Also a failed record that never got its container id: the container arrived after the
      // record was failed (an interrupted create), so nothing owns it.
      const unowned = rec !== null && rec.status === 'failed' && rec.containerId === null;
      if (
        !rec ||
        unowned ||
        rec.status === 'deleted' ||
        rec.status === 'creating' ||
        (rec.containerId !== null && rec.containerId !== c.id)
      ) {
        await engine.removeContainer(c.id);
        removed++;
        if (rec?.status === 'creating') {
          store.transition(rec.id, 'failed', clock.nowMs(), { reason: 'runtime restarted during create', stoppedMs: clock.nowMs() });
        }
      } else if ((rec.status === 'stopped' || rec.status === 'failed') && c.status === 'running') {
        await engine.killContainer(c.id);
      }
    }
    for (const rec of store.inStates(ACTIVE_STATES)) {
      const c = byId.get(rec.id);
      if (rec.status === 'creating' && !boot) continue;
      if (!c) {
        store.transition(rec.id, 'failed', clock.nowMs(), {
          reason: rec.status === 'creating' ? 'runtime restarted during create' : 'container vanished',
          stoppedMs: clock.nowMs(),
        });
        this.deps.lifecycle.emit('ended', rec);
        if (rec.networkId)
          await this.deps.network.release({ id: rec.id, workspace: rec.workspace, networkId: rec.networkId }).catch(() => undefined);
        continue;
      }
      if (rec.status === 'stopping' && c.status !== 'running') {
        store.transition(rec.id, 'stopped', clock.nowMs(), { stoppedMs: clock.nowMs() });
      } else if (rec.status === 'running' && c.status !== 'running') {
        await this.onExit(rec.id);
      } else if (rec.status === 'running') {
        this.armDeadline(rec);
      }
    }
    if (removed) this.log.info({ removed }, 'reconcile removed containers no record owns');
  }
}
