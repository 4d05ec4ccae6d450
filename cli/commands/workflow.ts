/** `director workflow ...`: run a workflow from a file and follow it, its status, list and cancel. */
import type { Command } from 'commander';
import type { CreateWorkflowRequest, StartWorkflowRequest, WorkflowInfo, WorkflowStatus } from '../../sdk/index.ts';
import { RUN_STATES, runHasEnded } from '../../sdk/index.ts';
import type { Context } from '../context.ts';
import { CliError, UsageError } from '../errors.ts';
import { age, duration, fields, printList, serialize, table, type Column } from '../output.ts';
import { collect, keyValues, positiveInt } from '../parse.ts';
import { describeFailure, RunProgress } from '../workflow-progress.ts';
import { readSpecFile } from './sandbox.ts';

const COLUMNS: Column<WorkflowInfo>[] = [
  { header: 'id', value: (w) => w.id },
  { header: 'name', value: (w) => w.name },
  { header: 'session', value: (w) => w.sessionId },
  { header: 'steps', value: (w) => w.steps.length },
  { header: 'status', value: (w) => w.status },
  { header: 'age', value: (w) => age(w.createdAt) },
];

type StepRow = NonNullable<WorkflowStatus['run']>['steps'][number];
const STEP_COLUMNS: Column<StepRow>[] = [
  { header: 'step', value: (s) => s.step },
  { header: 'type', value: (s) => s.type },
  { header: 'status', value: (s) => s.status },
  { header: 'attempts', value: (s) => s.attempts.length },
  { header: 'exit', value: (s) => s.attempts.at(-1)?.exitCode },
  { header: 'duration', value: (s) => duration(s.attempts.at(-1)?.durationMs) },
];

/** The status as `LABEL value` lines and a table of its steps. */
export function renderStatus(s: WorkflowStatus): string {
  const run = s.run;
  const head = fields([
    ['Workflow', s.workflowId],
    ['Name', s.name],
    ['Session', s.sessionId],
    ['Status', s.status],
    ['Run', run ? `${run.id} (#${run.number})` : 'never started'],
    ['Step', run ? `${run.step}/${s.totalSteps}` : undefined],
    ['Progress', run ? `${run.progress}%` : undefined],
    ['Retries', run ? `${run.retries}/${run.maxRetries}` : undefined],
    ['Sandbox', run?.sandboxId],
    ['Checkpoint', run?.checkpoint?.id],
    ['Started', run?.startedAt],
    ['Duration', duration(run?.durationMs)],
    ['Reason', run?.reason ? describeFailure(run.reason) : undefined],
  ]);
  return run?.steps.length ? `${head}\n${table(run.steps, STEP_COLUMNS)}` : head;
}

interface RunOptions {
  file: string;
  session?: string;
  env?: string[];
  idempotencyKey?: string;
}

