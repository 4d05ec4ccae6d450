import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { isoTime } from '../../core/clock.ts';
import { fileBytes, mergeFiles, type EnvFile } from '../../orchestration/environments/files.ts';
import {
  CreateEnvironmentSchema,
  ExportDocumentSchema,
  ImportBodySchema,
  ValidateEnvironmentSchema,
} from '../../orchestration/environments/schemas.ts';
import type { EnvironmentService } from '../../orchestration/environments/service.ts';
import type { EnvironmentRecord } from '../../orchestration/environments/store.ts';
import type { Template } from '../../orchestration/environments/template.ts';
import { describeRule } from '../../orchestration/environments/variables.ts';
import { LimitsSchema } from '../../orchestration/sessions/schemas.ts';
import { callerOf, send } from '../context.ts';
import { AnyObject, Envelope, IdParams, Page, PageQuery, STANDARD_ERRORS } from '../schemas.ts';

const FileView = Type.Object(
  { path: Type.String(), mode: Type.String({ description: 'Octal permission bits' }), size: Type.Integer({ description: 'Bytes' }) },
  { additionalProperties: false },
);
const SecretsView = Type.Record(Type.String(), Type.Object({ set: Type.Boolean() }, { additionalProperties: false }), {
  description:
    'Secret variables (marked secret by the template, or holding a URI with credentials): whether each is set. Their values are never returned by any endpoint; they reach a sandbox only as its environment.',
});

const EnvironmentSchema = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    template: Type.String(),
    templateVersion: Type.Integer({ description: 'The template version the environment was made from (it keeps that version)' }),
    image: Type.String(),
    variables: Type.Record(Type.String(), Type.String(), { description: 'Values of the variables that are not secrets' }),
    secrets: SecretsView,
    files: Type.Array(FileView, {
      description: "Files placed in the environment's sandboxes (template's and own); contents in the export",
    }),
    resourceLimits: LimitsSchema,
    networkPolicy: Type.Union([AnyObject, Type.Null()]),
    createdAt: Type.String(),
    updatedAt: Type.String(),
  },
  { additionalProperties: false },
);

const VariableView = Type.Object(
  {
    kind: Type.String(),
    description: Type.String(),
    rule: Type.String({ description: 'The rule in words (`must be a port number 1-65535`)' }),
    required: Type.Boolean(),
    secret: Type.Boolean(),
    default: Type.Optional(Type.String()),
    values: Type.Optional(Type.Array(Type.String())),
    schemes: Type.Optional(Type.Array(Type.String())),
    minimum: Type.Optional(Type.Integer()),
    maximum: Type.Optional(Type.Integer()),
    pattern: Type.Optional(Type.String()),
    minLength: Type.Optional(Type.Integer()),
    maxLength: Type.Optional(Type.Integer()),
  },
  { additionalProperties: false },
);
const TemplateView = Type.Object(
  {
    name: Type.String(),
    version: Type.Integer(),
    description: Type.String(),
    image: Type.String(),
    variables: Type.Record(Type.String(), VariableView),
    resourceLimits: LimitsSchema,
    networkPolicy: Type.Union([AnyObject, Type.Null()]),
    files: Type.Array(FileView),
  },
  { additionalProperties: false },
);

