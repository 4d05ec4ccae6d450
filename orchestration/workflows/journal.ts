/**
 * Every change to a run goes through here: the change, the events of the workflow's log that
 * report it, in one transaction; then, once it committed, the followers are woken and the
 * events for the one event stream (WebSocket `workflows`, webhooks) are emitted. A change that
 * did not commit is never reported; one that committed is always in the log.
 */
import { isoTime, type Clock } from '../../core/clock.ts';
import type { EventInput, EventSink } from '../../runtime/events.ts';
import type { Feed } from './feed.ts';
import type { AttemptRecord, RunLog } from './log.ts';
import type { WorkflowMetrics } from './metrics.ts';
import type { RunPatch, RunRecord, WorkflowRecord, WorkflowStore } from './store.ts';
import { isOpenRun, type RunState } from './states.ts';
import { progressData, type StepStatus } from './view.ts';

export interface Tx {
  /** Appends an event to the workflow's log (its SSE stream). */
  append(runId: string | null, type: string, data: Record<string, unknown>): void;
  /** Emits to the event stream once the transaction committed. */
  emit(e: EventInput): void;
  /** Runs once the transaction committed. */
  after(fn: () => void): void;
}

export class Journal {
  readonly #store: WorkflowStore;
  readonly #log: RunLog;
  readonly #feed: Feed;
  readonly #events: EventSink;
  readonly #clock: Clock;
  readonly #metrics: WorkflowMetrics;

  constructor(d: { store: WorkflowStore; log: RunLog; feed: Feed; events: EventSink; clock: Clock; metrics: WorkflowMetrics }) {
    this.#store = d.store;
    this.#log = d.log;
    this.#feed = d.feed;
    this.#events = d.events;
    this.#clock = d.clock;
    this.#metrics = d.metrics;
  }

  /** Wakes the followers of a workflow's log without a change (a run's loop stopped: a follower may end now). */
  wake(workflowId: string): void {
    this.#feed.wake(workflowId);
  }

  tx<T>(workflowId: string, fn: (t: Tx) => T): T {
    const emits: EventInput[] = [];
    const afters: (() => void)[] = [];
    let appended = false;
    const out = this.#store.db.tx(() =>
      fn({
        append: (runId, type, data) => {
          this.#log.append(workflowId, runId, type, data, this.#clock.nowMs());
          appended = true;
        },
        emit: (e) => emits.push(e),
        after: (f) => afters.push(f),
      }),
    );
    if (appended) this.#feed.wake(workflowId);
    for (const e of emits) this.#events.emit(e);
    for (const f of afters) f();
    return out;
  }

  /**
   * Moves a run to `to` (see `states.ts`) and reports it: a `run` event in the log and, when it
   * ended, `workflow_completed` or `workflow_failed` (the seed's webhook data) on the event
   * stream. Returns the run, or null when another party moved it first. Runs inside `t` when given.
   */
  transition(wf: WorkflowRecord, runId: string, to: RunState, patch: RunPatch = {}, t?: Tx): RunRecord | null {
    const go = (tx: Tx): RunRecord | null => {
      const run = this.#store.transition(runId, to, this.#clock.nowMs(), patch);
      if (!run) return null;
      if (!isOpenRun(to)) for (const a of this.#log.runningAttempts(run.id)) this.#settleStopped(tx, wf, run, a);
      tx.append(run.id, 'run', runEventData(wf, run));
      if (!isOpenRun(to)) {
        const success = to === 'completed';
        tx.emit({
          type: success ? 'workflow_completed' : 'workflow_failed',
          severity: success ? 'info' : 'low',
          workspace: run.workspace,
          sessionId: run.sessionId,
          actor: run.actor,
          details: {
            workflowId: wf.id,
            sessionId: run.sessionId,
            status: to,
            result: { success, output: run.output ?? '' },
            runId: run.id,
            ...(run.reason ? { reason: run.reason } : {}),
          },
        });
        tx.after(() => this.#metrics.runs.inc({ outcome: to }));
      }
      return run;
    };
    return t ? go(t) : this.tx(wf.id, go);
  }

  /** Reports a step attempt: a `step` event in the log and `workflow_progress` on the event stream. */
  reportStep(t: Tx, wf: WorkflowRecord, run: RunRecord, a: AttemptRecord, status: StepStatus): void {
    const progress = progressData(wf, run, a.step, status, a.startedMs);
    t.append(run.id, 'step', {
      ...progress,
      attempt: a.n,
      round: a.round,
      ...(a.endedMs !== null ? { endTime: isoTime(a.endedMs), durationMs: a.endedMs - a.startedMs } : {}),
      ...(a.exitCode !== null ? { exitCode: a.exitCode } : {}),
      ...(a.timedOut ? { timedOut: true } : {}),
      ...a.detail,
    });
    t.emit({
      type: 'workflow_progress',
      severity: 'info',
      workspace: run.workspace,
      sessionId: run.sessionId,
      sandboxId: run.sandboxId,
      actor: run.actor,
      details: progress,
    });
  }

  /** Reports a rollback attempt (the restore before a retry): a `rollback` event in the log. */
  reportRollback(t: Tx, run: RunRecord, a: Pick<AttemptRecord, 'n' | 'step'>, status: string, extra: { error?: string } = {}): void {
    t.append(run.id, 'rollback', { runId: run.id, checkpointId: run.restoreId, status, resumeStep: a.step + 1, attempt: a.n, ...extra });
  }

  /**
   * The run ended while attempt `a` ran (cancel, run timeout, session end, an internal error):
   * the attempt is `cancelled` and reported in the same transaction, before the run's end, so the
   * run's terminal event is its last and no view shows an ended run with a step still running.
   * What the stopped step leaves afterwards is added by {@link RunLog.recordStopped}, without an event.
   */
  #settleStopped(t: Tx, wf: WorkflowRecord, run: RunRecord, a: AttemptRecord): void {
    const rollback = a.kind === 'rollback';
    const detail = rollback ? { checkpointId: run.restoreId } : {};
    if (!this.#log.finishAttempt(run.id, a.n, this.#clock.nowMs(), { state: 'cancelled', detail })) return;
    if (rollback) this.reportRollback(t, run, a, 'cancelled');
    else this.reportStep(t, wf, run, this.#log.attempt(run.id, a.n)!, 'cancelled');
  }
}

/** A `run` event's data: the run's state and position (`step` 1-based: the step running or next, the last once completed). */
export function runEventData(wf: WorkflowRecord, run: RunRecord): Record<string, unknown> {
  return {
    runId: run.id,
    number: run.number,
    status: run.state,
    step: Math.min(run.step + 1, wf.steps.length),
    retries: run.round,
    sandboxId: run.sandboxId,
    ...(run.reason ? { reason: run.reason } : {}),
  };
}
