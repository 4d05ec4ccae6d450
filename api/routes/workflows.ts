import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { validationError } from '../../core/errors.ts';
import { CreateWorkflowSchema, StartWorkflowSchema } from '../../orchestration/workflows/schemas.ts';
import type { WorkflowService } from '../../orchestration/workflows/service.ts';
import { RUN_STATES } from '../../orchestration/workflows/states.ts';
import { workflowView } from '../../orchestration/workflows/view.ts';
import { callerOf, send } from '../context.ts';
import { AnyObject, Envelope, IdParams, Page, PageQuery, STANDARD_ERRORS } from '../schemas.ts';
import { streamEvents } from './sse.ts';

const Status = Type.Union(
  RUN_STATES.map((s) => Type.Literal(s)),
  { description: "The latest run's state; `pending` before the first start" },
);
const Time = Type.Union([Type.String(), Type.Null()]);

const WorkflowSchema = Type.Object(
  {
    id: Type.String(),
    sessionId: Type.String(),
    departmentId: Type.Union([Type.String(), Type.Null()]),
    name: Type.String(),
    description: Type.String(),
    steps: Type.Array(AnyObject),
    config: Type.Object({
      timeout: Type.Integer(),
      maxRetries: Type.Integer(),
      backoff: Type.Object({ initialInterval: Type.Integer(), coefficient: Type.Number(), maxInterval: Type.Integer() }),
    }),
    sandboxId: Type.Union([Type.String(), Type.Null()]),
    environmentId: Type.Union([Type.String(), Type.Null()]),
    sandbox: Type.Union([AnyObject, Type.Null()]),
    metadata: AnyObject,
    status: Status,
    lastRunId: Type.Union([Type.String(), Type.Null()]),
    createdAt: Type.String(),
    updatedAt: Type.String(),
  },
  { additionalProperties: false },
);

const Attempt = Type.Object(
  {
    attempt: Type.Integer({ description: "Position in the run's history" }),
    round: Type.Integer({ description: 'The retry round it ran in (0: before any retry)' }),
    status: Type.String({ description: '`running`, `completed`, `failed`, `interrupted` (lost to a server restart) or `cancelled`' }),
    exitCode: Type.Union([Type.Integer(), Type.Null()]),
    timedOut: Type.Boolean(),
    durationMs: Type.Union([Type.Integer(), Type.Null()]),
    startedAt: Type.String(),
    endedAt: Time,
    stdout: Type.String({ description: 'The first DIRECTOR_WORKFLOW_OUTPUT_LIMIT_BYTES of stdout' }),
    stderr: Type.String(),
    truncated: Type.Boolean({ description: 'Output was cut (by that limit or by DIRECTOR_EXEC_OUTPUT_LIMIT_BYTES)' }),
    criteria: Type.Optional(
      Type.Array(Type.Object({ criterion: Type.String(), ok: Type.Boolean(), saw: Type.String() }, { additionalProperties: true }), {
        description: 'verify: each criterion, whether it held, what it saw',
      }),
    ),
    checkpointId: Type.Optional(Type.String({ description: 'checkpoint: the checkpoint taken' })),
    error: Type.Optional(Type.String()),
  },
  {
    additionalProperties: true,
    description:
      'An `interrupted` execute or verify also `killedProcesses` (what it left running in the sandbox, killed at the restart before anything else ran) or `killError` (why they could not be killed)',
  },
);

/** Why a run did not complete; more fields may follow. */
const FailureSchema = Type.Object(
  {
    code: Type.String(),
    message: Type.String(),
    step: Type.Optional(Type.Integer()),
    criterion: Type.Optional(Type.String()),
    saw: Type.Optional(Type.String()),
    exitCode: Type.Optional(Type.Integer()),
  },
  { additionalProperties: true },
);

