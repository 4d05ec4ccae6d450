import type { Clock } from '../../core/clock.ts';
import { conflict, validationError } from '../../core/errors.ts';
import { newId } from '../../core/ids.ts';
import { checkSchema } from '../../core/validate.ts';
import type { Config } from '../../runtime/config.ts';
import type { EventSink } from '../../runtime/events.ts';
import type { Caller } from '../../runtime/sandbox/manager.ts';
import type { DepartmentService } from '../departments/service.ts';
import type { EnvironmentSource } from '../sandboxes.ts';
import type { SessionService } from '../sessions/service.ts';
import { resolveBackoff } from './backoff.ts';
import { compileCriteria } from './criteria.ts';
import type { Feed } from './feed.ts';
import { runEventData, type Journal } from './journal.ts';
import type { LogEvent, RunLog } from './log.ts';
import type { RunSandboxes } from './ports.ts';
import type { RunManager } from './runs.ts';
import { CreateWorkflowSchema, STEP_SCHEMAS, StartWorkflowSchema, type StepSpec } from './schemas.ts';
import { isOpenRun, type WorkflowStatus } from './states.ts';
import type { RunRecord, WorkflowRecord, WorkflowStore, WorkflowTarget } from './store.ts';
import { statusView } from './view.ts';
import { notFoundFor } from '../../runtime/not-found.ts';

export interface WorkflowServiceDeps {
  store: WorkflowStore;
  log: RunLog;
  journal: Journal;
  runs: RunManager;
  feed: Feed;
  sessions: SessionService;
  departments: DepartmentService;
  sandboxes: RunSandboxes;
  environments?: EnvironmentSource;
  events: EventSink;
  clock: Clock;
  config: Pick<Config, 'maxExecTimeoutMs' | 'workflowDefaultTimeoutMs'>;
}

/** Events read from the log per query while following a workflow. */
const FOLLOW_PAGE = 256;

/**
 * Workflows: the Director Protocol's create, start, status and list, plus cancel and the event
 * stream. Everything that can be checked is checked at create (steps, criteria, timeouts,
 * references), so a run fails only for what happens while it runs. A workflow has at most one
 * run going at a time: a second start while one is pending, queued or running is refused with 409
 * naming it (retry the same start with its `Idempotency-Key` to get the first answer again).
 */
export class WorkflowService {
  readonly #d: WorkflowServiceDeps;
  constructor(deps: WorkflowServiceDeps) {
    this.#d = deps;
  }

  start(): Promise<void> {
    return this.#d.runs.start();
  }

  close(): Promise<void> {
    return this.#d.runs.close();
  }

  create(caller: Caller, raw: unknown): WorkflowRecord {
    checkSchema(CreateWorkflowSchema, raw);
    const steps = raw.steps.map((s, i) => checkStep(s, i, this.#d.config.maxExecTimeoutMs));
    steps.forEach((s, i) => {
      if (s.type === 'verify') compileCriteria(s.criteria, i, steps);
    });
    const session = this.#d.sessions.requireActive(caller, raw.sessionId);
    let departmentId: string | null = null;
    if (raw.departmentId) departmentId = this.#d.departments.ceilingsFor(caller, raw.departmentId, session).dep.id;
    const target: WorkflowTarget = {};
    if (raw.sandboxId) {
      if (raw.environmentId || raw.sandbox)
        throw validationError(
          raw.environmentId ? 'environmentId' : 'sandbox',
          'cannot be combined with sandboxId: a named sandbox already exists',
        );
      this.#sessionSandbox(caller, session.id, raw.sandboxId, (m) => validationError('sandboxId', m));
      target.sandboxId = raw.sandboxId;
    } else {
      if (raw.environmentId) {
        if (!this.#d.environments) throw validationError('environmentId', 'environments are not available on this instance');
        this.#d.environments.forSandbox(caller, raw.environmentId, 'environmentId');
        target.environmentId = raw.environmentId;
      }
      if (raw.sandbox) target.sandbox = raw.sandbox;
    }
    const cfg = raw.config ?? {};
    const now = this.#d.clock.nowMs();
    const rec: WorkflowRecord = {
      id: newId('wf'),
      workspace: caller.workspace,
      sessionId: session.id,
      departmentId,
      name: raw.name,
      description: raw.description ?? '',
      steps,
      config: {
        timeoutMs: cfg.timeout ?? this.#d.config.workflowDefaultTimeoutMs,
        maxRetries: cfg.maxRetries ?? 0,
        backoff: resolveBackoff(cfg.backoff),
      },
      target,
      metadata: raw.metadata ?? {},
      status: 'pending',
      lastRunId: null,
      createdBy: caller.actor ?? null,
      createdMs: now,
      updatedMs: now,
    };
    this.#d.store.insertWorkflow(rec);
    return rec;
  }

  /** A workflow of the caller's workspace (its session not terminated); 404 otherwise. */
  get(caller: Caller, id: string): WorkflowRecord {
    const rec = this.#d.store.getWorkflow(caller.workspace, id);
    if (!rec) throw notFoundFor(this.#d.events, caller, 'workflow', id, this.#d.store.workflowById(id)?.workspace);
    return rec;
  }

  list(caller: Caller, f: { sessionId?: string; status?: WorkflowStatus; limit: number; offset: number }) {
    if (f.sessionId) this.#d.sessions.get(caller, f.sessionId);
    return this.#d.store.listWorkflows(caller.workspace, f);
  }

  /**
   * Starts a run: stored `pending` first, then scheduled at once (`running`, or `queued` while its
   * department or the instance is full). The session must be active.
   */
  startRun(caller: Caller, id: string, raw: unknown): RunRecord {
    const body = raw ?? {};
    checkSchema(StartWorkflowSchema, body);
    const wf = this.get(caller, id);
    this.#d.sessions.requireActive(caller, wf.sessionId);
    if (wf.target.sandboxId) this.#sessionSandbox(caller, wf.sessionId, wf.target.sandboxId, (m) => conflict(m, { field: 'sandboxId' }));
    const run = this.#d.journal.tx(wf.id, (t) => {
      const latest = wf.lastRunId ? this.#d.store.runById(wf.lastRunId) : null;
      if (latest && isOpenRun(latest.state))
        throw conflict(`workflow ${wf.id} has a run going (${latest.id}, ${latest.state}); cancel it or wait for it to end`, {
          runId: latest.id,
          status: latest.state,
        });
      const now = this.#d.clock.nowMs();
      const r = this.#d.store.insertRun({
        id: newId('run'),
        workflowId: wf.id,
        workspace: wf.workspace,
        sessionId: wf.sessionId,
        departmentId: wf.departmentId,
        state: 'pending',
        actor: caller.actor ?? null,
        environment: body.environment ?? {},
        context: body.context ?? {},
        step: 0,
        round: 0,
        checkpoint: null,
        restoreId: null,
        nextMs: null,
        sandboxId: wf.target.sandboxId ?? null,
        ownSandbox: !wf.target.sandboxId,
        reason: null,
        output: null,
        createdMs: now,
        queuedMs: null,
        startedMs: null,
        deadlineMs: null,
        endedMs: null,
        updatedMs: now,
      });
      t.append(r.id, 'run', runEventData(wf, r));
      return r;
    });
    this.#d.runs.pump();
    return this.#d.store.runById(run.id)!;
  }

