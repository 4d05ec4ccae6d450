import { Type, type Static } from 'typebox';
import { ApprovalPolicySchema } from '../approvals/policy.ts';

/** The tools an agent may be given; each runs in the agent's sandbox (see `chat/tools.ts`). */
export const TOOL_NAMES = ['execute', 'read_file', 'write_file', 'list_files'] as const;
export type ToolName = (typeof TOOL_NAMES)[number];

/** `POST /v1/agents`. Units: tokens; `temperature` as the provider takes it. */
export const CreateAgentSchema = Type.Object(
  {
    departmentId: Type.String({
      pattern: '^dep_[A-Za-z0-9_-]{16}$',
      description: "The department the agent belongs to (its session must be active): its limits are the ceiling of the agent's sandbox",
    }),
    name: Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9][A-Za-z0-9 ._-]*$' }),
    provider: Type.Optional(
      Type.String({
        pattern: '^prv_[A-Za-z0-9_-]{16}$',
        description: "A provider registered with `POST /v1/llm/providers`; default: the instance's (DIRECTOR_LLM_*)",
      }),
    ),
    model: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: "Default: the provider's default model" })),
    systemPrompt: Type.Optional(Type.String({ maxLength: 32_768 })),
    tools: Type.Optional(
      Type.Array(Type.Union([Type.Literal('execute'), Type.Literal('read_file'), Type.Literal('write_file'), Type.Literal('list_files')]), {
        uniqueItems: true,
        maxItems: TOOL_NAMES.length,
        description: 'Tools the model may call (default all four; `[]` for none)',
      }),
    ),
    approvalPolicy: Type.Optional(ApprovalPolicySchema),
    maxSteps: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 100,
        description: 'Step budget: tool rounds per turn (default 10). The model answers without tools once it is spent.',
      }),
    ),
    maxTokens: Type.Optional(
      Type.Integer({
        minimum: 100,
        maximum: 100_000_000,
        description: 'Token budget per turn (input + output of every model call; default none): the turn ends once it is spent',
      }),
    ),
    maxOutputTokens: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'Per model call (default 4096)' })),
    maxHistoryMessages: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 100_000,
        description:
          "How many of the agent's earlier messages in the session go with each model call (default 200), the newest kept and starting at a user message, so a tool call is never sent without its result. Older messages stay stored and listed; they are only not sent, so a long session does not outgrow the model's context window",
      }),
    ),
    temperature: Type.Optional(Type.Number({ minimum: 0, maximum: 2 })),
    secrets: Type.Optional(
      Type.Record(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]{0,127}$' }), Type.String({ pattern: '^vlt_[A-Za-z0-9_-]{16}$' }), {
        maxProperties: 32,
        description:
          "Vault secrets injected into this agent's tool executions as environment variables (`{API_TOKEN: 'vlt_…'}`): never shown to the model, redacted from what it reads, from messages, events and logs",
      }),
    ),
    sandbox: Type.Optional(
      Type.Object(
        {
          image: Type.Optional(
            Type.String({
              minLength: 1,
              maxLength: 255,
              pattern: '^[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9._-]{1,128})?(@sha256:[a-f0-9]{64})?$',
              description: "Image of the agent's sandbox (default: the session environment's, else DIRECTOR_DEFAULT_IMAGE)",
            }),
          ),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
export type CreateAgentRequest = Static<typeof CreateAgentSchema>;
