/** renderStatus: `director workflow status` as a person reads it, durations in the CLI's one format. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { renderStatus } from '../../../cli/commands/workflow.ts';
import type { WorkflowStatus } from '../../../sdk/index.ts';

const status = (run: Record<string, unknown> | null) =>
  ({
    workflowId: 'wfl_1',
    name: 'build',
    sessionId: 'ses_1',
    status: run ? 'running' : 'created',
    totalSteps: 2,
    run,
  }) as unknown as WorkflowStatus;

const run = (durationMs: number | null, steps: { durationMs: number | null }[]) => ({
  id: 'run_1',
  number: 1,
  step: 1,
  progress: 50,
  retries: 0,
  maxRetries: 0,
  sandboxId: null,
  checkpoint: null,
  startedAt: '2026-01-01T00:00:00.000Z',
  durationMs,
  reason: null,
  steps: steps.map((s, i) => ({
    index: i + 1,
    type: 'execute',
    status: 'completed',
    attempts: [{ exitCode: 0, durationMs: s.durationMs }],
  })),
});

const line = (text: string, label: string) =>
  text
    .split('\n')
    .find((l) => l.startsWith(label))
    ?.replace(/\s+/g, ' ');

test('run and step durations in the human format; `-` when there is none (no run, still running, an attempt without one)', () => {
  assert.is(line(renderStatus(status(null)), 'Duration'), 'Duration -');
  const text = renderStatus(status(run(65_000, [{ durationMs: 1_250 }, { durationMs: null }])));
  assert.is(line(text, 'Duration'), 'Duration 1min 5s');
  const rows = text.split('\n').filter((l) => l.includes('execute'));
  assert.is(rows.length, 2, text);
  assert.ok(rows[0]!.trimEnd().endsWith('1.3s'), rows[0]);
  assert.ok(rows[1]!.trimEnd().endsWith('-'), rows[1]);
  assert.is(line(renderStatus(status(run(null, []))), 'Duration'), 'Duration -');
});

test.run();
