import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { RUN_STATES } from './states.ts';

/**
 * Prometheus metrics of workflow runs, in the app's registry. Label values are bounded: run
 * outcomes and step types only, never ids or names.
 */
export interface WorkflowMetrics {
  runs: Counter<'outcome'>;
  stepSeconds: Histogram<'type'>;
  retries: Counter;
  rollbacks: Counter;
}

const STEP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/** `openRuns` is read at scrape time (open runs by state). */
export function createWorkflowMetrics(registry: Registry, openRuns: () => Record<string, number>): WorkflowMetrics {
  new Gauge({
    name: 'director_workflow_runs_open',
    help: 'Workflow runs not yet ended, by state (pending, queued, running).',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const counts = openRuns();
      for (const state of RUN_STATES.slice(0, 3)) this.set({ state }, counts[state] ?? 0);
    },
  });
  return {
    runs: new Counter({
      name: 'director_workflow_runs_total',
      help: 'Workflow runs ended, by outcome (completed, failed, cancelled, timed_out).',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    stepSeconds: new Histogram({
      name: 'director_workflow_step_duration_seconds',
      help: 'Duration of workflow step attempts, by type (execute, verify, checkpoint, rollback).',
      labelNames: ['type'],
      buckets: STEP_BUCKETS,
      registers: [registry],
    }),
    retries: new Counter({
      name: 'director_workflow_retries_total',
      help: 'Retries scheduled after a failed verify or an execute lost to a restart.',
      registers: [registry],
    }),
    rollbacks: new Counter({
      name: 'director_workflow_rollbacks_total',
      help: "Checkpoints restored into a run's sandbox before a retry.",
      registers: [registry],
    }),
  };
}
