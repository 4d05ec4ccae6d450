import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { isoTime } from '../../core/clock.ts';
import { RotateSecretSchema, StoreSecretSchema, UpdateSecretSchema } from '../../orchestration/vault/schemas.ts';
import type { VaultService } from '../../orchestration/vault/service.ts';
import type { SecretRecord } from '../../orchestration/vault/store.ts';
import { callerOf, send } from '../context.ts';
import { Envelope, IdParams, Page, PageQuery, STANDARD_ERRORS } from '../schemas.ts';

const SecretSchema = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    description: Type.String(),
    version: Type.Integer({ description: '1 when stored, +1 at every rotation' }),
    createdBy: Type.Union([Type.String(), Type.Null()]),
    createdAt: Type.String(),
    updatedAt: Type.String(),
    rotatedAt: Type.Union([Type.String(), Type.Null()]),
  },
  { description: 'A vault entry: never its value' },
);

const view = (r: SecretRecord) => ({
  id: r.id,
  name: r.name,
  description: r.description,
  version: r.version,
  createdBy: r.createdBy,
  createdAt: isoTime(r.createdMs),
  updatedAt: isoTime(r.updatedMs),
  rotatedAt: r.rotatedMs === null ? null : isoTime(r.rotatedMs),
});

/** The credential vault (`/v1/vault`): list, store, update, delete, rotate. Values are write-only. */
export const vaultRoutes: FastifyPluginAsync<{ vault: VaultService }> = async (base, { vault }) => {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  const Params = IdParams('vlt');

  app.get('/vault', {
    config: { scope: 'vault:read' },
    schema: {
      tags: ['vault'],
      summary: 'List credentials',
      description: 'Names, versions and dates; values are never returned.',
      querystring: Type.Object({ ...PageQuery }, { additionalProperties: false }),
      response: { 200: Envelope(Page(SecretSchema)), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      const { limit = 20, offset = 0 } = req.query;
      const page = vault.list(callerOf(req), { limit, offset });
      return send(reply, { items: page.items.map(view), total: page.total, limit, offset });
    },
  });

  app.post('/vault', {
    config: { scope: 'vault:write' },
    schema: {
      tags: ['vault'],
      summary: 'Store a credential',
      description:
        "Sealed at rest (AES-256-GCM, key from DIRECTOR_SECRETS_KEY or the data dir's secrets.key) and never returned, not even now. An agent binds it (`secrets` on `POST /v1/agents`) to have it injected into its tool executions; it is redacted (`[redacted:NAME]`) from tool output the model reads, from messages, events and logs.",
      body: StoreSecretSchema,
      response: { 201: Envelope(SecretSchema), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, view(vault.store(callerOf(req), req.body)), 201),
  });

  app.get('/vault/:id', {
    config: { scope: 'vault:read' },
    schema: {
      tags: ['vault'],
      summary: 'Get a credential (without its value)',
      params: Params,
      response: { 200: Envelope(SecretSchema), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, view(vault.get(callerOf(req), req.params.id))),
  });

  app.patch('/vault/:id', {
    config: { scope: 'vault:write' },
    schema: {
      tags: ['vault'],
      summary: 'Update a credential',
      description: 'Name and description; a `value` replaces the secret as a rotation does.',
      params: Params,
      body: UpdateSecretSchema,
      response: { 200: Envelope(SecretSchema), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, view(vault.update(callerOf(req), req.params.id, req.body))),
  });

  app.post('/vault/:id/rotate', {
    config: { scope: 'vault:write' },
    schema: {
      tags: ['vault'],
      summary: 'Rotate a credential',
      description: 'Replaces the value (version + 1); turns that start afterwards inject the new one.',
      params: Params,
      body: RotateSecretSchema,
      response: { 200: Envelope(SecretSchema), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, view(vault.rotate(callerOf(req), req.params.id, req.body))),
  });

  app.delete('/vault/:id', {
    config: { scope: 'vault:write' },
    schema: {
      tags: ['vault'],
      summary: 'Delete a credential',
      description: 'Its sealed value is erased. An agent that binds it can no longer chat (409 naming the secret).',
      params: Params,
      response: { 200: Envelope(Type.Object({ id: Type.String(), deleted: Type.Literal(true) })), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => {
      vault.delete(callerOf(req), req.params.id);
      return send(reply, { id: req.params.id, deleted: true as const });
    },
  });
};