const RunSchema = Type.Object(
  {
    id: Type.String(),
    number: Type.Integer(),
    status: Type.Union(RUN_STATES.map((s) => Type.Literal(s))),
    step: Type.Integer({ description: 'The step running or next (1-based)' }),
    progress: Type.Integer({ description: 'Percent of steps completed in this pass' }),
    currentStep: Type.Union(
      [
        Type.Object(
          { step: Type.Integer(), type: Type.String(), status: Type.String(), startTime: Type.String() },
          { additionalProperties: true },
        ),
        Type.Null(),
      ],
      { description: 'The step running (1-based), while the run is running' },
    ),
    retries: Type.Integer(),
    maxRetries: Type.Integer(),
    sandboxId: Type.Union([Type.String(), Type.Null()]),
    checkpoint: Type.Union([Type.Object({ step: Type.Integer(), id: Type.String() }), Type.Null()]),
    nextAttemptAt: Type.Union([Type.String(), Type.Null()], { description: 'While waiting the backoff before a retry' }),
    context: AnyObject,
    environmentKeys: Type.Array(Type.String(), { description: 'Names of the start’s variables; values are never returned' }),
    reason: Type.Union([FailureSchema, Type.Null()], {
      description:
        'Why the run did not complete: `code` (`verify_failed`, `execute_failed`, `checkpoint_failed`, `policy_violation`, `step_error`, `sandbox_failed`, `interrupted`, `timed_out`, `cancelled`, `session_ended`), `message`, and where known `step`, `criterion`, `saw`, `exitCode`',
    }),
    output: Type.Union([Type.String(), Type.Null()]),
    createdAt: Type.String(),
    queuedAt: Time,
    startedAt: Time,
    deadlineAt: Time,
    endedAt: Time,
    durationMs: Type.Union([Type.Integer(), Type.Null()]),
    steps: Type.Array(Type.Object({ step: Type.Integer(), type: Type.String(), status: Type.String(), attempts: Type.Array(Attempt) })),
    rollbacks: Type.Array(AnyObject, {
      description: 'Checkpoints restored before retries: `checkpointId`, `resumeStep`, status, duration',
    }),
  },
  { additionalProperties: false },
);

const StatusSchema = Type.Object(
  {
    workflowId: Type.String(),
    sessionId: Type.String(),
    name: Type.String(),
    status: Status,
    totalSteps: Type.Integer(),
    run: Type.Union([RunSchema, Type.Null()], { description: 'The latest run; null before the first start' }),
  },
  { additionalProperties: false },
);

const ListQuery = Type.Object(
  { sessionId: Type.Optional(Type.String({ pattern: '^ses_[A-Za-z0-9_-]{16}$' })), status: Type.Optional(Status), ...PageQuery },
  { additionalProperties: false },
);

const EventsQuery = Type.Object(
  {
    after: Type.Optional(
      Type.Integer({ minimum: 0, description: 'Resume after this event id (as `Last-Event-ID`, for clients that cannot set headers)' }),
    ),
  },
  { additionalProperties: false },
);

const HEARTBEAT_MS = 15_000;

