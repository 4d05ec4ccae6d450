import { createAnthropic } from '@ai-sdk/anthropic';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import type { LanguageModel } from 'ai';
import { Type } from 'typebox';
import type { Clock } from '../../core/clock.ts';
import { isUniqueViolation } from '../../core/db.ts';
import { DirectorError, conflict, notFound, validationError } from '../../core/errors.ts';
import { newId } from '../../core/ids.ts';
import { checkSchema, describeIssue } from '../../core/validate.ts';
import { ConfigError, type Config } from '../../runtime/config.ts';
import type { EventSink } from '../../runtime/events.ts';
import type { Caller } from '../../runtime/sandbox/manager.ts';
import type { SecretSealer } from '../vault/service.ts';
import { createProviderFetch, type ProviderFetch } from './http-fetch.ts';
import { type Price, type ProviderRecord, type ProviderStore, type ProviderType } from './provider-store.ts';

/** The provider settings a chat needs; named in the 503 when none is configured. */
export const PROVIDER_SETTINGS = ['DIRECTOR_LLM_PROVIDER', 'DIRECTOR_LLM_BASE_URL', 'DIRECTOR_LLM_API_KEY', 'DIRECTOR_LLM_MODEL'] as const;
const ANTHROPIC_BASE_URL = 'https://api.anthropic.com/v1';
/** The id the instance-wide provider (DIRECTOR_LLM_*) goes by in turns and stats. */
export const INSTANCE_PROVIDER = 'instance';

const PriceSchema = Type.Object(
  { input: Type.Number({ minimum: 0, maximum: 1_000_000 }), output: Type.Number({ minimum: 0, maximum: 1_000_000 }) },
  { additionalProperties: false, description: 'USD per million tokens' },
);
export const PricingSchema = Type.Record(Type.String({ minLength: 1, maxLength: 256 }), PriceSchema, { maxProperties: 256 });
const BaseUrl = Type.String({ maxLength: 2048, pattern: '^https?://[^\\s]+$' });
const ApiKey = Type.String({ minLength: 1, maxLength: 4096, description: 'Write-only: stored sealed, never returned' });

export const RegisterProviderSchema = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 64, pattern: '^[a-z0-9][a-z0-9._-]*$' }),
    type: Type.Union([Type.Literal('openai-compatible'), Type.Literal('anthropic')]),
    baseUrl: Type.Optional(BaseUrl),
    apiKey: Type.Optional(ApiKey),
    defaultModel: Type.String({ minLength: 1, maxLength: 256 }),
    pricing: Type.Optional(PricingSchema),
  },
  { additionalProperties: false },
);

export const UpdateProviderSchema = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 64, pattern: '^[a-z0-9][a-z0-9._-]*$' })),
    baseUrl: Type.Optional(BaseUrl),
    apiKey: Type.Optional(Type.Union([ApiKey, Type.Null()], { description: 'A new key; `null` removes it' })),
    defaultModel: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    pricing: Type.Optional(PricingSchema),
  },
  { additionalProperties: false, minProperties: 1 },
);

/** A model ready for a turn: which provider, which model, its price. */
export interface ResolvedModel {
  providerId: string;
  providerName: string;
  type: ProviderType;
  model: string;
  languageModel: LanguageModel;
  price: Price | null;
}

export interface ProviderRegistryDeps {
  config: Pick<Config, 'llmProvider' | 'llmBaseUrl' | 'llmApiKey' | 'llmModel' | 'llmPricing'>;
  store: ProviderStore;
  secrets: SecretSealer;
  events: EventSink;
  clock: Clock;
}

const aadOf = (id: string) => `llm-provider:${id}`;
/** Built models kept per registry; past this many distinct (provider, key, model) the oldest is dropped. */
const MODEL_CACHE_MAX = 256;

/**
 * Where chat models come from: the instance's provider (DIRECTOR_LLM_*) and the providers an
 * admin registered for a workspace. Models are built through the Vercel AI SDK's providers
 * (`@ai-sdk/openai-compatible`, `@ai-sdk/anthropic`), always with an explicit base URL and key,
 * so nothing is read from the environment and nothing is sent anywhere unless configured.
 */