export function registerWorkflow(program: Command, ctx: Context): void {
  const workflow = program
    .command('workflow')
    .alias('workflows')
    .description('Workflows: execute → verify → checkpoint steps in a sandbox, with retries that roll back');

  workflow
    .command('run')
    .description('Create a workflow from a file, start it and follow it to its end; exits 0 when it completed, 1 otherwise')
    .requiredOption(
      '-f, --file <file>',
      'workflow as JSON or YAML (- for stdin): the create request; its `environment` and `context` go to the start',
    )
    .option('--session <id>', "session to run in (default: the file's sessionId, else a new session named after the workflow)")
    .option('-e, --env <KEY=VALUE>', 'variable added to every command of the run (repeatable; never shown again)', collect)
    .option('--idempotency-key <key>', 'makes the start safe to retry')
    .addHelpText(
      'after',
      '\nOn a terminal a live line shows the step running; in a pipe one plain line per step that ended (on stderr).\nThe result goes to stdout (-o json|yaml: the final status). Ctrl-C stops following; the run goes on.',
    )
    .action(async (o: RunOptions, cmd: Command) => {
      const g = ctx.globals(cmd);
      const spec = readSpecFile(o.file);
      const { environment, context, ...create } = spec as Record<string, unknown> & StartWorkflowRequest;
      if (typeof create.name !== 'string' || !Array.isArray(create.steps))
        throw new UsageError(`${o.file}: a workflow needs a "name" and "steps"`);
      const env = { ...environment, ...keyValues('--env', o.env) };
      const client = ctx.client(g);
      let sessionId = o.session ?? (typeof create.sessionId === 'string' ? create.sessionId : undefined);
      if (!sessionId) {
        sessionId = (await client.sessions.create({ name: `workflow ${create.name}` })).id;
        ctx.note(`director: created session ${sessionId}`);
      }
      const wf = await ctx.progress('Creating workflow', () =>
        client.workflows.create({ ...(create as unknown as CreateWorkflowRequest), sessionId }),
      );
      const started = await client.workflows.start(
        wf.id,
        { ...(Object.keys(env).length ? { environment: env } : {}), ...(context ? { context } : {}) },
        o.idempotencyKey ? { idempotencyKey: o.idempotencyKey } : {},
      );
      const runId = started.run?.id;
      ctx.note(`director: workflow ${wf.id} run ${runId ?? '-'} ${started.status}`);
      const ac = new AbortController();
      const offInt = ctx.io.onSignal('SIGINT', () => ac.abort());
      const offTerm = ctx.io.onSignal('SIGTERM', () => ac.abort());
      const progress = new RunProgress(ctx.io.stderr);
      try {
        for await (const e of client.workflows.events(wf.id, { signal: ac.signal })) {
          if ((e.data as { runId?: unknown }).runId === runId) progress.event(e);
        }
      } catch (err) {
        if (!ac.signal.aborted) throw err;
        progress.stop();
        ctx.note(`director: stopped following; the run goes on: director workflow status ${wf.id}`);
        ctx.exitCode = 130;
        return;
      } finally {
        progress.stop();
        offInt();
        offTerm();
      }
      const status = await client.workflows.status(wf.id);
      const run = status.run;
      if (g.output !== 'table') ctx.out(serialize(g.output, status));
      else {
        const took = run?.durationMs !== null && run?.durationMs !== undefined ? ` in ${duration(run.durationMs)}` : '';
        ctx.out(`workflow ${wf.id} (${wf.name}) ${status.status}${took}\n`);
        if (run?.output && status.status === 'completed') ctx.out(run.output.endsWith('\n') ? run.output : `${run.output}\n`);
      }
      if (status.status !== 'completed') {
        throw new CliError(
          `WORKFLOW_${status.status.toUpperCase()}`,
          `workflow ${wf.id} ${status.status}: ${describeFailure(run?.reason)}`,
        );
      }
    });

  workflow
    .command('status')
    .description("A workflow's latest run: state, current step, attempts with exit codes and durations, and why it did not complete")
    .argument('<id>', 'workflow id (wf_...)')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const g = ctx.globals(cmd);
      const s = await ctx.client(g).workflows.status(id);
      ctx.out(g.output === 'table' ? renderStatus(s) : serialize(g.output, s));
    });

  workflow
    .command('ls')
    .alias('list')
    .description('List workflows, newest first')
    .option('--session <id>', 'only of this session')
    .option('--status <status>', `only whose latest run is in this state (${RUN_STATES.join(', ')})`)
    .option('--limit <n>', 'at most this many', '50')
    .action(async (o: { session?: string; status?: string; limit: string }, cmd: Command) => {
      const g = ctx.globals(cmd);
      if (o.status && !(RUN_STATES as readonly string[]).includes(o.status))
        throw new UsageError(`--status must be one of ${RUN_STATES.join(', ')}`);
      const page = await ctx.client(g).workflows.list({
        ...(o.session ? { sessionId: o.session } : {}),
        ...(o.status ? { status: o.status as WorkflowInfo['status'] } : {}),
        limit: Math.min(positiveInt('--limit', o.limit), 500),
      });
      printList(ctx.io.stdout, g.output, page.items, COLUMNS);
    });

  workflow
    .command('cancel')
    .description('Cancel the run going (its command is killed)')
    .argument('<id>', 'workflow id')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const g = ctx.globals(cmd);
      const s = await ctx.client(g).workflows.cancel(id);
      if (g.output === 'table') ctx.out(`workflow ${id} ${s.status}\n`);
      else ctx.out(serialize(g.output, s));
      if (!runHasEnded(s.status)) ctx.note(`director: the run is ${s.status}; it ends shortly`);
    });
}
