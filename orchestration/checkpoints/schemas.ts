import { Type, type Static } from 'typebox';
import { compileSchema } from '../../core/validate.ts';

/** The Director Protocol's `POST /checkpoints` body. */
export const CreateCheckpointSchema = Type.Object(
  {
    sessionId: Type.String({ pattern: '^ses_[A-Za-z0-9_-]{16}$', description: 'The session to checkpoint (active or paused)' }),
    name: Type.String({ minLength: 1, maxLength: 200 }),
    description: Type.Optional(Type.String({ maxLength: 4000 })),
    data: Type.Optional(
      Type.Record(Type.String({ maxLength: 128 }), Type.Unknown(), {
        maxProperties: 256,
        description: 'Free-form client data (the seed: `committedFiles`, `currentHash`, `metadata`), stored and returned as given',
      }),
    ),
  },
  { additionalProperties: false },
);
export type CreateCheckpointRequest = Static<typeof CreateCheckpointSchema>;
/** Checked on every create (the service's own check, whoever calls it): compiled once. */
export const CreateCheckpointCheck = compileSchema(CreateCheckpointSchema);

/** The Director Protocol's `POST /checkpoints/{id}/restore` body; every part defaults to true. */
export const RestoreCheckpointSchema = Type.Object(
  {
    includeState: Type.Optional(
      Type.Boolean({
        description:
          "Put back the session's name, description and config (not its `timeout`: a restore neither shortens nor extends the session's life) and its departments (same ids; ones created since are removed). Default true.",
      }),
    ),
    includeContext: Type.Optional(
      Type.Boolean({ description: "Make the checkpoint's context windows and their items the session's again. Default true." }),
    ),
    includeMessages: Type.Optional(
      Type.Boolean({
        description: "Put back the session's messages (once chat exists; until then there are none to restore). Default true.",
      }),
    ),
    includeFiles: Type.Optional(
      Type.Boolean({
        description:
          "Put back the files of the session's sandboxes (default: true whenever the checkpoint has files). Files added since are removed, changed ones come back, deleted ones return. A sandbox that no longer runs is recreated from its recorded spec and filled; a restore that fails part-way leaves every sandbox as it was.",
      }),
    ),
  },
  { additionalProperties: false },
);
export type RestoreCheckpointRequest = Static<typeof RestoreCheckpointSchema>;
export const RestoreCheckpointCheck = compileSchema(RestoreCheckpointSchema);
