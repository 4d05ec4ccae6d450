import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkInstanceConfig, costOf } from '../../../orchestration/chat/providers.ts';

const base = { llmProvider: '' as const, llmBaseUrl: '', llmApiKey: '', llmModel: '', llmPricing: '' };

test('no provider is a valid configuration (chat then answers 503)', () => {
  assert.equal(checkInstanceConfig(base), {});
});

test('a provider needs a model, and openai-compatible a base URL; the error names the variable', () => {
  assert.throws(() => checkInstanceConfig({ ...base, llmProvider: 'anthropic' }), /DIRECTOR_LLM_MODEL/);
  assert.throws(() => checkInstanceConfig({ ...base, llmProvider: 'openai-compatible', llmModel: 'm' }), /DIRECTOR_LLM_BASE_URL/);
  assert.equal(checkInstanceConfig({ ...base, llmProvider: 'anthropic', llmModel: 'claude' }), {});
});

test('pricing is JSON checked at start: USD per million tokens per model', () => {
  assert.equal(checkInstanceConfig({ ...base, llmPricing: '{"m":{"input":3,"output":15}}' }), { m: { input: 3, output: 15 } });
  assert.throws(() => checkInstanceConfig({ ...base, llmPricing: '{"m":' }), /DIRECTOR_LLM_PRICING is not valid JSON/);
  assert.throws(() => checkInstanceConfig({ ...base, llmPricing: '{"m":{"input":-1,"output":1}}' }), /DIRECTOR_LLM_PRICING is invalid/);
});

test('cost: tokens times the price per million; null without a price', () => {
  assert.is(costOf({ input: 3, output: 15 }, { inputTokens: 1_000_000, outputTokens: 100_000 }), 4.5);
  assert.is(costOf({ input: 0.5, output: 1.5 }, { inputTokens: 10, outputTokens: 5 }), 0.0000125);
  assert.is(costOf(null, { inputTokens: 10, outputTokens: 5 }), null);
});

test.run();
