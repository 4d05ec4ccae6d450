import { Type, type Static } from 'typebox';

/**
 * Request bodies of the credential vault (`/v1/vault`, the agent platform's list / store /
 * update / delete / rotate). Values are write-only: they are sealed at rest and never returned.
 */

export const SecretName = Type.String({
  minLength: 1,
  maxLength: 128,
  pattern: '^[A-Za-z][A-Za-z0-9_.-]*$',
  description: 'Unique in the workspace; shown in place of the value wherever it is redacted (`[redacted:NAME]`)',
});

export const SecretValue = Type.String({
  minLength: 8,
  maxLength: 65_536,
  description:
    'The secret (write-only: never returned). At least 8 characters, so that redaction can find it in output without erasing ordinary text.',
});

const Description = Type.String({ maxLength: 1000 });

export const StoreSecretSchema = Type.Object(
  { name: SecretName, description: Type.Optional(Description), value: SecretValue },
  { additionalProperties: false },
);
export type StoreSecretRequest = Static<typeof StoreSecretSchema>;

export const UpdateSecretSchema = Type.Object(
  {
    name: Type.Optional(SecretName),
    description: Type.Optional(Description),
    /** A new value: the same as a rotation (version + 1). */
    value: Type.Optional(SecretValue),
  },
  { additionalProperties: false, minProperties: 1 },
);
export type UpdateSecretRequest = Static<typeof UpdateSecretSchema>;

export const RotateSecretSchema = Type.Object({ value: SecretValue }, { additionalProperties: false });
export type RotateSecretRequest = Static<typeof RotateSecretSchema>;