const VariableErrorView = Type.Object(
  { variable: Type.String(), rule: Type.String(), message: Type.String() },
  { additionalProperties: false },
);
const ValidationView = Type.Object(
  {
    valid: Type.Boolean(),
    errors: Type.Array(VariableErrorView),
    variables: Type.Record(
      Type.String(),
      Type.Object(
        { valid: Type.Boolean(), secret: Type.Boolean(), set: Type.Boolean(), errors: Type.Array(VariableErrorView) },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

const fileView = (f: EnvFile) => ({ path: f.path, mode: `0${f.mode.toString(8).padStart(3, '0')}`, size: fileBytes(f).length });

/** The answer for one environment: plain values, secrets as set/unset, never a secret value (the record holds none in clear). */
const view = (r: EnvironmentRecord) => {
  const secrets: Record<string, { set: boolean }> = {};
  for (const [name, spec] of Object.entries(r.snapshot.variables)) if (spec.secret) secrets[name] = { set: false };
  for (const name of r.secretNames) secrets[name] = { set: true };
  return {
    id: r.id,
    name: r.name,
    template: r.template,
    templateVersion: r.templateVersion,
    image: r.snapshot.image,
    variables: r.variables,
    secrets,
    files: mergeFiles(r.snapshot.files, r.files).map(fileView),
    resourceLimits: r.snapshot.resourceLimits,
    networkPolicy: r.snapshot.networkPolicy as unknown as Record<string, unknown> | null,
    createdAt: isoTime(r.createdMs),
    updatedAt: isoTime(r.updatedMs),
  };
};

const templateView = (t: Template) => ({
  name: t.name,
  version: t.version,
  description: t.description,
  image: t.image,
  variables: Object.fromEntries(
    Object.entries(t.variables).map(([name, s]) => {
      const { kind, description, required, secret, default: def, ...rest } = s;
      return [
        name,
        {
          kind,
          description,
          rule: describeRule(s),
          required: required ?? false,
          secret: secret ?? false,
          ...(def !== undefined ? { default: String(def) } : {}),
          ...rest,
        },
      ];
    }),
  ),
  resourceLimits: t.resourceLimits,
  networkPolicy: t.networkPolicy as unknown as Record<string, unknown> | null,
  files: t.files.map(fileView),
});

const TAGS = ['environments'];

/** The Environment API of the Director Protocol (`/v1/environments`), plus the template listing. */
export const environmentRoutes: FastifyPluginAsync<{ environments: EnvironmentService }> = async (base, { environments }) => {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  const Params = IdParams('env');

  app.get('/environments/templates', {
    config: { scope: 'sessions:read' },
    schema: {
      tags: TAGS,
      summary: 'List the shipped environment templates, with the typed rule of each variable',
      response: { 200: Envelope(Type.Object({ items: Type.Array(TemplateView) })), ...STANDARD_ERRORS },
    },
    handler: async (_req, reply) => send(reply, { items: environments.templates().map(templateView) }),
  });

  app.post('/environments', {
    config: { scope: 'sessions:write', idempotent: true },
    schema: {
      tags: TAGS,
      summary: 'Create an environment from a template',
      description:
        "Checks `variables` against the template's typed rules: a 400 names every variable at fault and its rule (`variables.PORT: must be a port number 1-65535`; `details.errors` lists them all); names the template does not declare are refused; unset variables get the template's defaults; required ones must be set. Secret variables and URIs with credentials are stored encrypted (AES-256-GCM) and never returned. The environment keeps the template version it was made from. Honours `Idempotency-Key`.",
      body: CreateEnvironmentSchema,
      response: { 201: Envelope(EnvironmentSchema), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, view(environments.create(callerOf(req), req.body)), 201),
  });

  app.get('/environments', {
    config: { scope: 'sessions:read' },
    schema: {
      tags: TAGS,
      summary: 'List environments, newest first',
      querystring: Type.Object({ template: Type.Optional(Type.String({ maxLength: 64 })), ...PageQuery }, { additionalProperties: false }),
      response: { 200: Envelope(Page(EnvironmentSchema)), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      const { template, limit = 20, offset = 0 } = req.query;
      const page = environments.list(callerOf(req), { ...(template ? { template } : {}), limit, offset });
      return send(reply, { items: page.items.map(view), total: page.total, limit, offset });
    },
  });

  app.post('/environments/import', {
    config: { scope: 'sessions:write', idempotent: true },
    schema: {
      tags: TAGS,
      summary: 'Import an environment',
      description:
        "Takes an export document (`kind: director.environment`, `version: 1`; another kind or an unknown version is refused with 400 naming `kind` or `version`) or the Director Protocol's body (`name`, `template`, `variables`, `files`). Variables are checked like a create, against the template this Director ships (a document exported from a newer template version is refused). Exports never carry secret values: every secret the document marks as set must be supplied in `variables` (400 naming it otherwise), or dropped from `secrets`. Honours `Idempotency-Key`.",
      body: Type.Union([ExportDocumentSchema, ImportBodySchema]),
      response: { 201: Envelope(EnvironmentSchema), ...STANDARD_ERRORS },
    },
    // The service reads kind and version before the rest, so an unknown version is named as such.
    validatorCompiler: () => () => true,
    handler: async (req, reply) => send(reply, view(environments.import(callerOf(req), req.body)), 201),
  });

  app.get('/environments/:id', {
    config: { scope: 'sessions:read' },
    schema: {
      tags: TAGS,
      summary: 'Get an environment',
      params: Params,
      response: { 200: Envelope(EnvironmentSchema), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, view(environments.get(callerOf(req), req.params.id))),
  });

  app.post('/environments/:id/validate', {
    // No body checks the environment as it is, as `{}` does.
    config: { scope: 'sessions:write', optionalBody: true },
    schema: {
      tags: TAGS,
      summary: 'Check variables against the environment without saving',
      description:
        "Answers 200 with `valid`, every broken rule (`errors: [{variable, rule, message}]`) and a verdict per variable, as if `variables` replaced the environment's values (the others keep theirs, secrets included; `{}` checks the environment as it is). Nothing is saved; values are never echoed.",
      params: Params,
      body: ValidateEnvironmentSchema,
      response: { 200: Envelope(ValidationView), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, environments.validate(callerOf(req), req.params.id, req.body)),
  });

  app.get('/environments/:id/export', {
    config: { scope: 'sessions:read' },
    schema: {
      tags: TAGS,
      summary: 'Export an environment as a portable, versioned document',
      description:
        '`{kind: "director.environment", version: 1, name, template, templateVersion, variables, secrets, files}`: plain values and file contents; secrets only as `{NAME: {set: true}}`, never their values. `POST /v1/environments/import` reads it back.',
      params: Params,
      response: { 200: Envelope(ExportDocumentSchema), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, environments.export(callerOf(req), req.params.id)),
  });

  app.delete('/environments/:id', {
    config: { scope: 'sessions:write' },
    schema: {
      tags: TAGS,
      summary: 'Delete an environment',
      description: 'Its secrets are erased. Sandboxes already made from it keep running with what they got.',
      params: Params,
      response: { 200: Envelope(Type.Object({ id: Type.String(), deleted: Type.Literal(true) })), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      environments.delete(callerOf(req), req.params.id);
      return send(reply, { id: req.params.id, deleted: true as const });
    },
  });
};
