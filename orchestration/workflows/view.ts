/**
 * What clients read about workflows: the workflow itself, a run's status with every attempt,
 * and the seed's `workflow_progress` data. Pure functions of the stored records. Steps are
 * numbered from 1 here (as in `workflow_progress`); field paths in errors keep JSON's 0-based
 * indices (`steps[1].criteria` is step 2).
 */
import { isoTime } from '../../core/clock.ts';
import type { AttemptRecord } from './log.ts';
import type { RunRecord, WorkflowRecord } from './store.ts';
import type { AttemptState } from './states.ts';

const iso = (ms: number | null): string | null => (ms === null ? null : isoTime(ms));

/** A step's status as progress and status report it. */
export type StepStatus = 'pending' | 'running' | 'completed' | 'failed' | 'interrupted' | 'cancelled';

export const stepStatusOf = (s: AttemptState): StepStatus => (s === 'succeeded' ? 'completed' : s === 'lost' ? 'interrupted' : s);

export function workflowView(wf: WorkflowRecord) {
  return {
    id: wf.id,
    sessionId: wf.sessionId,
    departmentId: wf.departmentId,
    name: wf.name,
    description: wf.description,
    steps: wf.steps as unknown as Record<string, unknown>[],
    config: {
      timeout: wf.config.timeoutMs,
      maxRetries: wf.config.maxRetries,
      backoff: {
        initialInterval: wf.config.backoff.initialIntervalMs,
        coefficient: wf.config.backoff.coefficient,
        maxInterval: wf.config.backoff.maxIntervalMs,
      },
    },
    sandboxId: wf.target.sandboxId ?? null,
    environmentId: wf.target.environmentId ?? null,
    sandbox: wf.target.sandbox ?? null,
    metadata: wf.metadata,
    status: wf.status,
    lastRunId: wf.lastRunId,
    createdAt: isoTime(wf.createdMs),
    updatedAt: isoTime(wf.updatedMs),
  };
}

/** The seed's `workflow_progress` data (plus `runId`): `progress` is the percentage of steps completed in this pass. */
export function progressData(wf: WorkflowRecord, run: RunRecord, step: number, status: StepStatus, startMs: number) {
  const total = wf.steps.length;
  const done = status === 'completed' ? step + 1 : step;
  return {
    workflowId: wf.id,
    runId: run.id,
    step: step + 1,
    totalSteps: total,
    progress: Math.round((100 * done) / total),
    currentStep: { type: wf.steps[step]!.type, status, startTime: isoTime(startMs) },
  };
}

function attemptView(a: AttemptRecord) {
  return {
    attempt: a.n,
    round: a.round,
    status: stepStatusOf(a.state),
    exitCode: a.exitCode,
    timedOut: a.timedOut,
    durationMs: a.endedMs === null ? null : a.endedMs - a.startedMs,
    startedAt: isoTime(a.startedMs),
    endedAt: iso(a.endedMs),
    stdout: a.stdout,
    stderr: a.stderr,
    truncated: a.truncated,
    ...a.detail,
  };
}

/** `GET /v1/workflows/{id}/status`: the workflow's status and its latest run, every attempt included. */
export function statusView(wf: WorkflowRecord, run: RunRecord | null, attempts: AttemptRecord[], nowMs: number) {
  const total = wf.steps.length;
  if (!run) return { workflowId: wf.id, sessionId: wf.sessionId, name: wf.name, status: wf.status, totalSteps: total, run: null };
  const steps = wf.steps.map((s, i) => {
    const mine = attempts.filter((a) => a.step === i && a.kind !== 'rollback');
    const last = mine.at(-1);
    return {
      step: i + 1,
      type: s.type,
      status: last ? stepStatusOf(last.state) : 'pending',
      attempts: mine.map(attemptView),
    };
  });
  const current = attempts.filter((a) => a.kind !== 'rollback').at(-1);
  const running = run.state === 'running';
  const doneInPass = run.state === 'completed' ? total : run.step;
  return {
    workflowId: wf.id,
    sessionId: wf.sessionId,
    name: wf.name,
    status: wf.status,
    totalSteps: total,
    run: {
      id: run.id,
      number: run.number,
      status: run.state,
      step: Math.min(run.step + 1, total),
      progress: Math.round((100 * doneInPass) / total),
      currentStep:
        current && running
          ? {
              step: current.step + 1,
              type: wf.steps[current.step]!.type,
              status: stepStatusOf(current.state),
              startTime: isoTime(current.startedMs),
            }
          : null,
      retries: run.round,
      maxRetries: wf.config.maxRetries,
      sandboxId: run.sandboxId,
      checkpoint: run.checkpoint ? { step: run.checkpoint.step + 1, id: run.checkpoint.id } : null,
      nextAttemptAt: running && run.nextMs !== null && run.nextMs > nowMs ? isoTime(run.nextMs) : null,
      context: run.context,
      environmentKeys: Object.keys(run.environment).sort(),
      reason: run.reason,
      output: run.output,
      createdAt: isoTime(run.createdMs),
      queuedAt: iso(run.queuedMs),
      startedAt: iso(run.startedMs),
      deadlineAt: iso(run.deadlineMs),
      endedAt: iso(run.endedMs),
      durationMs: run.startedMs === null ? null : (run.endedMs ?? nowMs) - run.startedMs,
      steps,
      rollbacks: attempts
        .filter((a) => a.kind === 'rollback')
        .map((a) => ({
          attempt: a.n,
          round: a.round,
          status: stepStatusOf(a.state),
          resumeStep: a.step + 1,
          durationMs: a.endedMs === null ? null : a.endedMs - a.startedMs,
          startedAt: isoTime(a.startedMs),
          endedAt: iso(a.endedMs),
          ...a.detail,
        })),
    },
  };
}
