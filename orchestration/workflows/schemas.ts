import { Type, type Static } from 'typebox';
import { CreateSandboxSchema } from '../../runtime/sandbox/spec.ts';

/**
 * Request bodies of the Workflow API (the Director Protocol's `POST /workflows` and `POST
 * /workflows/{id}/start`), shared by the routes (validation, OpenAPI) and the service (which
 * checks them again: it is callable without HTTP). Units: every timeout and interval in ms.
 */

const Timeout = (what: string) => Type.Integer({ minimum: 1, maximum: 86_400_000, description: what });
const Command = Type.Union([
  Type.String({ minLength: 1, maxLength: 131_072, description: 'A shell line, run with `/bin/sh -c`' }),
  Type.Array(Type.String({ maxLength: 131_072 }), { minItems: 1, maxItems: 4096, description: 'argv, run without a shell' }),
]);

export const ExecuteStepSchema = Type.Object(
  {
    type: Type.Literal('execute'),
    command: Command,
    timeout: Type.Optional(
      Timeout(
        'ms; when it passes the whole process group is killed and the step fails (a verify right after it still judges it). Default DIRECTOR_EXEC_TIMEOUT_MS, at most DIRECTOR_MAX_EXEC_TIMEOUT_MS',
      ),
    ),
  },
  {
    additionalProperties: false,
    description:
      "Runs `command` in the workflow's sandbox with the start's `environment`, as `POST /v1/sandboxes/{id}/execute` does (same limits, output caps and process-group kill). Its exit code, duration and the first DIRECTOR_WORKFLOW_OUTPUT_LIMIT_BYTES of stdout and stderr are kept per attempt.",
  },
);

export const VerifyStepSchema = Type.Object(
  {
    type: Type.Literal('verify'),
    criteria: Type.Unknown({
      description:
        'What must hold, alone or as an array (all must hold). Phrases: `tests pass` (also `tests passed`, `build succeeds`, `succeeds`: the previous execute exited 0), `exit code N`, `output contains "TEXT"`, `file /PATH exists`. Objects with one key: `{exitCode: N}`, `{stdoutMatches: "regex"}` (the previous execute’s kept stdout), `{command: "line" | [argv]}` (run in the sandbox; exit 0 holds), `{fileExists: "/path"}`. "The previous execute" is the nearest execute step before the verify. A criterion that cannot be checked is refused at create with 400 naming it (`steps[1].criteria`).',
    }),
    timeout: Type.Optional(Timeout('ms for the checks that run a command (`command`, `fileExists`); default 60000')),
  },
  {
    additionalProperties: false,
    description:
      'Checks `criteria`. When they do not hold and retries remain (`config.maxRetries`), the run waits the backoff, restores its last checkpoint (if it took one) and runs the steps after it again; otherwise the run fails naming the step, the criterion and what it saw.',
  },
);

export const CheckpointStepSchema = Type.Object(
  {
    type: Type.Literal('checkpoint'),
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    description: Type.Optional(Type.String({ maxLength: 4000 })),
  },
  {
    additionalProperties: false,
    description:
      "A checkpoint of the session as `POST /v1/checkpoints` makes (a `ckp_` id, listed by `GET /v1/checkpoints?sessionId=`, counted against DIRECTOR_CHECKPOINT_MAX_PER_SESSION and DIRECTOR_CHECKPOINT_MAX_BYTES), with the files of the workflow's sandbox only and `data` holding `workflowId`, `runId`, `step`, `round` and the run's `context`. A later failed verify rolls back to it: only the workflow's sandbox files are put back (in place); the session's other sandboxes, state, context and messages are left as they are.",
  },
);

/** One step; the route validates it by its `type` (ajv discriminator), the service with {@link STEP_SCHEMAS}. */
export const StepSchema = Type.Unsafe<
  Static<typeof ExecuteStepSchema> | Static<typeof VerifyStepSchema> | Static<typeof CheckpointStepSchema>
>({
  type: 'object',
  discriminator: { propertyName: 'type' },
  required: ['type'],
  oneOf: [ExecuteStepSchema, VerifyStepSchema, CheckpointStepSchema],
});
export type StepSpec = Static<typeof StepSchema>;

export const STEP_SCHEMAS = { execute: ExecuteStepSchema, verify: VerifyStepSchema, checkpoint: CheckpointStepSchema } as const;

