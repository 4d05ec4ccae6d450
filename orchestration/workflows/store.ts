import type { Db } from '../../core/db.ts';
import type { Backoff } from './backoff.ts';
import type { FailureReason } from './plan.ts';
import type { StepSpec } from './schemas.ts';
import { OPEN_RUN_STATES, statesBefore, type RunState, type WorkflowStatus } from './states.ts';

export interface WorkflowConfig {
  timeoutMs: number;
  maxRetries: number;
  backoff: Backoff;
}

/** Where a workflow's runs execute: a named sandbox of the session, or a sandbox made per run. */
export interface WorkflowTarget {
  sandboxId?: string;
  environmentId?: string;
  sandbox?: Record<string, unknown>;
}

export interface WorkflowRecord {
  id: string;
  workspace: string;
  sessionId: string;
  departmentId: string | null;
  name: string;
  description: string;
  steps: StepSpec[];
  config: WorkflowConfig;
  target: WorkflowTarget;
  metadata: Record<string, unknown>;
  /** The latest run's state; `pending` before the first start. */
  status: WorkflowStatus;
  lastRunId: string | null;
  createdBy: string | null;
  createdMs: number;
  updatedMs: number;
}

export interface RunRecord {
  id: string;
  workflowId: string;
  workspace: string;
  sessionId: string;
  departmentId: string | null;
  /** 1 for a workflow's first run. */
  number: number;
  state: RunState;
  /** Who started it (the actor every step runs as). */
  actor: string | null;
  /** The start's variables; kept to resume after a restart, never returned. */
  environment: Record<string, string>;
  context: Record<string, unknown>;
  /** 0-based index of the step running or to run next. */
  step: number;
  /** Retries used. */
  round: number;
  /** The run's last checkpoint. */
  checkpoint: { step: number; id: string } | null;
  /** A checkpoint to restore before the run continues (a rollback decided, not yet done). */
  restoreId: string | null;
  /** The run continues not before this time (backoff). */
  nextMs: number | null;
  sandboxId: string | null;
  /** True when the run made its sandbox (and removes it when it ends). */
  ownSandbox: boolean;
  reason: FailureReason | null;
  /** The result's output (the last execute's stdout excerpt, or the failure message). */
  output: string | null;
  createdMs: number;
  queuedMs: number | null;
  startedMs: number | null;
  deadlineMs: number | null;
  endedMs: number | null;
  updatedMs: number;
}

interface WorkflowRow {
  id: string;
  workspace: string;
  session_id: string;
  department_id: string | null;
  name: string;
  description: string;
  steps: string;
  config: string;
  target: string;
  metadata: string;
  status: string;
  last_run_id: string | null;
  created_by: string | null;
  created_ms: number;
  updated_ms: number;
}

interface RunRow {
  id: string;
  workflow_id: string;
  workspace: string;
  session_id: string;
  department_id: string | null;
  number: number;
  state: string;
  actor: string | null;
  environment: string;
  context: string;
  step: number;
  round: number;
  checkpoint_id: string | null;
  checkpoint_step: number | null;
  restore_id: string | null;
  next_ms: number | null;
  sandbox_id: string | null;
  own_sandbox: number;
  reason: string | null;
  output: string | null;
  created_ms: number;
  queued_ms: number | null;
  started_ms: number | null;
  deadline_ms: number | null;
  ended_ms: number | null;
  updated_ms: number;
}

const workflowFromRow = (r: WorkflowRow): WorkflowRecord => ({
  id: r.id,
  workspace: r.workspace,
  sessionId: r.session_id,
  departmentId: r.department_id,
  name: r.name,
  description: r.description,
  steps: JSON.parse(r.steps) as StepSpec[],
  config: JSON.parse(r.config) as WorkflowConfig,
  target: JSON.parse(r.target) as WorkflowTarget,
  metadata: JSON.parse(r.metadata) as Record<string, unknown>,
  status: r.status as WorkflowStatus,
  lastRunId: r.last_run_id,
  createdBy: r.created_by,
  createdMs: r.created_ms,
  updatedMs: r.updated_ms,
});

const runFromRow = (r: RunRow): RunRecord => ({
  id: r.id,
  workflowId: r.workflow_id,
  workspace: r.workspace,
  sessionId: r.session_id,
  departmentId: r.department_id,
  number: r.number,
  state: r.state as RunState,
  actor: r.actor,
  environment: JSON.parse(r.environment) as Record<string, string>,
  context: JSON.parse(r.context) as Record<string, unknown>,
  step: r.step,
  round: r.round,
  checkpoint: r.checkpoint_id !== null && r.checkpoint_step !== null ? { step: r.checkpoint_step, id: r.checkpoint_id } : null,
  restoreId: r.restore_id,
  nextMs: r.next_ms,
  sandboxId: r.sandbox_id,
  ownSandbox: r.own_sandbox === 1,
  reason: r.reason === null ? null : (JSON.parse(r.reason) as FailureReason),
  output: r.output,
  createdMs: r.created_ms,
  queuedMs: r.queued_ms,
  startedMs: r.started_ms,
  deadlineMs: r.deadline_ms,
  endedMs: r.ended_ms,
  updatedMs: r.updated_ms,
});

