/**
 * Drives one run: makes its sandbox when it needs its own, then runs steps one at a time. Each
 * attempt is recorded before it starts and completed with its outcome in one transaction with
 * what follows from it (`plan.ts` decides: next step, retry with rollback, fail). The loop
 * stops when the run ended (completed, failed, or ended by someone else: cancel, run timeout,
 * session end) or when the server shuts down; then the attempt in flight stays `running` in the
 * store and the next start treats it as lost (see `runs.ts`).
 */
import type { Logger } from 'pino';
import { isoTime, type Clock } from '../../core/clock.ts';
import type { Caller } from '../../runtime/sandbox/manager.ts';
import type { TaskTracker } from '../tasks.ts';
import type { Journal, Tx } from './journal.ts';
import type { RunLog } from './log.ts';
import type { WorkflowMetrics } from './metrics.ts';
import { decide, type Decision, type FailureReason } from './plan.ts';
import type { RunSandboxes, WorkflowCheckpoints } from './ports.ts';
import { capUtf8, type Performed, type Steps } from './steps.ts';
import type { RunRecord, WorkflowRecord, WorkflowStore } from './store.ts';
import { stepStatusOf } from './view.ts';

/** Label on a run's own sandbox (its value is the run id): a restart finds the sandbox a crash left unrecorded. */
export const RUN_LABEL = 'workflow-run';

/** Why a run's loop was told to stop: the run ended (its state already says how), or the server shuts down. */
export type StopReason = 'ended' | 'shutdown';

export interface RunnerDeps {
  store: WorkflowStore;
  log: RunLog;
  journal: Journal;
  clock: Clock;
  steps: Steps;
  checkpoints: WorkflowCheckpoints;
  sandboxes: RunSandboxes;
  tasks: TaskTracker;
  metrics: WorkflowMetrics;
  logger: Logger;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });

export class Runner {
  readonly #d: RunnerDeps;
  constructor(deps: RunnerDeps) {
    this.#d = deps;
  }

  async drive(start: RunRecord, signal: AbortSignal): Promise<void> {
    const { store } = this.#d;
    const wf = store.workflowById(start.workflowId)!;
    const caller: Caller = { workspace: start.workspace, ...(start.actor ? { actor: start.actor } : {}) };
    let run: RunRecord | null = start;
    if (!run.sandboxId) run = await this.#makeSandbox(wf, run, caller);
    while (run && !signal.aborted) {
      run = store.runById(run.id)!;
      if (run.state !== 'running') return;
      const now = this.#d.clock.nowMs();
      if (run.nextMs !== null && run.nextMs > now) {
        await sleep(run.nextMs - now, signal);
        continue;
      }
      if (run.restoreId) {
        await this.#rollback(wf, run, caller, signal);
        continue;
      }
      if (run.step >= wf.steps.length) {
        this.#d.journal.transition(wf, run.id, 'completed', { endedMs: now, output: this.#output(run) });
        return;
      }
      await this.#step(wf, run, caller, signal);
    }
  }