export class ProviderRegistry {
  readonly #d: ProviderRegistryDeps;
  readonly #pricing: Record<string, Price>;
  /**
   * Built models by everything they are built from (provider id, type, base URL, sealed key,
   * model): building one constructs the SDK provider and its response schemas, which cost about
   * a millisecond per turn, and a fresh schema is slower to parse the stream with than a warm one.
   * An update (new URL, new key: a new seal) or a deletion changes or removes the record, so a
   * stale entry is never found again.
   */
  readonly #models = new Map<string, LanguageModel>();
  /** The models' HTTP transport (kept-alive connections), shared by every model built here. */
  readonly #http: ProviderFetch = createProviderFetch();

  constructor(deps: ProviderRegistryDeps) {
    this.#d = deps;
    this.#pricing = checkInstanceConfig(deps.config);
    // The SDK prints provider warnings to the console by default; turns log them through pino instead.
    globalThis.AI_SDK_LOG_WARNINGS = false;
  }

  /** True when a chat in this workspace can reach a model at all. */
  configured(workspace: string): boolean {
    return this.#d.config.llmProvider !== '' || this.#d.store.count(workspace) > 0;
  }

  /** The 503 every chat endpoint answers while nothing is configured. */
  requireConfigured(workspace: string): void {
    if (!this.configured(workspace)) throw notConfigured();
  }

  resolve(workspace: string, providerId: string | null, model: string | null): ResolvedModel {
    if (providerId) {
      const rec = this.#d.store.get(workspace, providerId);
      if (!rec) throw conflict(`the agent's provider ${providerId} no longer exists`, { field: 'provider' });
      const m = model ?? rec.defaultModel;
      const languageModel = this.#model([rec.id, rec.type, rec.baseUrl, rec.sealedKey ?? '', m], () => {
        let key = '';
        try {
          if (rec.sealedKey) key = this.#d.secrets.open(rec.sealedKey, aadOf(rec.id));
        } catch (err) {
          throw new DirectorError(
            'CONFLICT',
            `the key of provider ${rec.id} cannot be opened with this instance's key`,
            { field: 'provider' },
            { cause: err },
          );
        }
        return build(rec.type, rec.baseUrl, key, m, this.#http.fetch);
      });
      return { providerId: rec.id, providerName: rec.name, type: rec.type, model: m, languageModel, price: rec.pricing[m] ?? null };
    }
    const c = this.#d.config;
    const type = c.llmProvider;
    if (type === '') throw notConfigured();
    const m = model ?? c.llmModel;
    return {
      providerId: INSTANCE_PROVIDER,
      providerName: INSTANCE_PROVIDER,
      type,
      model: m,
      // The instance's settings do not change while it runs: its models are keyed by name.
      languageModel: this.#model([INSTANCE_PROVIDER, m], () => build(type, c.llmBaseUrl, c.llmApiKey, m, this.#http.fetch)),
      price: this.#pricing[m] ?? null,
    };
  }

  #model(parts: string[], make: () => LanguageModel): LanguageModel {
    const key = JSON.stringify(parts);
    let m = this.#models.get(key);
    if (m) {
      // Most recently used last, so the oldest goes first when the cache is full.
      this.#models.delete(key);
    } else {
      m = make();
      if (this.#models.size >= MODEL_CACHE_MAX) this.#models.delete(this.#models.keys().next().value!);
    }
    this.#models.set(key, m);
    return m;
  }

  /** Closes the providers' kept-alive connections (shutdown, once no turn runs). */
  close(): void {
    this.#http.close();
  }

  list(caller: Caller): ProviderRecord[] {
    return this.#d.store.list(caller.workspace);
  }

  get(caller: Caller, id: string): ProviderRecord {
    const rec = this.#d.store.get(caller.workspace, id);
    if (!rec) throw notFound('provider', id);
    return rec;
  }

  checkExists(workspace: string, id: string, field: string): void {
    if (!this.#d.store.get(workspace, id)) throw validationError(field, `no provider ${id} in this workspace`);
  }

  register(caller: Caller, raw: unknown): ProviderRecord {
    checkSchema(RegisterProviderSchema, raw);
    if (raw.type === 'openai-compatible' && !raw.baseUrl) throw validationError('baseUrl', 'is required for openai-compatible providers');
    const now = this.#d.clock.nowMs();
    const id = newId('prv');
    const rec: ProviderRecord = {
      id,
      workspace: caller.workspace,
      name: raw.name,
      type: raw.type,
      baseUrl: raw.baseUrl ?? ANTHROPIC_BASE_URL,
      sealedKey: raw.apiKey ? this.#d.secrets.seal(raw.apiKey, aadOf(id)) : null,
      defaultModel: raw.defaultModel,
      pricing: raw.pricing ?? {},
      createdBy: caller.actor ?? null,
      createdMs: now,
      updatedMs: now,
      deletedMs: null,
    };
    try {
      this.#d.store.insert(rec);
    } catch (err) {
      if (isUniqueViolation(err)) throw conflict(`a provider named ${raw.name} exists in this workspace`, { field: 'name' });
      throw err;
    }
    this.#event('llm_provider_registered', caller, rec);
    return rec;
  }

  update(caller: Caller, id: string, raw: unknown): ProviderRecord {
    checkSchema(UpdateProviderSchema, raw);
    const cur = this.get(caller, id);
    const next: ProviderRecord = {
      ...cur,
      ...(raw.name !== undefined ? { name: raw.name } : {}),
      ...(raw.baseUrl !== undefined ? { baseUrl: raw.baseUrl } : {}),
      ...(raw.defaultModel !== undefined ? { defaultModel: raw.defaultModel } : {}),
      ...(raw.pricing !== undefined ? { pricing: raw.pricing } : {}),
      ...(raw.apiKey !== undefined ? { sealedKey: raw.apiKey === null ? null : this.#d.secrets.seal(raw.apiKey, aadOf(id)) } : {}),
      updatedMs: this.#d.clock.nowMs(),
    };
    try {
      this.#d.store.update(next);
    } catch (err) {
      if (isUniqueViolation(err)) throw conflict(`a provider named ${next.name} exists in this workspace`, { field: 'name' });
      throw err;
    }
    this.#event('llm_provider_updated', caller, next, raw.apiKey !== undefined);
    return next;
  }

  delete(caller: Caller, id: string): void {
    const rec = this.get(caller, id);
    this.#d.store.markDeleted(rec.id, this.#d.clock.nowMs());
    this.#event('llm_provider_deleted', caller, rec);
  }

  #event(type: string, caller: Caller, rec: ProviderRecord, keyChanged = false): void {
    this.#d.events.emit({
      type,
      severity: 'medium',
      workspace: rec.workspace,
      actor: caller.actor ?? null,
      details: { providerId: rec.id, name: rec.name, type: rec.type, baseUrl: rec.baseUrl, ...(keyChanged ? { keyChanged: true } : {}) },
    });
  }
}