const sandboxProps = CreateSandboxSchema.properties;
export const SandboxTemplateSchema = Type.Object(
  {
    image: Type.Optional(sandboxProps.image),
    resourceLimits: Type.Optional(sandboxProps.resourceLimits),
    securityPolicy: Type.Optional(sandboxProps.securityPolicy),
    networkMode: Type.Optional(sandboxProps.networkMode),
    workdir: Type.Optional(sandboxProps.workdir),
  },
  {
    additionalProperties: false,
    description:
      "How each run's own sandbox is made (the fields of `POST /v1/sandboxes`), inside the workflow's session: the department's and session's limits are ceilings, the environment (`environmentId`) supplies what these fields leave out. Not allowed with `sandboxId`.",
  },
);

export const CreateWorkflowSchema = Type.Object(
  {
    sessionId: Type.String({ pattern: '^ses_[A-Za-z0-9_-]{16}$', description: 'The session the workflow belongs to (must be active)' }),
    name: Type.String({ minLength: 1, maxLength: 200 }),
    description: Type.Optional(Type.String({ maxLength: 4000 })),
    steps: Type.Array(StepSchema, { minItems: 1, maxItems: 100, description: 'Run in order; numbered from 1 in status and progress' }),
    config: Type.Optional(
      Type.Object(
        {
          timeout: Type.Optional(
            Type.Integer({
              minimum: 1000,
              maximum: 604_800_000,
              description:
                'ms a run may take from when it starts running (queueing excluded); when it passes the run is `timed_out` and what runs is killed. Default DIRECTOR_WORKFLOW_DEFAULT_TIMEOUT_MS',
            }),
          ),
          maxRetries: Type.Optional(
            Type.Integer({
              minimum: 0,
              maximum: 100,
              description:
                'Retries after a failed verify or an execute lost to a server restart (default 0: the first failure ends the run)',
            }),
          ),
          backoff: Type.Optional(
            Type.Object(
              {
                initialInterval: Type.Optional(
                  Type.Integer({ minimum: 1, maximum: 3_600_000, description: 'ms before the first retry (default 1000)' }),
                ),
                coefficient: Type.Optional(
                  Type.Number({ minimum: 1, maximum: 10, description: 'Each next wait is this many times longer (default 2)' }),
                ),
                maxInterval: Type.Optional(
                  Type.Integer({ minimum: 1, maximum: 86_400_000, description: 'ms a wait never exceeds (default 100 × initialInterval)' }),
                ),
              },
              {
                additionalProperties: false,
                description: "Temporal's retry policy and defaults: wait = min(initialInterval × coefficient^(retry-1), maxInterval)",
              },
            ),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    departmentId: Type.Optional(
      Type.String({
        pattern: '^dep_[A-Za-z0-9_-]{16}$',
        description:
          "A department of the session: its `maxConcurrentTasks` bounds how many runs of its workflows run at once (others wait `queued`) and its limits are a ceiling for each run's own sandbox",
      }),
    ),
    sandboxId: Type.Optional(
      Type.String({
        pattern: '^sbx_[A-Za-z0-9_-]{16}$',
        description:
          'Run in this sandbox of the session (it must be running) instead of one made per run; it is left as it is after the run. Excludes `environmentId` and `sandbox`',
      }),
    ),
    environmentId: Type.Optional(
      Type.String({ pattern: '^env_[A-Za-z0-9_-]{16}$', description: "The environment each run's own sandbox is made from" }),
    ),
    sandbox: Type.Optional(SandboxTemplateSchema),
    metadata: Type.Optional(
      Type.Record(Type.String({ maxLength: 128 }), Type.Unknown(), { maxProperties: 64, description: 'Free-form client data' }),
    ),
  },
  { additionalProperties: false },
);
export type CreateWorkflowRequest = Static<typeof CreateWorkflowSchema>;

export const StartWorkflowSchema = Type.Object(
  {
    environment: Type.Optional(
      Type.Record(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]{0,127}$' }), Type.String({ maxLength: 32_768 }), {
        maxProperties: 128,
        additionalProperties: false,
        description: 'Variables added to every command of the run (execute steps and verify commands); never returned',
      }),
    ),
    context: Type.Optional(
      Type.Record(Type.String({ maxLength: 128 }), Type.Unknown(), {
        maxProperties: 64,
        description: "Free-form data of the run: returned in its status and stored in each of its checkpoints' data",
      }),
    ),
  },
  { additionalProperties: false },
);
export type StartWorkflowRequest = Static<typeof StartWorkflowSchema>;
