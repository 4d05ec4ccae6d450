import { Type, type Static } from 'typebox';
import { REQUESTABLE_STATES, SESSION_STATES } from './states.ts';

/**
 * Request bodies of the Session API (the Director Protocol's `POST/PUT /sessions`), as TypeBox
 * schemas shared by the routes (validation, OpenAPI) and the service (which checks them again:
 * it is callable without HTTP). Units: `timeout` and `maxDuration` in ms, `memory`/`disk` in
 * MiB, `cpu` in cores.
 */

export const LimitsSchema = Type.Object(
  {
    cpu: Type.Optional(Type.Number({ minimum: 0.01, maximum: 64, description: 'CPU quota in cores' })),
    memory: Type.Optional(Type.Integer({ minimum: 6, maximum: 1_048_576, description: 'Memory limit in MiB' })),
    disk: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_048_576, description: 'Writable tmpfs total in MiB' })),
    pids: Type.Optional(Type.Integer({ minimum: 8, maximum: 65_536, description: 'Maximum number of processes' })),
    maxDuration: Type.Optional(Type.Integer({ minimum: 1000, maximum: 2_592_000_000, description: 'Wall-time limit of a sandbox in ms' })),
  },
  {
    additionalProperties: false,
    description:
      'Resource ceilings: a sandbox created at this level can never exceed them (a request over one is refused with 400 naming the level and recorded as a `policy_violation`); a sandbox that sets none gets the default lowered to the ceiling.',
  },
);

const Name = Type.String({ minLength: 1, maxLength: 200 });
const Description = Type.String({ maxLength: 4000 });
const Metadata = Type.Record(Type.String({ maxLength: 128 }), Type.Unknown(), {
  maxProperties: 64,
  description: 'Free-form client data, stored and returned as given',
});

const configProps = {
  maxDepartments: Type.Integer({ minimum: 1, maximum: 1000, description: 'Departments this session may have (default 10)' }),
  timeout: Type.Integer({
    minimum: 1000,
    maximum: 31_536_000_000,
    description:
      'Lifetime in ms, counted from creation. When it passes the session is `expired`: its sandboxes are stopped and its running work is cancelled (records stay readable). Default DIRECTOR_SESSION_DEFAULT_TIMEOUT_MS; at most DIRECTOR_SESSION_MAX_TIMEOUT_MS.',
  }),
  resourceLimits: LimitsSchema,
  networkId: Type.String({
    pattern: '^net_[A-Za-z0-9_-]{16}$',
    description: "Network the session's sandboxes join when their request names none (must be in the workspace)",
  }),
  environmentId: Type.String({
    pattern: '^env_[A-Za-z0-9_-]{16}$',
    description: "Environment the session's sandboxes are made from when their request names none",
  }),
  metadata: Metadata,
};

export const SessionConfigSchema = Type.Object(
  {
    maxDepartments: Type.Optional(configProps.maxDepartments),
    timeout: Type.Optional(configProps.timeout),
    resourceLimits: Type.Optional(configProps.resourceLimits),
    networkId: Type.Optional(configProps.networkId),
    environmentId: Type.Optional(configProps.environmentId),
    metadata: Type.Optional(configProps.metadata),
  },
  { additionalProperties: false },
);

/**
 * The session kinds Director accepts. The Director Protocol shows only `director` and gives no
 * other kind any meaning; a free-form label would accept typos silently (docs/decisions.md).
 */
export const SESSION_TYPES = ['director'] as const;
export type SessionType = (typeof SESSION_TYPES)[number];

export const CreateSessionSchema = Type.Object(
  {
    type: Type.Optional(
      Type.Unsafe<SessionType>({
        type: 'string',
        enum: [...SESSION_TYPES],
        description:
          'Kind of session: `director`, the only kind the Director Protocol names (and the default). Any other value is refused with 400 naming `type` (docs/decisions.md).',
      }),
    ),
    name: Name,
    description: Type.Optional(Description),
    config: Type.Optional(SessionConfigSchema),
  },
  { additionalProperties: false },
);
export type CreateSessionRequest = Static<typeof CreateSessionSchema>;

export const UpdateSessionSchema = Type.Object(
  {
    name: Type.Optional(Name),
    description: Type.Optional(Description),
    status: Type.Optional(
      Type.Union(
        REQUESTABLE_STATES.map((s) => Type.Literal(s)),
        { description: '`paused` refuses new work, `active` resumes, `completed` ends the session (its sandboxes stop)' },
      ),
    ),
    config: Type.Optional(
      Type.Object(
        {
          maxDepartments: Type.Optional(configProps.maxDepartments),
          timeout: Type.Optional(configProps.timeout),
          resourceLimits: Type.Optional(Type.Union([configProps.resourceLimits, Type.Null()])),
          networkId: Type.Optional(Type.Union([configProps.networkId, Type.Null()])),
          environmentId: Type.Optional(Type.Union([configProps.environmentId, Type.Null()])),
          metadata: Type.Optional(Type.Union([configProps.metadata, Type.Null()])),
        },
        {
          additionalProperties: false,
          description: 'Merged into the stored config key by key: unset keys keep their values, `null` removes an optional one',
        },
      ),
    ),
  },
  { additionalProperties: false },
);
export type UpdateSessionRequest = Static<typeof UpdateSessionSchema>;

export const SessionStatusSchema = Type.Union(SESSION_STATES.map((s) => Type.Literal(s)));
