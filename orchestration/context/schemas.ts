import { Type, type Static } from 'typebox';

const Metadata = Type.Object(
  {
    source: Type.Optional(Type.String({ maxLength: 256 })),
    priority: Type.Optional(
      Type.Union([Type.Literal('low'), Type.Literal('medium'), Type.Literal('high'), Type.Literal('critical')], {
        description: 'Sets the importance when `importance` is absent: low 0.25, medium 0.5, high 0.75, critical 1',
      }),
    ),
    importance: Type.Optional(Type.Number({ minimum: 0, maximum: 1, description: 'Importance 0–1 (default from priority, else 0.5)' })),
    title: Type.Optional(Type.String({ maxLength: 512 })),
    tags: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 32 })),
    sandboxId: Type.Optional(
      Type.String({
        pattern: '^sbx_[A-Za-z0-9_-]{16}$',
        description: "For a `file://` item: the session's sandbox to read it from (default: the session's only running sandbox)",
      }),
    ),
  },
  { additionalProperties: true, description: 'Known keys are checked; other keys are kept as given' },
);

export const ContextItemSchema = Type.Object(
  {
    type: Type.Union([Type.Literal('text'), Type.Literal('file'), Type.Literal('url')], {
      description:
        '`text`: the content itself. `file`: `file://<path>` read once, when the item is added, from a running sandbox of the session (relative paths are under /workspace), or the file content itself. `url`: an http(s) URL kept as a reference (Director never fetches it).',
    }),
    content: Type.String({ maxLength: 67_108_864 }),
    metadata: Type.Optional(Metadata),
  },
  { additionalProperties: false },
);
export type ContextItemInput = Static<typeof ContextItemSchema>;

export const RetentionPolicySchema = Type.Object(
  {
    maxAge: Type.Optional(Type.Integer({ minimum: 1000, maximum: 31_536_000_000, description: 'Items older than this (ms) expire...' })),
    importanceThreshold: Type.Optional(
      Type.Number({ minimum: 0, maximum: 1, description: '...unless their importance is at least this (important items are kept)' }),
    ),
  },
  { additionalProperties: false },
);

export const CreateContextSchema = Type.Object(
  {
    sessionId: Type.String({ pattern: '^ses_[A-Za-z0-9_-]{16}$' }),
    name: Type.String({ minLength: 1, maxLength: 200 }),
    items: Type.Optional(Type.Array(ContextItemSchema, { maxItems: 1000 })),
    config: Type.Optional(
      Type.Object(
        {
          maxSize: Type.Optional(
            Type.Integer({
              minimum: 1,
              maximum: 1_000_000,
              description:
                'Most items the window holds (at most DIRECTOR_CONTEXT_MAX_ITEMS, its default); beyond it the least important, then the oldest item goes',
            }),
          ),
          retentionPolicy: Type.Optional(RetentionPolicySchema),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
export type CreateContextRequest = Static<typeof CreateContextSchema>;
