import { Type, type Static } from 'typebox';
import { FileSchema } from './files.ts';
import { MAX_VARIABLES, TEMPLATE_NAME, VARIABLE_NAME } from './template.ts';
import { MAX_VALUE_CHARS } from './variables.ts';

/**
 * Request bodies of the Environment API (the Director Protocol's `POST /environments`,
 * `/validate`, `/import`) and the export document, as TypeBox schemas shared by the routes
 * (validation, OpenAPI) and the service (which checks them again: it is callable without HTTP).
 */

export const VariablesSchema = Type.Record(
  Type.String({ pattern: VARIABLE_NAME }),
  Type.Union([Type.String({ maxLength: MAX_VALUE_CHARS }), Type.Number(), Type.Boolean()]),
  {
    maxProperties: MAX_VARIABLES,
    additionalProperties: false,
    description:
      "Values by variable name, checked against the template's typed rules (a 400 names the variable and the rule: `variables.PORT: must be a port number 1-65535`). Numbers and booleans may be sent as such or as strings; values are stored as strings. Variables the template marks secret, and any URI carrying credentials (`scheme://user:pass@host`), are stored encrypted and never returned.",
  },
);

const Name = Type.String({ minLength: 1, maxLength: 200 });
const TemplateName = Type.String({
  pattern: TEMPLATE_NAME,
  description: 'A shipped template (`GET /v1/environments/templates`): `web-api`, `python`, `node`, `shell`',
});
const Files = Type.Array(FileSchema, {
  maxItems: 64,
  description:
    "The environment's own files, placed in its sandboxes over the template's (same path: these win). Not secret: returned by export.",
});

export const CreateEnvironmentSchema = Type.Object(
  {
    template: TemplateName,
    name: Name,
    variables: Type.Optional(VariablesSchema),
    files: Type.Optional(Files),
  },
  { additionalProperties: false },
);
export type CreateEnvironmentRequest = Static<typeof CreateEnvironmentSchema>;

export const ValidateEnvironmentSchema = Type.Object(
  {
    variables: Type.Optional(
      Type.Record(Type.String({ maxLength: 128 }), Type.Unknown(), {
        maxProperties: MAX_VARIABLES,
        description:
          "Values to check, as if they replaced the environment's (unknown names and wrong types are reported per variable, not refused)",
      }),
    ),
  },
  { additionalProperties: false },
);

export const EXPORT_KIND = 'director.environment';
export const EXPORT_VERSION = 1;

/** The portable export document (version 1). */
export const ExportDocumentSchema = Type.Object(
  {
    kind: Type.Literal(EXPORT_KIND),
    version: Type.Literal(EXPORT_VERSION),
    name: Name,
    template: TemplateName,
    templateVersion: Type.Integer({ minimum: 1 }),
    variables: VariablesSchema,
    secrets: Type.Record(Type.String({ pattern: VARIABLE_NAME }), Type.Object({ set: Type.Boolean() }, { additionalProperties: false }), {
      maxProperties: MAX_VARIABLES,
      additionalProperties: false,
      description: 'Secret variables that were set, without their values; an import must supply each one in `variables`',
    }),
    files: Files,
  },
  { additionalProperties: false },
);
export type ExportDocument = Static<typeof ExportDocumentSchema>;

/** The Director Protocol's import body. */
export const ImportBodySchema = Type.Object(
  {
    name: Name,
    template: TemplateName,
    variables: Type.Optional(VariablesSchema),
    files: Type.Optional(Files),
  },
  { additionalProperties: false },
);
