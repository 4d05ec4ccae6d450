import type { Db } from '../../core/db.ts';
import type { AttemptState } from './states.ts';

export type AttemptKind = 'execute' | 'verify' | 'checkpoint' | 'rollback';

/** One attempt at a step (or a rollback), recorded before it runs and completed when it ends. */
export interface AttemptRecord {
  runId: string;
  /** 1-based position in the run's history. */
  n: number;
  /** 0-based step index (for a rollback: the step the run resumes at). */
  step: number;
  kind: AttemptKind;
  /** The retry round it ran in (0: before any retry). */
  round: number;
  state: AttemptState;
  exitCode: number | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
  truncated: boolean;
  /** Criteria verdicts, the checkpoint id, an error message... */
  detail: Record<string, unknown>;
  startedMs: number;
  endedMs: number | null;
}

export interface AttemptResult {
  state: Exclude<AttemptState, 'running'>;
  exitCode?: number | null;
  timedOut?: boolean;
  stdout?: string;
  stderr?: string;
  truncated?: boolean;
  detail?: Record<string, unknown>;
}

/** One entry of a workflow's event log: what its SSE stream sends, with `seq` as the event id. */
export interface LogEvent {
  workflowId: string;
  seq: number;
  runId: string | null;
  type: string;
  data: Record<string, unknown>;
  tsMs: number;
}

interface AttemptRow {
  run_id: string;
  n: number;
  step: number;
  kind: string;
  round: number;
  state: string;
  exit_code: number | null;
  timed_out: number;
  stdout: string;
  stderr: string;
  truncated: number;
  detail: string;
  started_ms: number;
  ended_ms: number | null;
}

const attemptFromRow = (r: AttemptRow): AttemptRecord => ({
  runId: r.run_id,
  n: r.n,
  step: r.step,
  kind: r.kind as AttemptKind,
  round: r.round,
  state: r.state as AttemptState,
  exitCode: r.exit_code,
  timedOut: r.timed_out === 1,
  stdout: r.stdout,
  stderr: r.stderr,
  truncated: r.truncated === 1,
  detail: JSON.parse(r.detail) as Record<string, unknown>,
  startedMs: r.started_ms,
  endedMs: r.ended_ms,
});

/**
 * A run's step attempts and each workflow's event log. Event ids (`seq`) count from 1 per
 * workflow with no holes: every event is appended in the transaction of the change it reports,
 * so the log and the state never disagree, and a client resuming with `Last-Event-ID` gets
 * exactly what came after.
 */
export class RunLog {
  readonly #db: Db;
  constructor(db: Db) {
    this.#db = db;
  }

  beginAttempt(a: Pick<AttemptRecord, 'runId' | 'step' | 'kind' | 'round' | 'startedMs'>): AttemptRecord {
    const n =
      (this.#db.sql.prepare('SELECT COALESCE(MAX(n), 0) AS n FROM workflow_attempts WHERE run_id = ?').get(a.runId) as { n: number }).n + 1;
    this.#db.sql
      .prepare(`INSERT INTO workflow_attempts (run_id, n, step, kind, round, state, started_ms) VALUES (?, ?, ?, ?, ?, 'running', ?)`)
      .run(a.runId, n, a.step, a.kind, a.round, a.startedMs);
    return this.attempt(a.runId, n)!;
  }

  /** Completes an attempt still running; false when it already ended (a restart marked it lost). */
  finishAttempt(runId: string, n: number, endedMs: number, r: AttemptResult): boolean {
    return this.#writeResult(runId, n, 'running', r, { state: r.state, endedMs });
  }

  /**
   * Adds what a step stopped by its run's end left (its output, the checkpoint it finished taking,
   * a restore's error) to the attempt that end settled as `cancelled`; its state and end time stay.
   */
  recordStopped(runId: string, n: number, r: Omit<AttemptResult, 'state'>): void {
    this.#writeResult(runId, n, 'cancelled', r, null);
  }

  /** Writes an attempt's result while it is in state `from`, with its new state and end time when given. */
  #writeResult(
    runId: string,
    n: number,
    from: AttemptState,
    r: Omit<AttemptResult, 'state'>,
    end: { state: AttemptState; endedMs: number } | null,
  ): boolean {
    const res = this.#db.sql
      .prepare(
        `UPDATE workflow_attempts SET exit_code = ?, timed_out = ?, stdout = ?, stderr = ?, truncated = ?, detail = ?${end ? ', state = ?, ended_ms = ?' : ''}
         WHERE run_id = ? AND n = ? AND state = ?`,
      )
      .run(
        r.exitCode ?? null,
        r.timedOut ? 1 : 0,
        r.stdout ?? '',
        r.stderr ?? '',
        r.truncated ? 1 : 0,
        JSON.stringify(r.detail ?? {}),
        ...(end ? [end.state, end.endedMs] : []),
        runId,
        n,
        from,
      );
    return Number(res.changes) > 0;
  }

  attempt(runId: string, n: number): AttemptRecord | null {
    const row = this.#db.sql.prepare('SELECT * FROM workflow_attempts WHERE run_id = ? AND n = ?').get(runId, n) as AttemptRow | undefined;
    return row ? attemptFromRow(row) : null;
  }

  attemptsOf(runId: string): AttemptRecord[] {
    return (this.#db.sql.prepare('SELECT * FROM workflow_attempts WHERE run_id = ? ORDER BY n').all(runId) as unknown as AttemptRow[]).map(
      attemptFromRow,
    );
  }

  /** The run's attempts still marked running (at most one: steps run one at a time). */
  runningAttempts(runId: string): AttemptRecord[] {
    return (
      this.#db.sql
        .prepare("SELECT * FROM workflow_attempts WHERE run_id = ? AND state = 'running' ORDER BY n")
        .all(runId) as unknown as AttemptRow[]
    ).map(attemptFromRow);
  }

  /** The latest attempt of step `step` (any kind but rollback) in the run. */
  latestOfStep(runId: string, step: number): AttemptRecord | null {
    const row = this.#db.sql
      .prepare("SELECT * FROM workflow_attempts WHERE run_id = ? AND step = ? AND kind != 'rollback' ORDER BY n DESC LIMIT 1")
      .get(runId, step) as AttemptRow | undefined;
    return row ? attemptFromRow(row) : null;
  }

  /** Appends an event to the workflow's log (in the caller's transaction, if any); returns its seq. */
  append(workflowId: string, runId: string | null, type: string, data: Record<string, unknown>, tsMs: number): number {
    const row = this.#db.sql
      .prepare(
        `INSERT INTO workflow_events (workflow_id, seq, run_id, type, data, ts_ms)
         SELECT ?, COALESCE(MAX(seq), 0) + 1, ?, ?, ?, ? FROM workflow_events WHERE workflow_id = ? RETURNING seq`,
      )
      .get(workflowId, runId, type, JSON.stringify(data), tsMs, workflowId) as { seq: number };
    return row.seq;
  }

  eventsAfter(workflowId: string, afterSeq: number, limit: number): LogEvent[] {
    const rows = this.#db.sql
      .prepare('SELECT * FROM workflow_events WHERE workflow_id = ? AND seq > ? ORDER BY seq LIMIT ?')
      .all(workflowId, afterSeq, limit) as {
      workflow_id: string;
      seq: number;
      run_id: string | null;
      type: string;
      data: string;
      ts_ms: number;
    }[];
    return rows.map((r) => ({
      workflowId: r.workflow_id,
      seq: r.seq,
      runId: r.run_id,
      type: r.type,
      data: JSON.parse(r.data) as Record<string, unknown>,
      tsMs: r.ts_ms,
    }));
  }
}
