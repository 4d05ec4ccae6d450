/**
 * Owns the runs this process drives: schedules waiting runs (`queue.ts` decides), arms each
 * run's timeout, ends runs on cancel or session end, and picks up after a restart.
 *
 * After a restart (graceful or `kill -9`), every run still `running` resumes. An attempt the
 * store still shows running was lost: what it started in the sandbox is killed first (every
 * command of a run carries its attempt in DIRECTOR_WORKFLOW_ATTEMPT; all of them are stopped
 * before any is killed), the attempt is recorded as `lost` with how many processes were killed
 * (or why they could not be), and `plan.ts` decides: a lost execute consumes a retry (rollback to the last
 * checkpoint, backoff) or fails the run with reason `interrupted`; a lost verify or checkpoint
 * runs again; a lost rollback is redone. A run whose timeout passed while the server was down is
 * `timed_out`. Sandboxes that ended runs made for themselves and did not remove are removed.
 */
import type { Logger } from 'pino';
import type { Clock } from '../../core/clock.ts';
import { killMarkedCommand } from '../../runtime/engine/kill-marked.ts';
import type { Caller } from '../../runtime/sandbox/manager.ts';
import type { Journal } from './journal.ts';
import type { AttemptRecord, RunLog } from './log.ts';
import { decide, type FailureReason } from './plan.ts';
import type { RunSandboxes, StepExecutor } from './ports.ts';
import { pickRunnable } from './queue.ts';
import type { Runner, StopReason } from './runner.ts';
import { ATTEMPT_MARKER_ENV } from './steps.ts';
import type { RunRecord, WorkflowStore } from './store.ts';
import { isOpenRun } from './states.ts';

export interface RunManagerDeps {
  store: WorkflowStore;
  log: RunLog;
  journal: Journal;
  runner: Runner;
  clock: Clock;
  config: { workflowMaxRunning: number; maxExecTimeoutMs: number };
  executor: StepExecutor;
  sandboxes: RunSandboxes;
  /** A department's `maxConcurrentTasks`; null when it bounds nothing (deleted). */
  departmentLimit(departmentId: string): number | null;
  logger: Logger;
}

interface Active {
  ac: AbortController;
  done: Promise<void>;
  clearTimer: () => void;
}

/** Largest delay setTimeout takes; longer run timeouts re-arm when it fires. */
const MAX_TIMER_MS = 2_147_483_647;

export class RunManager {
  readonly #d: RunManagerDeps;
  readonly #active = new Map<string, Active>();
  #closed = true;

  constructor(deps: RunManagerDeps) {
    this.#d = deps;
  }