  /** Cancels the workflow's run that is going (409 when none is); what it runs is killed. */
  cancel(caller: Caller, id: string): RunRecord {
    const wf = this.get(caller, id);
    const latest = wf.lastRunId ? this.#d.store.runById(wf.lastRunId) : null;
    if (!latest || !isOpenRun(latest.state))
      throw conflict(`workflow ${wf.id} has no run going${latest ? ` (its last run is ${latest.state})` : ''}`, { status: wf.status });
    const ended = this.#d.runs.cancel(latest.id, {
      code: 'cancelled',
      step: latest.step + 1,
      message: `cancelled by ${caller.actor ?? 'request'}`,
    });
    if (!ended) {
      const cur = this.#d.store.runById(latest.id)!;
      throw conflict(`run ${latest.id} ended (${cur.state}) before it could be cancelled`, { status: cur.state });
    }
    return ended;
  }

  status(caller: Caller, id: string) {
    const wf = this.get(caller, id);
    const run = wf.lastRunId ? this.#d.store.runById(wf.lastRunId) : null;
    return statusView(wf, run, run ? this.#d.log.attemptsOf(run.id) : [], this.#d.clock.nowMs());
  }

  /**
   * The workflow's event log after `afterSeq`, then live, until its latest run has ended and
   * every event is out (a workflow not started yet is followed until its run ends). `signal`
   * ends it early (the client went away); that never touches the run.
   */
  async *follow(caller: Caller, id: string, afterSeq: number, signal: AbortSignal): AsyncGenerator<LogEvent> {
    this.get(caller, id);
    let cursor = afterSeq;
    while (!signal.aborted) {
      const page = this.#d.log.eventsAfter(id, cursor, FOLLOW_PAGE);
      for (const e of page) {
        cursor = e.seq;
        yield e;
      }
      if (page.length === FOLLOW_PAGE) continue;
      const wf = this.#d.store.workflowById(id);
      if (!wf) return;
      if (wf.lastRunId && !isOpenRun(wf.status) && !this.#d.runs.isActive(wf.lastRunId)) {
        // Everything up to the end was read above (the end is logged with the state change); one more read covers a race.
        const tail = this.#d.log.eventsAfter(id, cursor, FOLLOW_PAGE);
        if (!tail.length) return;
        continue;
      }
      await this.#d.feed.wait(id, signal);
    }
  }

  /** Phase 0 of a session's end. */
  endSession(sessionId: string, to: string): Promise<void> {
    return this.#d.runs.endSession(sessionId, to);
  }

  /** Checks that `sandboxId` is a running sandbox of the session; `refuse` builds the error (400 at create, 409 at start). */
  #sessionSandbox(caller: Caller, sessionId: string, sandboxId: string, refuse: (m: string) => Error): void {
    const rec = this.#d.sandboxes.byId(sandboxId);
    if (!rec || rec.workspace !== caller.workspace || rec.status === 'deleted') throw refuse(`no sandbox ${sandboxId} in this workspace`);
    if (rec.owner.sessionId !== sessionId) throw refuse(`sandbox ${sandboxId} does not belong to session ${sessionId}`);
    if (rec.status !== 'running') throw refuse(`sandbox ${sandboxId} is ${rec.status}; a workflow runs in a running sandbox`);
  }
}

/** Checks one step against its type's schema (errors name `steps[i]...`) and its timeout against the operator's limit. */
function checkStep(raw: unknown, i: number, maxTimeoutMs: number): StepSpec {
  const type = (raw as { type?: unknown }).type;
  if (typeof type !== 'string' || !Object.hasOwn(STEP_SCHEMAS, type))
    throw validationError(`steps[${i}].type`, 'must be one of execute, verify, checkpoint');
  checkSchema(STEP_SCHEMAS[type as keyof typeof STEP_SCHEMAS], raw, `steps[${i}]`);
  const step = raw;
  if ('timeout' in step && step.timeout !== undefined && step.timeout > maxTimeoutMs)
    throw validationError(`steps[${i}].timeout`, `must be at most ${maxTimeoutMs} ms (DIRECTOR_MAX_EXEC_TIMEOUT_MS)`);
  return step;
}
