import { randomBytes } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { systemClock } from '../../../core/clock.ts';
import { openDb } from '../../../core/db.ts';
import { SecretBox } from '../../../core/secrets.ts';
import { createEventSink } from '../../../runtime/events.ts';
import { MessageStore } from '../../../orchestration/chat/messages.ts';
import { ProviderStore } from '../../../orchestration/chat/provider-store.ts';
import { ProviderRegistry } from '../../../orchestration/chat/providers.ts';

const caller = { workspace: 'wsp_t', actor: 'usr_alice' };
const at = (agentId: string | null, turnId = 'trn_1') => ({ workspace: 'wsp_t', sessionId: 'ses_1', turnId, agentId, nowMs: 1 });

test('a turn reuses the built model; a provider whose URL or key changed is built anew', () => {
  const db = openDb('', ':memory:');
  const events = createEventSink(db, systemClock);
  const reg = new ProviderRegistry({
    config: { llmProvider: 'openai-compatible', llmBaseUrl: 'http://127.0.0.1:9/v1', llmApiKey: 'k', llmModel: 'm', llmPricing: '' },
    store: new ProviderStore(db),
    secrets: new SecretBox(randomBytes(32)),
    events,
    clock: systemClock,
  });
  const a = reg.resolve('wsp_t', null, null);
  assert.is(reg.resolve('wsp_t', null, null).languageModel, a.languageModel, 'the instance model is built once');
  assert.is.not(reg.resolve('wsp_t', null, 'other').languageModel, a.languageModel, 'another model is another entry');

  const p = reg.register(caller, {
    name: 'local',
    type: 'openai-compatible',
    baseUrl: 'http://127.0.0.1:9/v1',
    apiKey: 'k1',
    defaultModel: 'm',
  });
  const first = reg.resolve('wsp_t', p.id, null).languageModel;
  assert.is(reg.resolve('wsp_t', p.id, null).languageModel, first);
  reg.update(caller, p.id, { apiKey: 'k2' });
  const rekeyed = reg.resolve('wsp_t', p.id, null).languageModel;
  assert.is.not(rekeyed, first, 'a new key builds a new model');
  reg.update(caller, p.id, { baseUrl: 'http://127.0.0.1:10/v1' });
  const moved = reg.resolve('wsp_t', p.id, null).languageModel;
  assert.is.not(moved, rekeyed, 'a new URL builds a new model');
  const url = (moved as unknown as { config: { url(o: { path: string; modelId: string }): string } }).config.url({
    path: '/chat/completions',
    modelId: 'm',
  });
  assert.is(url, 'http://127.0.0.1:10/v1/chat/completions', 'the new model calls the new URL');
  reg.delete(caller, p.id);
  assert.throws(() => reg.resolve('wsp_t', p.id, null), /no longer exists/);
  // The in-memory store stays open: the event sink stores what was emitted right after this test.
});

test('the history a turn sends is what the rows hold, after appends, a restore and a deletion', () => {
  const db = openDb('', ':memory:');
  const store = new MessageStore(db, { historyCacheMax: 2 });
  const fresh = () => new MessageStore(db).history('ses_1', 'agt_a');
  store.append(at('agt_a'), [{ role: 'user', content: 'one' }]);
  assert.equal(store.history('ses_1', 'agt_a'), fresh());
  store.append(at('agt_a'), [{ role: 'assistant', content: [{ type: 'text', text: 'two', providerOptions: undefined }] }]);
  store.append(at('agt_b'), [{ role: 'user', content: 'other agent' }]);
  store.append(at(null), [{ role: 'user', content: 'no agent' }]);
  const h = store.history('ses_1', 'agt_a');
  assert.equal(h, fresh(), 'appended messages read as stored (undefined fields dropped, as JSON)');
  assert.equal(h.length, 2);
  h.push({ role: 'user', content: 'changed by a caller' });
  assert.equal(store.history('ses_1', 'agt_a').length, 2, 'a caller gets its own array');
  // More agents than the cache holds: the oldest is read from the rows again, still the same.
  store.history('ses_1', 'agt_b');
  store.history('ses_1', 'agt_c');
  assert.equal(store.history('ses_1', 'agt_a'), fresh());

  const snap = store.snapshot('ses_1').slice(0, 1);
  store.restore('wsp_t', 'ses_1', snap);
  assert.equal(store.history('ses_1', 'agt_a'), [{ role: 'user', content: 'one' }], 'a restore replaces the history');
  store.deleteOfSession('ses_1');
  assert.equal(store.history('ses_1', 'agt_a'), [], 'a deleted session has none');
  db.close();
});

test.run();
