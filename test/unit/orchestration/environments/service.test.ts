import { randomBytes } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Clock } from '../../../../core/clock.ts';
import { openDb } from '../../../../core/db.ts';
import { DirectorError } from '../../../../core/errors.ts';
import { EnvironmentService } from '../../../../orchestration/environments/service.ts';
import { EnvironmentStore } from '../../../../orchestration/environments/store.ts';
import { loadTemplates, type Template } from '../../../../orchestration/environments/template.ts';
import { SecretBox } from '../../../../core/secrets.ts';
import { createEventSink } from '../../../../runtime/events.ts';

const A = { workspace: 'wsp_a', actor: 'usr_a' };
const B = { workspace: 'wsp_b', actor: 'usr_b' };
const DB_URL = 'postgresql://user:pass@host:port/db';
const API_KEY = 'sk-live-0123456789abcdef';
const SEED_CREATE = {
  template: 'web-api',
  name: 'Production API Environment',
  variables: { PORT: '3000', NODE_ENV: 'production', DATABASE_URL: DB_URL },
};

function setup(templates = loadTemplates(), key = randomBytes(32)) {
  const db = openDb('', ':memory:');
  let now = 1_700_000_000_000;
  const clock: Clock = { nowMs: () => now };
  const events = createEventSink(db, clock);
  const store = new EnvironmentStore(db);
  const svc = new EnvironmentService({ store, templates, secrets: new SecretBox(key), events, clock });
  return { db, svc, store, events, key, tick: (ms: number) => (now += ms) };
}

const rejects = (fn: () => unknown): DirectorError => {
  try {
    fn();
  } catch (err) {
    assert.instance(err, DirectorError);
    return err as DirectorError;
  }
  throw new Error('expected a DirectorError');
};

test("create with the Director Protocol's body: defaults applied, the credential URI sealed, nothing secret in the row", () => {
  const { svc, db } = setup();
  const env = svc.create(A, SEED_CREATE);
  assert.match(env.id, /^env_[A-Za-z0-9_-]{16}$/);
  assert.equal(env.variables, { PORT: '3000', NODE_ENV: 'production', LOG_LEVEL: 'info' });
  assert.equal(env.secretNames, ['DATABASE_URL']);
  assert.is(env.templateVersion, 1);
  const row = JSON.stringify(db.sql.prepare('SELECT * FROM environments').all());
  assert.not.ok(row.includes(DB_URL), 'the credential URI is not stored in clear');
  assert.not.ok(row.includes('pass@host'), 'no part of it either');
});

test('invalid variables: one 400 naming every variable and its rule; unknown names refused; nothing stored', () => {
  const { svc, store } = setup();
  const e = rejects(() =>
    svc.create(A, { template: 'web-api', name: 'x', variables: { PORT: 'invalid_port', NODE_ENV: 'prod', COLOUR: 'red' } }),
  );
  assert.is(e.code, 'VALIDATION_ERROR');
  assert.is(e.details?.field, 'variables.COLOUR');
  assert.match(e.message, /variables\.PORT: must be a port number 1-65535/);
  assert.match(e.message, /variables\.NODE_ENV: must be one of development, production, test/);
  assert.match(e.message, /variables\.COLOUR: is not a variable of template web-api/);
  assert.equal(
    (e.details?.errors as { variable: string; rule: string }[]).map((x) => [x.variable, x.rule]),
    [
      ['COLOUR', 'unknown'],
      ['PORT', 'port'],
      ['NODE_ENV', 'enum'],
    ],
  );
  assert.is(store.list(A.workspace, { limit: 10, offset: 0 }).total, 0);
  assert.is(rejects(() => svc.create(A, { template: 'cobol', name: 'x' })).details?.field, 'template');
  assert.is(rejects(() => svc.create(A, { template: 'web-api', name: 'x', extra: 1 })).details?.field, 'extra');
  const python = rejects(() => svc.create(A, { template: 'python', name: 'x', variables: { SECRET_KEY: 'short' } }));
  assert.is(python.details?.field, 'variables.SECRET_KEY');
  assert.not.ok(python.message.includes('short'), 'the message never repeats a (secret) value');
});

test('forSandbox: image, environment with secrets decrypted, the ceiling as the environment level, policy and files', () => {
  const { svc } = setup();
  const env = svc.create(A, {
    ...SEED_CREATE,
    variables: { ...SEED_CREATE.variables, API_KEY },
    files: [
      { path: 'server.js', content: 'override' },
      { path: 'bin/run', content: 'IyEvYmluL3NoCg==', encoding: 'base64', mode: '0755' },
    ],
  });
  const s = svc.forSandbox(A, env.id);
  assert.is(s.image, 'director/node:latest');
  assert.equal(s.environment, { PORT: '3000', NODE_ENV: 'production', LOG_LEVEL: 'info', DATABASE_URL: DB_URL, API_KEY });
  assert.equal(s.secretNames, ['API_KEY', 'DATABASE_URL']);
  assert.equal(s.limitCeiling, { level: 'environment', id: env.id, limits: { cpu: 2, memory: 1024, disk: 1024, pids: 512 } });
  assert.is(s.networkPolicy?.name, 'web-api');
  assert.equal(
    s.files.map((f) => [f.path, f.mode, f.content.toString()]),
    [
      ['/workspace/bin/run', 0o755, '#!/bin/sh\n'],
      ['/workspace/package.json', 0o644, loadTemplates().get('web-api')!.files[0]!.content],
      ['/workspace/server.js', 0o644, 'override'],
    ],
  );
});