  async #makeSandbox(wf: WorkflowRecord, run: RunRecord, caller: Caller): Promise<RunRecord | null> {
    const { sandboxes, store, clock, journal } = this.#d;
    // A sandbox made before a crash, not yet recorded on the run, is adopted rather than made twice.
    let rec = sandboxes.ofSession(run.sessionId).find((r) => r.labels[RUN_LABEL] === run.id && r.status === 'running') ?? null;
    if (!rec) {
      const body: Record<string, unknown> = {
        ...(wf.target.sandbox ?? {}),
        name: run.id,
        labels: { [RUN_LABEL]: run.id, workflow: wf.id },
        sessionId: run.sessionId,
        ...(run.departmentId ? { departmentId: run.departmentId } : {}),
        ...(wf.target.environmentId ? { environmentId: wf.target.environmentId } : {}),
      };
      try {
        rec = await sandboxes.create(caller, body);
      } catch (err) {
        const message = `the run's sandbox could not be made: ${(err as Error).message}`;
        journal.transition(wf, run.id, 'failed', {
          endedMs: clock.nowMs(),
          reason: { code: 'sandbox_failed', message },
          output: message,
        });
        return null;
      }
    }
    const made = rec;
    const recorded = journal.tx(wf.id, (t) => {
      if (!store.patchRun(run.id, clock.nowMs(), { sandboxId: made.id })) return false;
      t.append(run.id, 'sandbox', { runId: run.id, sandboxId: made.id });
      return true;
    });
    if (!recorded) {
      // The run ended while its sandbox was being made: nothing else will remove it.
      await sandboxes.destroy(made, `workflow run ${run.id} ended`).catch(() => undefined);
      return null;
    }
    return store.runById(run.id);
  }

  async #step(wf: WorkflowRecord, run: RunRecord, caller: Caller, signal: AbortSignal): Promise<void> {
    const { log, journal, clock, tasks, metrics } = this.#d;
    const i = run.step;
    const spec = wf.steps[i]!;
    const attempt = journal.tx(wf.id, (t) => {
      const a = log.beginAttempt({ runId: run.id, step: i, kind: spec.type, round: run.round, startedMs: clock.nowMs() });
      journal.reportStep(t, wf, run, a, 'running');
      return a;
    });
    const endTask = tasks.begin(run.sessionId, run.departmentId);
    let done: Performed;
    try {
      done = await this.#d.steps.perform(wf, run, spec, attempt, caller, signal);
    } catch (err) {
      const message = (err as Error).message;
      done = { outcome: { kind: 'error', message }, result: { state: 'failed', detail: { error: message } } };
    }
    metrics.stepSeconds.observe({ type: spec.type }, (clock.nowMs() - attempt.startedMs) / 1000);
    if (signal.aborted && signal.reason === 'shutdown') return;
    endTask(done.result.state !== 'succeeded');
    if (signal.aborted) {
      // The run ended (cancel, run timeout, session end) while this step ran: it was stopped, not
      // judged; the end already settled its attempt as cancelled (journal.ts), this keeps what it left.
      log.recordStopped(run.id, attempt.n, done.result);
      return;
    }
    const decision = decide(
      {
        step: i,
        steps: wf.steps,
        round: run.round,
        maxRetries: wf.config.maxRetries,
        backoff: wf.config.backoff,
        checkpoint: run.checkpoint,
      },
      done.outcome,
    );
    journal.tx(wf.id, (t) => {
      if (!log.finishAttempt(run.id, attempt.n, clock.nowMs(), done.result)) return;
      const ended = log.attempt(run.id, attempt.n)!;
      journal.reportStep(t, wf, run, ended, stepStatusOf(ended.state));
      this.apply(t, wf, run, decision, done.checkpoint);
    });
  }

  /** Stores what follows a step (inside the transaction that completes its attempt). */
  apply(t: Tx, wf: WorkflowRecord, run: RunRecord, d: Decision, checkpoint: { step: number; id: string } | undefined): void {
    const { store, journal, clock, metrics } = this.#d;
    const now = clock.nowMs();
    const ckp = checkpoint ? { checkpoint } : {};
    switch (d.kind) {
      case 'next':
        store.patchRun(run.id, now, { step: d.step, ...ckp });
        return;
      case 'again':
        return;
      case 'complete': {
        const latest = { ...run, ...ckp };
        journal.transition(wf, run.id, 'completed', { step: wf.steps.length, endedMs: now, output: this.#output(latest), ...ckp }, t);
        return;
      }
      case 'retry': {
        const resumeAtMs = now + d.delayMs;
        if (!store.patchRun(run.id, now, { round: d.round, nextMs: resumeAtMs, step: d.resumeStep, restoreId: d.restore })) return;
        t.append(run.id, 'retry', {
          runId: run.id,
          round: d.round,
          maxRetries: wf.config.maxRetries,
          delayMs: d.delayMs,
          resumeAt: isoTime(resumeAtMs),
          resumeStep: d.resumeStep + 1,
          checkpointId: d.restore,
        });
        t.after(() => metrics.retries.inc());
        return;
      }
      case 'fail':
        this.fail(wf, run.id, d.reason, t);
        return;
    }
  }

  fail(wf: WorkflowRecord, runId: string, reason: FailureReason, t?: Tx): RunRecord | null {
    return this.#d.journal.transition(wf, runId, 'failed', { endedMs: this.#d.clock.nowMs(), reason, output: reason.message }, t);
  }

  /** The result's output: the stdout kept of the run's last execute. */
  #output(run: RunRecord): string {
    const last = this.#d.log
      .attemptsOf(run.id)
      .filter((a) => a.kind === 'execute' && a.state !== 'running')
      .at(-1);
    return capUtf8(last?.stdout ?? '', 4096).text;
  }

  async #rollback(wf: WorkflowRecord, run: RunRecord, caller: Caller, signal: AbortSignal): Promise<void> {
    const { log, journal, clock, store, checkpoints, metrics } = this.#d;
    const checkpointId = run.restoreId!;
    const a = journal.tx(wf.id, (t) => {
      const began = log.beginAttempt({ runId: run.id, step: run.step, kind: 'rollback', round: run.round, startedMs: clock.nowMs() });
      journal.reportRollback(t, run, began, 'running');
      return began;
    });
    let error: string | null = null;
    try {
      await checkpoints.restore(caller, checkpointId, run.sandboxId!);
    } catch (err) {
      error = (err as Error).message;
    }
    metrics.stepSeconds.observe({ type: 'rollback' }, (clock.nowMs() - a.startedMs) / 1000);
    if (signal.aborted && signal.reason !== 'shutdown') {
      // The run ended meanwhile: its end settled the rollback as cancelled; whether the restore failed is kept on it.
      log.recordStopped(run.id, a.n, { detail: { checkpointId, ...(error ? { error } : {}) } });
      return;
    }
    // A shutdown: a failed restore is redone at the next start (the attempt stays running, then lost).
    if (error !== null && signal.aborted) return;
    journal.tx(wf.id, (t) => {
      const state = error === null ? 'succeeded' : 'failed';
      if (!log.finishAttempt(run.id, a.n, clock.nowMs(), { state, detail: { checkpointId, ...(error ? { error } : {}) } })) return;
      journal.reportRollback(t, run, a, error === null ? 'completed' : 'failed', error ? { error } : {});
      if (error === null) {
        if (store.patchRun(run.id, clock.nowMs(), { restoreId: null })) t.after(() => metrics.rollbacks.inc());
      } else
        this.fail(
          wf,
          run.id,
          {
            code: 'checkpoint_failed',
            step: run.step + 1,
            message: `restoring checkpoint ${checkpointId} before retry ${run.round} failed: ${error}`,
          },
          t,
        );
    });
  }
}
