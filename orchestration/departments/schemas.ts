import { Type, type Static } from 'typebox';
import { LimitsSchema } from '../sessions/schemas.ts';

/** The Director Protocol's `POST /departments` body. */
export const CreateDepartmentSchema = Type.Object(
  {
    sessionId: Type.String({ pattern: '^ses_[A-Za-z0-9_-]{16}$', description: 'The session the department belongs to (must be active)' }),
    name: Type.String({ minLength: 1, maxLength: 200 }),
    domain: Type.String({
      minLength: 1,
      maxLength: 64,
      pattern: '^[a-z0-9][a-z0-9._-]*$',
      description: 'What the department works on (`code-generation`, `code-review`); filterable',
    }),
    capabilities: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 64, uniqueItems: true, description: 'Free-form skills' }),
    ),
    config: Type.Optional(
      Type.Object(
        {
          maxConcurrentTasks: Type.Optional(
            Type.Integer({
              minimum: 1,
              maximum: 1000,
              description: 'Workflow runs of this department that run at once; more wait as `queued` (default 5)',
            }),
          ),
          resourceLimits: Type.Optional(LimitsSchema),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
export type CreateDepartmentRequest = Static<typeof CreateDepartmentSchema>;