test("another workspace's environment is a 404 on every method and is recorded as a cross_workspace_attempt", () => {
  const { svc, events } = setup();
  const env = svc.create(A, SEED_CREATE);
  for (const [what, fn] of [
    ['get', () => svc.get(B, env.id)],
    ['validate', () => svc.validate(B, env.id, {})],
    ['export', () => svc.export(B, env.id)],
    ['forSandbox', () => svc.forSandbox(B, env.id)],
    ['delete', () => svc.delete(B, env.id)],
  ] as const) {
    const e = rejects(fn);
    assert.is(e.code, 'NOT_FOUND', what);
    assert.is(e.message, `environment ${env.id} not found`, what);
  }
  const attempts = events.list({ workspace: B.workspace, type: 'cross_workspace_attempt', limit: 10 });
  assert.is(attempts.length, 5);
  assert.equal(attempts[0]!.details, { resource: 'environment', id: env.id });
  assert.is(svc.get(A, env.id).id, env.id, 'still there for its owner');
  assert.is(svc.list(B, { limit: 10, offset: 0 }).total, 0);
});

test('validate answers per variable without saving; stored secrets count as set', () => {
  const { svc } = setup();
  const env = svc.create(A, { ...SEED_CREATE, variables: { ...SEED_CREATE.variables, API_KEY } });
  const bad = svc.validate(A, env.id, { variables: { PORT: 'invalid_port' } });
  assert.is(bad.valid, false);
  assert.equal(bad.errors, [{ variable: 'PORT', rule: 'port', message: 'must be a port number 1-65535' }]);
  assert.is(bad.variables.PORT!.valid, false);
  assert.equal(bad.variables.API_KEY, { valid: true, secret: true, set: true, errors: [] });
  assert.equal(bad.variables.NODE_ENV, { valid: true, secret: false, set: true, errors: [] });
  const unknown = svc.validate(A, env.id, { variables: { 'not-a-name': 1, PORT: { x: 1 } } });
  assert.equal(unknown.variables['not-a-name']!.errors[0]!.rule, 'unknown');
  assert.equal(unknown.variables.PORT!.errors[0]!.rule, 'type');
  assert.ok(svc.validate(A, env.id, {}).valid);
  assert.equal(svc.get(A, env.id).variables.PORT, '3000', 'nothing saved');
});

test('export → import round trip: plain values and files travel, secrets only as set and must be supplied again', () => {
  const { svc } = setup();
  const env = svc.create(A, {
    ...SEED_CREATE,
    variables: { ...SEED_CREATE.variables, API_KEY },
    files: [{ path: 'a.txt', content: 'hi', mode: '600' }],
  });
  const doc = svc.export(A, env.id);
  assert.equal(doc, {
    kind: 'director.environment',
    version: 1,
    name: 'Production API Environment',
    template: 'web-api',
    templateVersion: 1,
    variables: { PORT: '3000', NODE_ENV: 'production', LOG_LEVEL: 'info' },
    secrets: { API_KEY: { set: true }, DATABASE_URL: { set: true } },
    files: [{ path: '/workspace/a.txt', content: 'hi', mode: '0600' }],
  });
  assert.not.ok(JSON.stringify(doc).includes('pass@host') || JSON.stringify(doc).includes(API_KEY));

  const e = rejects(() => svc.import(B, doc));
  assert.is(e.code, 'VALIDATION_ERROR');
  assert.match(e.message, /variables\.API_KEY: was set in the exported environment/);
  assert.match(e.message, /variables\.DATABASE_URL: was set in the exported environment/);

  const copy = svc.import(B, { ...doc, variables: { ...doc.variables, API_KEY, DATABASE_URL: DB_URL } });
  assert.is(copy.workspace, B.workspace);
  assert.equal(svc.export(B, copy.id), doc, 'the copy exports the same document');
  assert.equal(svc.forSandbox(B, copy.id).environment, svc.forSandbox(A, env.id).environment);

  const dropped = svc.import(B, { ...doc, secrets: {} });
  assert.equal(dropped.secretNames, [], 'dropping them from secrets imports without them');
});