/** The Director Protocol's Workflow API (`/v1/workflows`), plus cancel and a resumable event stream. */
export const workflowRoutes: FastifyPluginAsync<{ workflows: WorkflowService }> = async (base, { workflows }) => {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  const Params = IdParams('wf');

  app.post('/workflows', {
    config: { scope: 'sessions:write', idempotent: true },
    schema: {
      tags: ['workflows'],
      summary: 'Create a workflow',
      description:
        "Steps run in order in the workflow's sandbox: the session's sandbox named by `sandboxId` (left as it is after each run), or else a sandbox made for each run inside the session (from `environmentId`, `sandbox` and the session's defaults, under the department's and session's limits), removed when the run ends (its files live on in the run's checkpoints). Everything is checked now: a criterion that cannot be checked is a 400 naming it (`steps[1].criteria`), a step timeout over DIRECTOR_MAX_EXEC_TIMEOUT_MS names `steps[i].timeout`. The session must be active.",
      body: CreateWorkflowSchema,
      response: { 201: Envelope(WorkflowSchema), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, workflowView(workflows.create(callerOf(req), req.body)), 201),
  });

  app.get('/workflows', {
    config: { scope: 'sessions:read' },
    schema: {
      tags: ['workflows'],
      summary: 'List workflows',
      description: 'Newest first; `status` is the latest run’s state (`pending` for a workflow never started).',
      querystring: ListQuery,
      response: { 200: Envelope(Page(WorkflowSchema)), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      const { sessionId, status, limit = 20, offset = 0 } = req.query;
      const page = workflows.list(callerOf(req), { ...(sessionId ? { sessionId } : {}), ...(status ? { status } : {}), limit, offset });
      return send(reply, { items: page.items.map(workflowView), total: page.total, limit, offset });
    },
  });

  app.get('/workflows/:id', {
    config: { scope: 'sessions:read' },
    schema: {
      tags: ['workflows'],
      summary: 'Get a workflow',
      params: Params,
      response: { 200: Envelope(WorkflowSchema), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, workflowView(workflows.get(callerOf(req), req.params.id))),
  });

  app.post('/workflows/:id/start', {
    // The seed's own example starts with no body: none is an empty one.
    config: { scope: 'sessions:write', idempotent: true, optionalBody: true },
    schema: {
      tags: ['workflows'],
      summary: 'Start a run',
      description:
        'The run is stored, then scheduled at once: `running`, or `queued` while its department runs `maxConcurrentTasks` runs or the instance DIRECTOR_WORKFLOW_MAX_RUNNING (oldest first). One run at a time per workflow: a start while a run is pending, queued or running is refused with 409 naming it; send `Idempotency-Key` to make a start safe to retry (the retry gets the first answer). `environment` is added to every command of the run; `context` is returned in the status and stored in each checkpoint. Answers 202 with the status.',
      params: Params,
      body: StartWorkflowSchema,
      response: { 202: Envelope(StatusSchema), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      const caller = callerOf(req);
      workflows.startRun(caller, req.params.id, req.body);
      return send(reply, workflows.status(caller, req.params.id), 202);
    },
  });

  app.get('/workflows/:id/status', {
    config: { scope: 'sessions:read' },
    schema: {
      tags: ['workflows'],
      summary: 'Workflow status',
      description:
        'The latest run: its state, the current step, every attempt of every step (exit code, duration, the first DIRECTOR_WORKFLOW_OUTPUT_LIMIT_BYTES of stdout and stderr, `truncated`; verify verdicts; checkpoint ids), the rollbacks, and when it did not complete the reason (which step, which criterion, what it saw). Steps are numbered from 1.',
      params: Params,
      response: { 200: Envelope(StatusSchema), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, workflows.status(callerOf(req), req.params.id)),
  });

  app.post('/workflows/:id/cancel', {
    config: { scope: 'sessions:write' },
    schema: {
      tags: ['workflows'],
      summary: 'Cancel the running run',
      description:
        'Beyond the Director Protocol. The run becomes `cancelled` (stored first), then the command it runs is killed with its whole process group and its own sandbox is removed. 409 when no run is going.',
      params: Params,
      response: { 200: Envelope(StatusSchema), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      const caller = callerOf(req);
      workflows.cancel(caller, req.params.id);
      return send(reply, workflows.status(caller, req.params.id));
    },
  });

  app.get('/workflows/:id/events', {
    config: { scope: 'sessions:read' },
    schema: {
      tags: ['workflows'],
      summary: 'Follow a workflow as server-sent events',
      description:
        "Beyond the Director Protocol, as the control plane's per-run streams: the workflow's event log, then live. Events: `run` (state changes: `pending`, `queued`, `running`, then how it ended, with `reason`), `sandbox` (the run's own sandbox), `step` (each attempt starting and ending: the `workflow_progress` fields plus attempt, round, exit code, duration, verdicts), `retry` (round, delay, where it resumes), `rollback` (the checkpoint restored). Ids count from 1 per workflow with no holes; reconnect with `Last-Event-ID` (or `?after=`) to continue exactly after the last one seen. The stream ends with an `end` event once the latest run has ended and everything was sent; a workflow not started yet is followed until its run ends. Disconnecting never affects the run. A comment line every 15 s keeps idle streams open.",
      params: Params,
      querystring: EventsQuery,
      produces: ['text/event-stream'],
    },
    handler: async (req, reply) => {
      const caller = callerOf(req);
      const header = req.headers['last-event-id'];
      let after = req.query.after ?? 0;
      if (header !== undefined) {
        const v = Array.isArray(header) ? header[0] : header;
        if (!v || !/^\d{1,15}$/.test(v.trim())) throw validationError('Last-Event-ID', 'must be an event id (a non-negative integer)');
        after = Number(v.trim());
      }
      workflows.get(caller, req.params.id);
      return streamEvents(reply, (signal) => workflows.follow(caller, req.params.id, after, signal), { heartbeatMs: HEARTBEAT_MS });
    },
  });
};
