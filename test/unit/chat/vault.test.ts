import { randomBytes } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { openDb } from '../../../core/db.ts';
import { createEventSink } from '../../../runtime/events.ts';
import { SecretBox } from '../../../core/secrets.ts';
import { VaultService } from '../../../orchestration/vault/service.ts';
import { VaultStore } from '../../../orchestration/vault/store.ts';
import { storing } from '../../helpers/sink.ts';

const caller = { workspace: 'wsp_t', actor: 'usr_alice' };
const VALUE = 'ghp_very-secret-value-123';

function setup() {
  const db = openDb('/tmp/x', ':memory:');
  const events = storing(createEventSink(db, { nowMs: () => 5 }));
  const vault = new VaultService({ store: new VaultStore(db), secrets: new SecretBox(randomBytes(32)), events, clock: { nowMs: () => 5 } });
  return { db, events, vault };
}

test('a stored value is sealed at rest and appears in no record, event or view', () => {
  const { db, events, vault } = setup();
  const rec = vault.store(caller, { name: 'GITHUB_TOKEN', value: VALUE, description: 'ci' });
  const row = JSON.stringify(db.sql.prepare('SELECT * FROM vault_secrets').all());
  assert.not.match(row, VALUE);
  assert.match(row, /"value":"v1\./);
  assert.not.match(JSON.stringify(VaultService.view(rec)), VALUE);
  assert.not.match(JSON.stringify(events.list({ limit: 100 })), VALUE);
  assert.is(events.list({ type: 'vault_secret_created', limit: 10 }).length, 1);
});

test('bindings resolve to the values in clear, as environment variables and as secrets to redact', () => {
  const { vault } = setup();
  const rec = vault.store(caller, { name: 'GITHUB_TOKEN', value: VALUE });
  const r = vault.resolve(caller.workspace, { GH: rec.id });
  assert.equal(r.env, { GH: VALUE });
  assert.equal(r.secrets, [{ name: 'GITHUB_TOKEN', value: VALUE }]);
  assert.throws(() => vault.resolve('wsp_other', { GH: rec.id }), /no longer exists/);
});

test('rotation replaces the value and bumps the version; deletion erases it and refuses bindings', () => {
  const { db, vault } = setup();
  const rec = vault.store(caller, { name: 'K', value: VALUE });
  const rotated = vault.rotate(caller, rec.id, { value: 'the-next-value-456' });
  assert.is(rotated.version, 2);
  assert.equal(vault.resolve(caller.workspace, { K: rec.id }).env, { K: 'the-next-value-456' });
  assert.is(vault.update(caller, rec.id, { value: 'third-value-789x' }).version, 3);
  vault.delete(caller, rec.id);
  assert.throws(() => vault.resolve(caller.workspace, { K: rec.id }), /no longer exists/);
  assert.is((db.sql.prepare('SELECT value FROM vault_secrets').get() as { value: string | null }).value, null);
  assert.throws(() => vault.get(caller, rec.id), /not found/);
});

test('a sealed value moved to another entry does not open there', () => {
  const { db, vault } = setup();
  const a = vault.store(caller, { name: 'A', value: VALUE });
  const b = vault.store(caller, { name: 'B', value: 'other-value-000' });
  db.sql.prepare('UPDATE vault_secrets SET value = (SELECT value FROM vault_secrets WHERE id = ?) WHERE id = ?').run(a.id, b.id);
  assert.throws(() => vault.resolve(caller.workspace, { B: b.id }), /cannot be opened/);
});

test('names are unique per workspace; values shorter than 8 characters are refused', () => {
  const { vault } = setup();
  vault.store(caller, { name: 'K', value: VALUE });
  assert.throws(() => vault.store(caller, { name: 'K', value: VALUE }), /exists/);
  assert.throws(() => vault.store(caller, { name: 'SHORT', value: 'abc' }), /value/);
  assert.throws(() => vault.store(caller, { name: 'X', value: VALUE, extra: 1 }), /unknown field/);
});

test.run();