/** Fields of a run that change as it runs. */
export type RunPatch = Partial<
  Pick<
    RunRecord,
    | 'step'
    | 'round'
    | 'checkpoint'
    | 'restoreId'
    | 'nextMs'
    | 'sandboxId'
    | 'reason'
    | 'output'
    | 'queuedMs'
    | 'startedMs'
    | 'deadlineMs'
    | 'endedMs'
  >
>;

/** Plain columns of {@link RunPatch}; `checkpoint` (two columns) and `reason` (JSON) are written apart. */
const COLUMNS: Record<Exclude<keyof RunPatch, 'checkpoint' | 'reason'>, string> = {
  step: 'step',
  round: 'round',
  restoreId: 'restore_id',
  nextMs: 'next_ms',
  sandboxId: 'sandbox_id',
  output: 'output',
  queuedMs: 'queued_ms',
  startedMs: 'started_ms',
  deadlineMs: 'deadline_ms',
  endedMs: 'ended_ms',
};

const toColumns = (p: RunPatch): [string, string | number | null][] => {
  const out: [string, string | number | null][] = [];
  for (const [k, v] of Object.entries(p) as [keyof RunPatch, unknown][]) {
    if (k === 'checkpoint') {
      const c = v as RunRecord['checkpoint'];
      out.push(['checkpoint_id', c?.id ?? null], ['checkpoint_step', c?.step ?? null]);
    } else if (k === 'reason') out.push(['reason', v === null ? null : JSON.stringify(v)]);
    else out.push([COLUMNS[k], v as string | number | null]);
  }
  return out;
};

const OPEN = OPEN_RUN_STATES.map((s) => `'${s}'`).join(', ');

/**
 * Workflows and their runs in the embedded store. Reads through the API take the workspace:
 * another workspace's workflow is a missing one. A run's state changes only through
 * {@link transition}, a conditional update checked against the lifecycle in `states.ts`; the
 * workflow's `status` follows its latest run in the same transaction.
 */
export class WorkflowStore {
  readonly db: Db;
  constructor(db: Db) {
    this.db = db;
  }

