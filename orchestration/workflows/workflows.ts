/**
 * Assembles the workflow engine: store, run log, journal, runner, run manager and service.
 * Nothing here is module-global. See `service.ts` for the API-facing rules, `runner.ts` for how a
 * run proceeds, `runs.ts` for scheduling and restarts, `plan.ts` for retries and rollback.
 */
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import type { Clock } from '../../core/clock.ts';
import type { Db } from '../../core/db.ts';
import type { Config } from '../../runtime/config.ts';
import type { EventSink } from '../../runtime/events.ts';
import type { DepartmentService } from '../departments/service.ts';
import type { DepartmentStore } from '../departments/store.ts';
import type { EnvironmentSource } from '../sandboxes.ts';
import type { SessionService } from '../sessions/service.ts';
import type { TaskTracker } from '../tasks.ts';
import { Feed } from './feed.ts';
import { Journal } from './journal.ts';
import { RunLog } from './log.ts';
import { createWorkflowMetrics } from './metrics.ts';
import type { RunSandboxes, StepExecutor, WorkflowCheckpoints } from './ports.ts';
import { Runner } from './runner.ts';
import { Steps } from './steps.ts';
import { RunManager } from './runs.ts';
import { WorkflowService } from './service.ts';
import { WorkflowStore } from './store.ts';

export interface WorkflowDeps {
  db: Db;
  config: Config;
  clock: Clock;
  logger: Logger;
  events: EventSink;
  sessions: SessionService;
  departments: DepartmentService;
  departmentStore: DepartmentStore;
  tasks: TaskTracker;
  executor: StepExecutor;
  checkpoints: WorkflowCheckpoints;
  sandboxes: RunSandboxes;
  environments?: EnvironmentSource;
  /** Prometheus registry for the workflow metrics (the app's); a private one when absent. */
  registry?: Registry;
}

export function createWorkflows(d: WorkflowDeps): WorkflowService {
  const store = new WorkflowStore(d.db);
  const log = new RunLog(d.db);
  const feed = new Feed();
  const openCounts = d.db.sql.prepare(
    "SELECT state, count(*) AS n FROM workflow_runs WHERE state IN ('pending', 'queued', 'running') GROUP BY state",
  );
  const metrics = createWorkflowMetrics(d.registry ?? new Registry(), () =>
    Object.fromEntries((openCounts.all() as { state: string; n: number }[]).map((r) => [r.state, r.n])),
  );
  const journal = new Journal({ store, log, feed, events: d.events, clock: d.clock, metrics });
  const steps = new Steps({ log, journal, config: d.config, executor: d.executor, checkpoints: d.checkpoints });
  const runner = new Runner({
    store,
    log,
    journal,
    clock: d.clock,
    steps,
    checkpoints: d.checkpoints,
    sandboxes: d.sandboxes,
    tasks: d.tasks,
    metrics,
    logger: d.logger,
  });
  const runs = new RunManager({
    store,
    log,
    journal,
    runner,
    clock: d.clock,
    config: d.config,
    executor: d.executor,
    sandboxes: d.sandboxes,
    departmentLimit: (id) => {
      const dep = d.departmentStore.byId(id);
      return dep && dep.deletedMs === null ? dep.config.maxConcurrentTasks : null;
    },
    logger: d.logger,
  });
  return new WorkflowService({
    store,
    log,
    journal,
    runs,
    feed,
    sessions: d.sessions,
    departments: d.departments,
    sandboxes: d.sandboxes,
    ...(d.environments ? { environments: d.environments } : {}),
    events: d.events,
    clock: d.clock,
    config: d.config,
  });
}
