import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { isoTime } from '../../core/clock.ts';
import type { ProviderRecord } from '../../orchestration/chat/provider-store.ts';
import { RegisterProviderSchema, UpdateProviderSchema, type ProviderRegistry } from '../../orchestration/chat/providers.ts';
import { callerOf, send } from '../context.ts';
import { Envelope, IdParams, STANDARD_ERRORS } from '../schemas.ts';

const REDACTED = '[redacted]';

const ProviderSchema = Type.Object({
  id: Type.String(),
  name: Type.String(),
  type: Type.String(),
  baseUrl: Type.String(),
  apiKey: Type.Union([Type.Literal(REDACTED), Type.Null()], { description: 'Write-only: `[redacted]` when a key is set' }),
  defaultModel: Type.String(),
  pricing: Type.Record(Type.String(), Type.Object({ input: Type.Number(), output: Type.Number() })),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});

const view = (p: ProviderRecord) => ({
  id: p.id,
  name: p.name,
  type: p.type,
  baseUrl: p.baseUrl,
  apiKey: p.sealedKey ? REDACTED : null,
  defaultModel: p.defaultModel,
  pricing: p.pricing,
  createdAt: isoTime(p.createdMs),
  updatedAt: isoTime(p.updatedMs),
});

/** LLM providers an admin registers for the workspace (the Denkeeper seed's `/llm/providers`, keys redacted). */
export const llmProviderRoutes: FastifyPluginAsync<{ providers: ProviderRegistry }> = async (base, { providers }) => {
  const app = base.withTypeProvider<TypeBoxTypeProvider>();
  const Params = IdParams('prv');
  const Deleted = Envelope(Type.Object({ id: Type.String(), deleted: Type.Literal(true) }));

  app.get('/llm/providers', {
    config: { scope: 'admin' },
    schema: {
      tags: ['llm'],
      summary: 'List LLM providers',
      description:
        "The workspace's registered providers (keys redacted). The instance's provider (DIRECTOR_LLM_*) is not listed: agents that name no provider use it.",
      response: { 200: Envelope(Type.Object({ items: Type.Array(ProviderSchema) })), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, { items: providers.list(callerOf(req)).map(view) }),
  });

  app.post('/llm/providers', {
    config: { scope: 'admin' },
    schema: {
      tags: ['llm'],
      summary: 'Register an LLM provider',
      description:
        '`openai-compatible` (OpenAI, Ollama, vLLM, llama.cpp, LM Studio; `baseUrl` required) or `anthropic` (`baseUrl` defaults to https://api.anthropic.com/v1). The key is sealed at rest and never returned. `pricing`: USD per million tokens per model, for turn costs.',
      body: RegisterProviderSchema,
      response: { 201: Envelope(ProviderSchema), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, view(providers.register(callerOf(req), req.body)), 201),
  });

  app.get('/llm/providers/:id', {
    config: { scope: 'admin' },
    schema: {
      tags: ['llm'],
      summary: 'Get an LLM provider',
      params: Params,
      response: { 200: Envelope(ProviderSchema), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, view(providers.get(callerOf(req), req.params.id))),
  });

  app.patch('/llm/providers/:id', {
    config: { scope: 'admin' },
    schema: {
      tags: ['llm'],
      summary: 'Update an LLM provider',
      description: 'Changes take effect at the next turn. `apiKey: null` removes the key.',
      params: Params,
      body: UpdateProviderSchema,
      response: { 200: Envelope(ProviderSchema), ...STANDARD_ERRORS },
    },
    handler: async (req, reply) => send(reply, view(providers.update(callerOf(req), req.params.id, req.body))),
  });

  app.delete('/llm/providers/:id', {
    config: { scope: 'admin' },
    schema: { tags: ['llm'], summary: 'Delete an LLM provider', params: Params, response: { 200: Deleted, ...STANDARD_ERRORS } },
    handler: async (req, reply) => {
      providers.delete(callerOf(req), req.params.id);
      return send(reply, { id: req.params.id, deleted: true as const });
    },
  });
};
