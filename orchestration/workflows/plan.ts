/**
 * What a run does after a step: the pure core of the runner. The caller gathers the step's
 * outcome and the run's position (round, last checkpoint); this decides whether the run moves
 * on, rolls back and retries, or fails, and why. No effects and no clock: the caller stores the
 * decision before acting on it.
 *
 * Rules:
 * - a step that succeeded moves to the next one (the run completes after the last);
 * - an execute that failed is judged by the verify right after it when there is one; without
 *   one the run fails;
 * - a verify that failed, or an execute lost to a restart, consumes a retry while `round <
 *   maxRetries`: the run waits the backoff, restores its last checkpoint (if it took one) and
 *   runs the steps after that checkpoint again (from the first step without one); with no
 *   retry left the run fails (`verify_failed`, or `interrupted` for a lost execute);
 * - a verify or checkpoint lost to a restart runs again (they read the sandbox; a lost rollback
 *   is redone by the runner before anything else);
 * - a command refused by policy, a checkpoint that could not be taken and a step that could not
 *   run at all (sandbox gone) fail the run: a retry would meet the same refusal.
 */
import { backoffDelayMs, type Backoff } from './backoff.ts';

export type StepType = 'execute' | 'verify' | 'checkpoint';

export type FailureCode =
  | 'execute_failed'
  | 'verify_failed'
  | 'checkpoint_failed'
  | 'policy_violation'
  | 'step_error'
  | 'sandbox_failed'
  | 'interrupted'
  | 'timed_out'
  | 'cancelled'
  | 'session_ended';

/** Why a run ended other than `completed`: which step (1-based), which criterion, what it saw. */
export interface FailureReason {
  code: FailureCode;
  message: string;
  step?: number;
  criterion?: string;
  saw?: string;
  exitCode?: number;
}

export type StepOutcome =
  | { kind: 'succeeded' }
  | { kind: 'failed'; exitCode: number; timedOut: boolean }
  | { kind: 'unverified'; criterion: string; saw: string }
  | { kind: 'refused'; message: string }
  | { kind: 'error'; message: string }
  | { kind: 'lost' };

export interface Position {
  /** 0-based index of the step that just ended. */
  step: number;
  steps: readonly { type: StepType }[];
  /** Retries used so far in this run. */
  round: number;
  maxRetries: number;
  backoff: Backoff;
  /** The run's last checkpoint: its step index and id; null before the first. */
  checkpoint: { step: number; id: string } | null;
}

export type Decision =
  | { kind: 'next'; step: number }
  | { kind: 'complete' }
  | { kind: 'again'; step: number }
  | { kind: 'retry'; round: number; delayMs: number; resumeStep: number; restore: string | null }
  | { kind: 'fail'; reason: FailureReason };

export function decide(p: Position, outcome: StepOutcome): Decision {
  const n = p.step + 1;
  const type = p.steps[p.step]!.type;
  const next = (): Decision => (p.step + 1 >= p.steps.length ? { kind: 'complete' } : { kind: 'next', step: p.step + 1 });
  const retry = (fail: FailureReason): Decision => {
    if (p.round >= p.maxRetries) return { kind: 'fail', reason: fail };
    const round = p.round + 1;
    return {
      kind: 'retry',
      round,
      delayMs: backoffDelayMs(p.backoff, round),
      resumeStep: p.checkpoint ? p.checkpoint.step + 1 : 0,
      restore: p.checkpoint?.id ?? null,
    };
  };
  switch (outcome.kind) {
    case 'succeeded':
      return next();
    case 'failed':
      if (type === 'execute' && p.steps[p.step + 1]?.type === 'verify') return next();
      return {
        kind: 'fail',
        reason: {
          code: 'execute_failed',
          step: n,
          exitCode: outcome.exitCode,
          message: outcome.timedOut
            ? `step ${n} (execute) timed out and no verify follows it`
            : `step ${n} (execute) exited ${outcome.exitCode} and no verify follows it`,
        },
      };
    case 'unverified':
      return retry({
        code: 'verify_failed',
        step: n,
        criterion: outcome.criterion,
        saw: outcome.saw,
        message: `step ${n} (verify) failed${p.maxRetries ? ` after ${p.round} ${p.round === 1 ? 'retry' : 'retries'}` : ''}: ${outcome.criterion}: saw ${outcome.saw}`,
      });
    case 'refused':
      return { kind: 'fail', reason: { code: 'policy_violation', step: n, message: `step ${n} (${type}) refused: ${outcome.message}` } };
    case 'error':
      return {
        kind: 'fail',
        reason: {
          code: type === 'checkpoint' ? 'checkpoint_failed' : 'step_error',
          step: n,
          message: `step ${n} (${type}): ${outcome.message}`,
        },
      };
    case 'lost':
      if (type !== 'execute') return { kind: 'again', step: p.step };
      return retry({
        code: 'interrupted',
        step: n,
        message: `step ${n} (execute) was interrupted by a server restart and no retry was left (${p.round} of ${p.maxRetries} used)`,
      });
  }
}
