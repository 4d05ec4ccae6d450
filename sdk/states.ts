/**
 * The states of the API's records as lists a program can show or check against (a CLI's
 * `--status` choices, a console's filters). Each list is typed against the generated document's
 * union: a state added to or removed from the API is a type error here until the list follows.
 */
import type { ApprovalStatus, SandboxStatus, SessionStatus, Severity, WorkflowRunState } from './types.ts';

/** Every member of the union `T`, in the order given: one missing (or not a member) does not type-check. */
const every =
  <T extends string>() =>
  <const A extends readonly T[]>(...values: A & ([T] extends [A[number]] ? unknown : never)): readonly T[] =>
    values;

export const SANDBOX_STATES = every<SandboxStatus>()('creating', 'running', 'stopping', 'stopped', 'failed', 'deleted');
export const SESSION_STATES = every<SessionStatus>()('active', 'paused', 'completed', 'expired', 'terminated');
/** A workflow run's states, in the order a run goes through them. */
export const RUN_STATES = every<WorkflowRunState>()('pending', 'queued', 'running', 'completed', 'failed', 'cancelled', 'timed_out');
/** The run states after which nothing more happens. */
export const ENDED_RUN_STATES: readonly WorkflowRunState[] = ['completed', 'failed', 'cancelled', 'timed_out'];
export const APPROVAL_STATES = every<ApprovalStatus>()('pending', 'approved', 'denied', 'timed_out', 'superseded', 'cancelled');
/** Severities, least first. */
export const SEVERITIES = every<Severity>()('info', 'low', 'medium', 'high', 'critical');

/** Whether a run in state `s` has ended (false for a run not started, or no run). */
export const runHasEnded = (s: string | null | undefined): boolean => (ENDED_RUN_STATES as readonly string[]).includes(s ?? '');