  get #log(): Logger {
    return this.#d.logger;
  }

  /** Runs this process is driving now. */
  get activeCount(): number {
    return this.#active.size;
  }

  isActive(runId: string): boolean {
    return this.#active.has(runId);
  }

  async start(): Promise<void> {
    this.#closed = false;
    for (const run of this.#d.store.endedWithOwnSandbox()) await this.#release(run);
    for (const run of this.#d.store.openRuns()) {
      if (run.state !== 'running' || this.#active.has(run.id)) continue;
      await this.#recover(run);
      const cur = this.#d.store.runById(run.id)!;
      if (cur.state === 'running') this.#launch(cur);
      // Ended by the recovery (out of time, a lost step with no retry left): no loop will release its sandbox.
      else if (!isOpenRun(cur.state)) await this.#release(cur);
    }
    this.pump();
  }

  /** Stops driving runs (they stay `running` in the store and resume at the next start). */
  async close(): Promise<void> {
    this.#closed = true;
    const all = [...this.#active.values()];
    for (const a of all) {
      a.clearTimer();
      a.ac.abort('shutdown' satisfies StopReason);
    }
    await Promise.allSettled(all.map((a) => a.done));
  }

  /** Starts the waiting runs that have a place; makes the other pending ones `queued`. */
  pump(): void {
    if (this.#closed) return;
    const { store, journal, clock } = this.#d;
    const waiting = store.openRuns().filter((r) => r.state !== 'running');
    if (!waiting.length) return;
    const picked = pickRunnable(
      waiting.map((r) => ({ id: r.id, departmentId: r.departmentId, state: r.state as 'pending' | 'queued' })),
      store.runningCounts(),
      (dep) => this.#d.departmentLimit(dep),
      this.#d.config.workflowMaxRunning,
    );
    for (const id of picked.queue) {
      const run = store.runById(id)!;
      journal.transition(store.workflowById(run.workflowId)!, id, 'queued', { queuedMs: clock.nowMs() });
    }
    for (const id of picked.start) {
      const wf = store.workflowById(store.runById(id)!.workflowId)!;
      const now = clock.nowMs();
      const run = journal.transition(wf, id, 'running', { startedMs: now, deadlineMs: now + wf.config.timeoutMs });
      if (run) this.#launch(run);
    }
  }

  /** Ends an open run as `cancelled` and stops what it runs; null when it had already ended. */
  cancel(runId: string, reason: FailureReason): RunRecord | null {
    const { store, journal, clock } = this.#d;
    const run = store.runById(runId);
    if (!run) return null;
    const ended = journal.transition(store.workflowById(run.workflowId)!, runId, 'cancelled', {
      endedMs: clock.nowMs(),
      reason,
      output: reason.message,
    });
    if (ended) this.#stop(runId);
    return ended;
  }

  /** Phase 0 of a session's end: cancels its open runs and waits until each has stopped. */
  async endSession(sessionId: string, to: string): Promise<void> {
    const waits: Promise<void>[] = [];
    for (const run of this.#d.store.openRunsOfSession(sessionId)) {
      this.cancel(run.id, { code: 'session_ended', message: `session ${sessionId} ${to}` });
      const a = this.#active.get(run.id);
      if (a) waits.push(a.done);
    }
    await Promise.allSettled(waits);
  }

  #stop(runId: string): void {
    const a = this.#active.get(runId);
    if (!a) return;
    a.clearTimer();
    a.ac.abort('ended' satisfies StopReason);
  }

  #launch(run: RunRecord): void {
    const ac = new AbortController();
    let timer: NodeJS.Timeout | null = null;
    const arm = (deadlineMs: number) => {
      const delay = deadlineMs - this.#d.clock.nowMs();
      if (delay <= 0) return void this.#timeOut(run.id);
      timer = setTimeout(() => (delay > MAX_TIMER_MS ? arm(deadlineMs) : this.#timeOut(run.id)), Math.min(delay, MAX_TIMER_MS));
      timer.unref();
    };
    const entry: Active = { ac, done: Promise.resolve(), clearTimer: () => timer && clearTimeout(timer) };
    this.#active.set(run.id, entry);
    entry.done = (async () => {
      try {
        await this.#d.runner.drive(run, ac.signal);
      } catch (err) {
        this.#log.error({ err, runId: run.id }, 'workflow run failed unexpectedly');
        const wf = this.#d.store.workflowById(run.workflowId)!;
        if (!ac.signal.aborted)
          this.#d.runner.fail(wf, run.id, { code: 'step_error', message: `internal error: ${(err as Error).message}` });
      } finally {
        entry.clearTimer();
        this.#active.delete(run.id);
        // Followers wait for the loop to stop (it may log the attempt it stopped after the run's end).
        this.#d.journal.wake(run.workflowId);
        const cur = this.#d.store.runById(run.id);
        if (cur && !isOpenRun(cur.state)) await this.#release(cur);
        this.pump();
      }
    })();
    if (run.deadlineMs !== null) arm(run.deadlineMs);
  }

  #timeOut(runId: string): void {
    const { store, journal, clock } = this.#d;
    const run = store.runById(runId);
    if (!run) return;
    const wf = store.workflowById(run.workflowId)!;
    const message = `the run exceeded its timeout of ${wf.config.timeoutMs} ms`;
    const ended = journal.transition(wf, runId, 'timed_out', {
      endedMs: clock.nowMs(),
      reason: { code: 'timed_out', step: run.step + 1, message },
      output: message,
    });
    if (ended) this.#stop(runId);
  }

  /** Removes the sandbox an ended run made for itself. */
  async #release(run: RunRecord): Promise<void> {
    if (!run.ownSandbox || !run.sandboxId) return;
    const rec = this.#d.sandboxes.byId(run.sandboxId);
    try {
      if (rec && rec.status !== 'deleted') await this.#d.sandboxes.destroy(rec, `workflow run ${run.id} ${run.state}`);
      this.#d.store.forgetSandbox(run.id);
    } catch (err) {
      // Retried at the next start (the run still names the sandbox).
      this.#log.warn({ err, runId: run.id, sandboxId: run.sandboxId }, 'could not remove the sandbox of an ended workflow run');
    }
  }

  /** Settles what a stop left in flight: lost attempts (see the header), a timeout that passed meanwhile. */
  async #recover(run: RunRecord): Promise<void> {
    const { store, log, journal, runner, clock } = this.#d;
    const wf = store.workflowById(run.workflowId)!;
    const timedOut = run.deadlineMs !== null && run.deadlineMs <= clock.nowMs();
    for (const a of log.runningAttempts(run.id)) {
      // Killed before the attempt is settled: the retry that may follow never runs beside it.
      const leftovers = await this.#killLeftovers(run, a);
      journal.tx(wf.id, (t) => {
        if (!log.finishAttempt(run.id, a.n, clock.nowMs(), { state: 'lost', detail: { error: LOST, ...leftovers } })) return;
        const lost = log.attempt(run.id, a.n)!;
        if (a.kind === 'rollback') {
          journal.reportRollback(t, run, a, 'interrupted');
          return;
        }
        journal.reportStep(t, wf, run, lost, 'interrupted');
        // A run out of time ends below; its lost attempt is settled first, so the end stays its last event.
        if (timedOut) return;
        const cur = store.runById(run.id)!;
        const decision = decide(
          {
            step: a.step,
            steps: wf.steps,
            round: cur.round,
            maxRetries: wf.config.maxRetries,
            backoff: wf.config.backoff,
            checkpoint: cur.checkpoint,
          },
          { kind: 'lost' },
        );
        runner.apply(t, wf, cur, decision, undefined);
      });
    }
    if (timedOut) this.#timeOut(run.id);
  }

  /**
   * Kills what a lost attempt started in the sandbox, so a retry never runs beside it; says what
   * it did, for the attempt's record: how many processes it killed, or why it could not.
   */
  async #killLeftovers(run: RunRecord, a: AttemptRecord): Promise<Leftovers> {
    if (!run.sandboxId || (a.kind !== 'execute' && a.kind !== 'verify')) return {};
    const caller: Caller = { workspace: run.workspace, ...(run.actor ? { actor: run.actor } : {}) };
    try {
      const r = await this.#d.executor.run(caller, run.sandboxId, {
        // As the sandbox user, who owns them; stopped all first, then killed (see KILL_MARKED_SCRIPT).
        command: killMarkedCommand(ATTEMPT_MARKER_ENV, `${run.id}.${a.n}`),
        timeout: Math.min(30_000, this.#d.config.maxExecTimeoutMs),
      });
      const n = /^\d+$/.test(r.stdout.trim()) ? Number(r.stdout.trim()) : null;
      if (r.exitCode === 0 && !r.timedOut && n !== null) return { killedProcesses: n };
      const why = r.timedOut ? 'timed out' : `exited ${r.exitCode}: ${r.stderr.trim().slice(0, 200)}`;
      return this.#couldNotKill(run, `the kill of its leftovers ${why}`);
    } catch (err) {
      return this.#couldNotKill(run, (err as Error).message);
    }
  }

  #couldNotKill(run: RunRecord, message: string): Leftovers {
    this.#log.warn({ runId: run.id, sandboxId: run.sandboxId, message }, 'could not kill what a lost step left running');
    return { killError: message };
  }
}

/** What the restart did about a lost attempt's processes, recorded on the attempt. */
type Leftovers = { killedProcesses?: number; killError?: string };

const LOST = 'the server stopped while this step ran';