test('import refuses other kinds, unknown versions, newer template versions and invalid variables, naming them', () => {
  const { svc } = setup();
  const doc = svc.export(A, svc.create(A, { template: 'shell', name: 's' }).id);
  assert.is(rejects(() => svc.import(A, { ...doc, version: 2, newField: true })).details?.field, 'version');
  assert.match(
    rejects(() => svc.import(A, { ...doc, version: 2 })).message,
    /unknown export version \(version 2\): this Director reads version 1/,
  );
  assert.is(rejects(() => svc.import(A, { ...doc, version: '1' })).details?.field, 'version');
  assert.is(rejects(() => svc.import(A, { ...doc, kind: 'director.session' })).details?.field, 'kind');
  const { kind: _k, ...noKind } = doc;
  assert.is(rejects(() => svc.import(A, noKind)).details?.field, 'kind');
  assert.is(rejects(() => svc.import(A, { ...doc, templateVersion: 2 })).details?.field, 'templateVersion');
  assert.is(rejects(() => svc.import(A, { ...doc, variables: { DEBUG: 'maybe' } })).details?.field, 'variables.DEBUG');
  assert.is(rejects(() => svc.import(A, { ...doc, secrets: { NOPE: { set: true } } })).details?.field, 'secrets.NOPE');
  assert.is(rejects(() => svc.import(A, [])).details?.field, 'body');
  // The Director Protocol's import body.
  const seed = svc.import(A, { name: 'Imported Environment', template: 'web-api', variables: {}, files: [] });
  assert.equal(seed.variables, { PORT: '3000', NODE_ENV: 'development', LOG_LEVEL: 'info' });
});

test('delete erases the sealed secrets; list filters by template, newest first', () => {
  const { svc, db, tick } = setup();
  const web = svc.create(A, SEED_CREATE);
  tick(10);
  const sh = svc.create(A, { template: 'shell', name: 'sh' });
  assert.equal(
    svc.list(A, { limit: 10, offset: 0 }).items.map((e) => e.id),
    [sh.id, web.id],
  );
  assert.equal(
    svc.list(A, { template: 'web-api', limit: 10, offset: 0 }).items.map((e) => e.id),
    [web.id],
  );
  svc.delete(A, web.id);
  assert.is(rejects(() => svc.get(A, web.id)).code, 'NOT_FOUND');
  const row = db.sql.prepare('SELECT secrets, secret_names FROM environments WHERE id = ?').get(web.id) as {
    secrets: unknown;
    secret_names: string;
  };
  assert.is(row.secrets, null);
  assert.is(row.secret_names, '[]');
  assert.is(svc.list(A, { limit: 10, offset: 0 }).total, 1);
});

test('an environment keeps its template version when a release ships a newer one', () => {
  const v1 = loadTemplates();
  const { svc, db, key } = setup(v1);
  const env = svc.create(A, { template: 'shell', name: 's' });
  const shell2: Template = { ...v1.get('shell')!, version: 2, image: 'director/base:latest', resourceLimits: { memory: 64 } };
  const later = new EnvironmentService({
    store: new EnvironmentStore(db),
    templates: new Map([...v1, ['shell', shell2]]),
    secrets: new SecretBox(key),
    events: createEventSink(db, { nowMs: () => 0 }),
    clock: { nowMs: () => 0 },
  });
  const s = later.forSandbox(A, env.id);
  assert.is(s.image, 'director/busybox:latest');
  assert.is(s.limitCeiling.limits.memory, 256);
  assert.is(later.create(A, { template: 'shell', name: 'new' }).templateVersion, 2);
});

test('secrets sealed under another key: forSandbox fails clearly and records secret_unreadable', () => {
  const { svc, db, events } = setup();
  const env = svc.create(A, SEED_CREATE);
  const other = new EnvironmentService({
    store: new EnvironmentStore(db),
    templates: loadTemplates(),
    secrets: new SecretBox(randomBytes(32)),
    events,
    clock: { nowMs: () => 0 },
  });
  const e = rejects(() => other.forSandbox(A, env.id));
  assert.is(e.code, 'INTERNAL_ERROR');
  assert.match(e.message, /sealed with another key/);
  assert.is(events.list({ type: 'secret_unreadable', limit: 5 }).length, 1);
  const sealed = (db.sql.prepare('SELECT secrets FROM environments WHERE id = ?').get(env.id) as { secrets: string }).secrets;
  const parts = sealed.split('.');
  const body = Buffer.from(parts[3]!, 'base64url');
  body[0]! ^= 0x01;
  parts[3] = body.toString('base64url');
  db.sql.prepare('UPDATE environments SET secrets = ? WHERE id = ?').run(parts.join('.'), env.id);
  assert.match(rejects(() => svc.forSandbox(A, env.id)).message, /failed authentication/);
});

test('events name environments and variables, never values', () => {
  const { svc, events } = setup();
  const env = svc.create(A, { ...SEED_CREATE, variables: { ...SEED_CREATE.variables, API_KEY } });
  svc.import(A, { ...svc.export(A, env.id), variables: { API_KEY, DATABASE_URL: DB_URL } });
  svc.delete(A, env.id);
  const all = events.list({ workspace: A.workspace, limit: 50 });
  assert.equal(all.map((e) => e.type).sort(), ['environment_created', 'environment_deleted', 'environment_imported']);
  const text = JSON.stringify(all);
  for (const v of [API_KEY, 'pass@host', 'production']) assert.not.ok(text.includes(v), v);
  assert.equal(all.find((e) => e.type === 'environment_created')!.details.secrets, ['API_KEY', 'DATABASE_URL']);
});

test.run();
