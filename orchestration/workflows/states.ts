/**
 * A workflow run's lifecycle as data. `pending` (the start is stored, not yet scheduled) →
 * `queued` (waiting for a place: its department's `maxConcurrentTasks` or the instance's
 * DIRECTOR_WORKFLOW_MAX_RUNNING) → `running` → `completed` | `failed` | `cancelled` |
 * `timed_out`. A pending run may start at once; any open run may be cancelled, and any open one
 * may fail (its sandbox could not be made, its session ended). Ended states are final. Every
 * transition is checked against this table, in one place ({@link canTransition}), by the
 * store's conditional update, so two parties (the run's own loop and a cancel) can never both
 * move a run.
 */
export const RUN_STATES = ['pending', 'queued', 'running', 'completed', 'failed', 'cancelled', 'timed_out'] as const;
export type RunState = (typeof RUN_STATES)[number];

export const OPEN_RUN_STATES = ['pending', 'queued', 'running'] as const satisfies readonly RunState[];
export type OpenRunState = (typeof OPEN_RUN_STATES)[number];
export type EndedRunState = Exclude<RunState, OpenRunState>;

const NEXT: Record<RunState, readonly RunState[]> = {
  pending: ['queued', 'running', 'failed', 'cancelled'],
  queued: ['running', 'failed', 'cancelled'],
  running: ['completed', 'failed', 'cancelled', 'timed_out'],
  completed: [],
  failed: [],
  cancelled: [],
  timed_out: [],
};

export const canTransition = (from: RunState, to: RunState): boolean => NEXT[from].includes(to);
export const isOpenRun = (s: RunState): s is OpenRunState => s === 'pending' || s === 'queued' || s === 'running';

/** The states a run may be in before moving to `to` (for the store's conditional update). */
export const statesBefore = (to: RunState): RunState[] => RUN_STATES.filter((s) => canTransition(s, to));

/**
 * What one step attempt is: `running` until it ends; `succeeded`/`failed` by its outcome;
 * `lost` when the server stopped while it ran (a restart found it running); `cancelled` when the
 * run ended (cancel, run timeout, session end) while it ran.
 */
export const ATTEMPT_STATES = ['running', 'succeeded', 'failed', 'lost', 'cancelled'] as const;
export type AttemptState = (typeof ATTEMPT_STATES)[number];

/** A workflow's status: its latest run's state, or `pending` before its first start. */
export type WorkflowStatus = RunState;