  insertWorkflow(r: WorkflowRecord): void {
    this.db.sql
      .prepare(
        `INSERT INTO workflows (id, workspace, session_id, department_id, name, description, steps, config, target, metadata, status,
           last_run_id, created_by, created_ms, updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        r.id,
        r.workspace,
        r.sessionId,
        r.departmentId,
        r.name,
        r.description,
        JSON.stringify(r.steps),
        JSON.stringify(r.config),
        JSON.stringify(r.target),
        JSON.stringify(r.metadata),
        r.status,
        r.lastRunId,
        r.createdBy,
        r.createdMs,
        r.updatedMs,
      );
  }

  workflowById(id: string): WorkflowRecord | null {
    const row = this.db.sql.prepare('SELECT * FROM workflows WHERE id = ?').get(id) as WorkflowRow | undefined;
    return row ? workflowFromRow(row) : null;
  }

  /** A workflow `workspace` can see whose session is not terminated. */
  getWorkflow(workspace: string, id: string): WorkflowRecord | null {
    const row = this.db.sql
      .prepare(
        `SELECT w.* FROM workflows w JOIN sessions s ON s.id = w.session_id
         WHERE w.id = ? AND w.workspace = ? AND s.status != 'terminated'`,
      )
      .get(id, workspace) as WorkflowRow | undefined;
    return row ? workflowFromRow(row) : null;
  }

  listWorkflows(
    workspace: string,
    f: { sessionId?: string; status?: WorkflowStatus; limit: number; offset: number },
  ): { items: WorkflowRecord[]; total: number } {
    const where = ['w.workspace = ?', "s.status != 'terminated'"];
    const args: (string | number)[] = [workspace];
    if (f.sessionId) {
      where.push('w.session_id = ?');
      args.push(f.sessionId);
    }
    if (f.status) {
      where.push('w.status = ?');
      args.push(f.status);
    }
    const from = `FROM workflows w JOIN sessions s ON s.id = w.session_id WHERE ${where.join(' AND ')}`;
    const total = (this.db.sql.prepare(`SELECT count(*) AS n ${from}`).get(...args) as { n: number }).n;
    const rows = this.db.sql
      .prepare(`SELECT w.* ${from} ORDER BY w.created_ms DESC, w.id LIMIT ? OFFSET ?`)
      .all(...args, f.limit, f.offset) as unknown as WorkflowRow[];
    return { items: rows.map(workflowFromRow), total };
  }

  /** Inserts a run as the workflow's latest (its number is the next one), in the caller's transaction. */
  insertRun(r: Omit<RunRecord, 'number'>): RunRecord {
    const number =
      (
        this.db.sql.prepare('SELECT COALESCE(MAX(number), 0) AS n FROM workflow_runs WHERE workflow_id = ?').get(r.workflowId) as {
          n: number;
        }
      ).n + 1;
    this.db.sql
      .prepare(
        `INSERT INTO workflow_runs (id, workflow_id, workspace, session_id, department_id, number, state, actor, environment, context,
           step, round, own_sandbox, sandbox_id, created_ms, updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, ?, ?, ?, ?)`,
      )
      .run(
        r.id,
        r.workflowId,
        r.workspace,
        r.sessionId,
        r.departmentId,
        number,
        r.state,
        r.actor,
        JSON.stringify(r.environment),
        JSON.stringify(r.context),
        r.ownSandbox ? 1 : 0,
        r.sandboxId,
        r.createdMs,
        r.updatedMs,
      );
    this.db.sql
      .prepare('UPDATE workflows SET status = ?, last_run_id = ?, updated_ms = ? WHERE id = ?')
      .run(r.state, r.id, r.updatedMs, r.workflowId);
    return this.runById(r.id)!;
  }

  runById(id: string): RunRecord | null {
    const row = this.db.sql.prepare('SELECT * FROM workflow_runs WHERE id = ?').get(id) as RunRow | undefined;
    return row ? runFromRow(row) : null;
  }

  /** Runs not ended (pending, queued, running), oldest first. */
  openRuns(): RunRecord[] {
    return (
      this.db.sql.prepare(`SELECT * FROM workflow_runs WHERE state IN (${OPEN}) ORDER BY created_ms, id`).all() as unknown as RunRow[]
    ).map(runFromRow);
  }

  openRunsOfSession(sessionId: string): RunRecord[] {
    return (
      this.db.sql
        .prepare(`SELECT * FROM workflow_runs WHERE session_id = ? AND state IN (${OPEN}) ORDER BY created_ms, id`)
        .all(sessionId) as unknown as RunRow[]
    ).map(runFromRow);
  }

  /** Ended runs that made their own sandbox: their sandbox may outlive a crash and is removed at start. */
  endedWithOwnSandbox(): RunRecord[] {
    return (
      this.db.sql
        .prepare(`SELECT * FROM workflow_runs WHERE own_sandbox = 1 AND sandbox_id IS NOT NULL AND state NOT IN (${OPEN})`)
        .all() as unknown as RunRow[]
    ).map(runFromRow);
  }

  /** Running runs: how many, and how many per department. */
  runningCounts(): { total: number; byDepartment: Map<string, number> } {
    const rows = this.db.sql
      .prepare(`SELECT department_id AS d, count(*) AS n FROM workflow_runs WHERE state = 'running' GROUP BY department_id`)
      .all() as { d: string | null; n: number }[];
    const byDepartment = new Map<string, number>();
    let total = 0;
    for (const r of rows) {
      total += r.n;
      if (r.d) byDepartment.set(r.d, r.n);
    }
    return { total, byDepartment };
  }

  /**
   * Moves a run to `to` if the lifecycle allows it from its current state, with `patch`, and the
   * workflow's status with it; returns the updated run, or null when it does not (another party
   * moved it first). Runs in the caller's transaction when there is one.
   */
  transition(id: string, to: RunState, nowMs: number, patch: RunPatch = {}): RunRecord | null {
    return this.db.tx(() => {
      const from = statesBefore(to);
      const cols = toColumns(patch);
      const res = this.db.sql
        .prepare(
          `UPDATE workflow_runs SET state = ?, updated_ms = ?${cols.map(([c]) => `, ${c} = ?`).join('')}
           WHERE id = ? AND state IN (${from.map(() => '?').join(', ')})`,
        )
        .run(to, nowMs, ...cols.map(([, v]) => v), id, ...from);
      if (Number(res.changes) === 0) return null;
      const run = this.runById(id)!;
      this.db.sql
        .prepare('UPDATE workflows SET status = ?, updated_ms = ? WHERE id = ? AND last_run_id = ?')
        .run(to, nowMs, run.workflowId, id);
      return run;
    });
  }

  /** Changes an open run's position (step, round, checkpoint, backoff...); false once the run has ended. */
  patchRun(id: string, nowMs: number, patch: RunPatch): boolean {
    const cols = toColumns(patch);
    const res = this.db.sql
      .prepare(`UPDATE workflow_runs SET updated_ms = ?${cols.map(([c]) => `, ${c} = ?`).join('')} WHERE id = ? AND state IN (${OPEN})`)
      .run(nowMs, ...cols.map(([, v]) => v), id);
    return Number(res.changes) > 0;
  }

  /** Notes that an ended run's own sandbox is gone (so a restart does not look for it again). */
  forgetSandbox(id: string): void {
    this.db.sql.prepare('UPDATE workflow_runs SET own_sandbox = 0 WHERE id = ?').run(id);
  }
}