/** Cost in USD of a turn's usage at a price; null when the model has none. */
export function costOf(price: Price | null, usage: { inputTokens: number; outputTokens: number }): number | null {
  if (!price) return null;
  return Math.round(((usage.inputTokens * price.input + usage.outputTokens * price.output) / 1e6) * 1e8) / 1e8;
}

function build(type: ProviderType, baseUrl: string, apiKey: string, model: string, fetch: typeof globalThis.fetch): LanguageModel {
  if (type === 'anthropic') return createAnthropic({ baseURL: baseUrl || ANTHROPIC_BASE_URL, apiKey, fetch })(model);
  return createOpenAICompatible({ name: 'director', baseURL: baseUrl, includeUsage: true, fetch, ...(apiKey ? { apiKey } : {}) }).chatModel(
    model,
  );
}

function notConfigured(): DirectorError {
  return new DirectorError(
    'SERVICE_UNAVAILABLE',
    `no LLM provider is configured: set ${PROVIDER_SETTINGS.join(', ')} (or register one with POST /v1/llm/providers)`,
    { settings: [...PROVIDER_SETTINGS], reason: 'no_provider' },
  );
}

/** Cross-setting checks of DIRECTOR_LLM_*; throws a ConfigError naming the variable. Returns the parsed pricing. */
export function checkInstanceConfig(c: ProviderRegistryDeps['config']): Record<string, Price> {
  if (c.llmProvider !== '') {
    if (!c.llmModel) throw new ConfigError(`DIRECTOR_LLM_MODEL is required when DIRECTOR_LLM_PROVIDER is ${c.llmProvider}`);
    if (c.llmProvider === 'openai-compatible' && !c.llmBaseUrl) {
      throw new ConfigError('DIRECTOR_LLM_BASE_URL is required when DIRECTOR_LLM_PROVIDER is openai-compatible');
    }
  }
  if (!c.llmPricing) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(c.llmPricing);
  } catch {
    throw new ConfigError('DIRECTOR_LLM_PRICING is not valid JSON');
  }
  const issue = describeIssue(PricingSchema, parsed);
  if (issue) throw new ConfigError(`DIRECTOR_LLM_PRICING is invalid ${issue}`);
  return parsed as Record<string, Price>;
}

export type { ProviderType };
