/**
 * The Environment API over real HTTP: the Director Protocol's bodies for every endpoint,
 * variables checked against the template's typed rules (400 naming the variable and the rule),
 * secrets never in any response, the server log, the event stream or the store in clear,
 * another workspace's id answering like a missing one, a restart keeping records and secrets,
 * and what `forSandbox` hands over actually running in a sandbox of the real engine.
 */
import { mkdtempSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { buildApp } from '../../../api/app.ts';
import { AuthService } from '../../../api/auth/service.ts';
import { EnvironmentService } from '../../../orchestration/environments/service.ts';
import { createOrchestration, runtimeServices, type Orchestration } from '../../../orchestration/orchestration.ts';
import { SECRETS_KEY_FILE } from '../../../core/secrets.ts';
import { ADMIN_PASSWORD, call, type Res } from '../../helpers/api.ts';
import { testRuntime, type TestRuntime } from '../../helpers/runtime.ts';

const test = suite('api-environments');

/** Values that must never leave the server except as a sandbox's environment. */
const DB_URL = 'postgresql://user:pass@host:port/db';
const DB_PASSWORD_PART = 'user:pass@host';
const API_KEY = `sk-live-${randomBytes(12).toString('hex')}`;
const NPM_TOKEN = `npm_${randomBytes(12).toString('hex')}`;
const SECRETS = [DB_URL, DB_PASSWORD_PART, API_KEY, NPM_TOKEN];

/** Everything the server logs (Fastify's logger and the runtime's), at trace level. */
const log: string[] = [];
const logStream = new Writable({
  write(chunk: Buffer, _enc, done) {
    log.push(chunk.toString());
    done();
  },
});
/** Every response body this file receives. */
const seen: string[] = [];

interface Server {
  url: string;
  rt: TestRuntime;
  app: FastifyInstance;
  orch: Orchestration;
  environments: EnvironmentService;
  token: string;
}

const dataDir = mkdtempSync(path.join(tmpdir(), 'director-test-env-'));
const runtimeName = `test-${randomBytes(4).toString('hex')}`;
let srv: Server;
let workspaceB = '';

/** A Director server on `dataDir` with the environment service wired in, as the composition root will. */
async function startServer(): Promise<Server> {
  const rt = testRuntime({ dataDir, runtimeName, rateLimitSession: 100_000 }, { logger: pino({ level: 'trace' }, logStream) });
  await rt.start();
  const auth = new AuthService(rt.db, { tokenTtlMs: rt.config.jwtTtlMs });
  await auth.bootstrapAdmin(ADMIN_PASSWORD);
  const orch = createOrchestration(runtimeServices(rt));
  await orch.start();
  const environments = orch.environments;
  const app = await buildApp({ runtime: rt, auth, orchestration: orch, logger: { level: 'trace', stream: logStream } });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  const login = await call<{ data: { token: string } }>(url, 'POST', '/v1/auth/login', {
    body: { username: 'admin', password: ADMIN_PASSWORD },
  });
  return { url, rt, app, orch, environments, token: login.body.data.token };
}

async function stopServer(s: Server, opts: { cleanup: boolean }): Promise<void> {
  await s.app.close();
  await s.orch.close();
  if (opts.cleanup) await s.rt.cleanup();
  else await s.rt.close();
}

/** One request as the admin (in workspace B with `inB`); every answer is kept for the leak check. */
async function req<T = unknown>(method: string, p: string, body?: unknown, inB = false): Promise<Res<T>> {
  const r = await call<T>(srv.url, method, p, {
    token: srv.token,
    ...(body === undefined ? {} : { body }),
    ...(inB ? { headers: { 'x-director-workspace': workspaceB } } : {}),
  });
  seen.push(`${method} ${p} ${r.status} ${JSON.stringify([...r.headers])} ${r.text}`);
  return r;
}

interface EnvView {
  id: string;
  name: string;
  template: string;
  templateVersion: number;
  image: string;
  variables: Record<string, string>;
  secrets: Record<string, { set: boolean }>;
  files: { path: string; mode: string; size: number }[];
  resourceLimits: Record<string, number>;
  networkPolicy: { name: string } | null;
}
const data = <T>(r: Res<T>) => r.body.data as T;
/** The admin's own workspace (the bootstrap one). */
const workspaceA = () => (srv.rt.db.sql.prepare("SELECT id FROM workspaces WHERE name = 'default'").get() as { id: string }).id;

test.before(async () => {
  srv = await startServer();
  const ws = await req<{ id: string }>('POST', '/v1/workspaces', { name: 'env-tenant-b' });
  assert.is(ws.status, 201, ws.text);
  workspaceB = data(ws).id;
});
test.after(async () => {
  if (srv) await stopServer(srv, { cleanup: true });
});

let seedEnv = '';

test("POST /v1/environments with the Director Protocol's body: 201, defaults applied, the credential URI shown only as set", async () => {
  const r = await req<EnvView>('POST', '/v1/environments', {
    template: 'web-api',
    name: 'Production API Environment',
    variables: { PORT: '3000', NODE_ENV: 'production', DATABASE_URL: DB_URL },
  });
  assert.is(r.status, 201, r.text);
  const env = data(r);
  seedEnv = env.id;
  assert.match(env.id, /^env_[A-Za-z0-9_-]{16}$/);
  assert.is(env.name, 'Production API Environment');
  assert.is(env.template, 'web-api');
  assert.is(env.templateVersion, 1);
  assert.is(env.image, 'director/node:latest');
  assert.equal(env.variables, { PORT: '3000', NODE_ENV: 'production', LOG_LEVEL: 'info' });
  assert.equal(env.secrets, { API_KEY: { set: false }, DATABASE_URL: { set: true } });
  assert.equal(env.resourceLimits, { cpu: 2, memory: 1024, disk: 1024, pids: 512 });
  assert.is(env.networkPolicy?.name, 'web-api');
  assert.equal(
    env.files.map((f) => [f.path, f.mode]),
    [
      ['/workspace/package.json', '0644'],
      ['/workspace/server.js', '0644'],
    ],
  );
  assert.is(r.body.metadata?.version, '1.0.0', 'in the envelope');
});

test('a variable that breaks its rule is a 400 naming the variable and the rule; unknown names refused; nothing created', async () => {
  const before = data(await req<{ total: number }>('GET', '/v1/environments')).total;
  const bad = await req('POST', '/v1/environments', { template: 'web-api', name: 'bad', variables: { PORT: 'invalid_port' } });
  assert.is(bad.status, 400, bad.text);
  assert.is(bad.body.error?.code, 'VALIDATION_ERROR');
  assert.is(bad.body.error?.message, 'Invalid variables.PORT: must be a port number 1-65535');
  assert.equal(bad.body.error?.details.field, 'variables.PORT');
  assert.equal(bad.body.error?.details.rule, 'port');

  const many = await req('POST', '/v1/environments', {
    template: 'web-api',
    name: 'bad',
    variables: { PORT: 70000, NODE_ENV: 'staging', DATABASE_URL: 'ftp://x', SHELL: '/bin/zsh' },
  });
  assert.is(many.status, 400);
  const errors = many.body.error?.details.errors as { field: string; rule: string }[];
  assert.equal(
    errors.map((e) => [e.field, e.rule]),
    [
      ['variables.SHELL', 'unknown'],
      ['variables.PORT', 'port'],
      ['variables.NODE_ENV', 'enum'],
      ['variables.DATABASE_URL', 'scheme'],
    ],
  );
  assert.match(many.body.error!.message, /variables\.NODE_ENV: must be one of development, production, test/);

  const secretBad = await req('POST', '/v1/environments', { template: 'python', name: 'bad', variables: { SECRET_KEY: 'short-secret' } });
  assert.is(secretBad.status, 400);
  assert.is(secretBad.body.error?.details.field, 'variables.SECRET_KEY');
  assert.not.ok(secretBad.text.includes('short-secret'), 'a refused secret is not echoed');

  const shape = await req('POST', '/v1/environments', { template: 'web-api', name: 'bad', variables: { PORT: { n: 1 } } });
  assert.is(shape.status, 400);
  assert.match(shape.body.error!.details.field as string, /^variables\.PORT/);
  const tmpl = await req('POST', '/v1/environments', { template: 'cobol', name: 'bad' });
  assert.is(tmpl.body.error?.details.field, 'template');
  const extra = await req('POST', '/v1/environments', { template: 'shell', name: 'bad', colour: 'red' });
  assert.is(extra.body.error?.details.field, 'colour');
  assert.is(data(await req<{ total: number }>('GET', '/v1/environments')).total, before);
});

test("GET /v1/environments/{id} and the Director Protocol's list (?template=web-api&limit=20)", async () => {
  const one = await req<EnvView>('GET', `/v1/environments/${seedEnv}`);
  assert.is(one.status, 200, one.text);
  assert.is(data(one).id, seedEnv);
  assert.equal(data(one).secrets.DATABASE_URL, { set: true });
  const shell = await req<EnvView>('POST', '/v1/environments', { template: 'shell', name: 'scripts' });
  assert.is(shell.status, 201, shell.text);
  const list = await req<{ items: EnvView[]; total: number; limit: number; offset: number }>(
    'GET',
    '/v1/environments?template=web-api&limit=20',
  );
  assert.is(list.status, 200, list.text);
  assert.equal(
    data(list).items.map((e) => e.template),
    data(list).items.map(() => 'web-api'),
  );
  assert.ok(data(list).items.some((e) => e.id === seedEnv));
  assert.is(data(list).limit, 20);
  const all = data(await req<{ items: EnvView[] }>('GET', '/v1/environments?limit=500'));
  assert.ok(all.items.some((e) => e.id === data(shell).id));
  const templates = await req<{ items: { name: string; variables: Record<string, { rule: string }> }[] }>(
    'GET',
    '/v1/environments/templates',
  );
  assert.is(templates.status, 200, templates.text);
  const names = data(templates).items.map((t) => t.name);
  for (const n of ['node', 'python', 'shell', 'web-api']) assert.ok(names.includes(n), n);
  assert.is(data(templates).items.find((t) => t.name === 'web-api')!.variables.PORT!.rule, 'must be a port number 1-65535');
});

test("POST /{id}/validate with the Director Protocol's body answers per variable and saves nothing", async () => {
  const r = await req<{ valid: boolean; errors: unknown[]; variables: Record<string, { valid: boolean; secret: boolean; set: boolean }> }>(
    'POST',
    `/v1/environments/${seedEnv}/validate`,
    { variables: { PORT: 'invalid_port' } },
  );
  assert.is(r.status, 200, r.text);
  assert.is(data(r).valid, false);
  assert.equal(data(r).errors, [{ variable: 'PORT', rule: 'port', message: 'must be a port number 1-65535' }]);
  assert.is(data(r).variables.PORT!.valid, false);
  assert.equal(data(r).variables.DATABASE_URL, { valid: true, secret: true, set: true, errors: [] });
  // A secret the template declares but nobody set: a secret, not set, as GET shows it.
  assert.equal(data(r).variables.API_KEY, { valid: true, secret: true, set: false, errors: [] });
  const shown = data(await req<EnvView>('GET', `/v1/environments/${seedEnv}`));
  for (const [name, { set }] of Object.entries(shown.secrets)) {
    assert.equal([name, data(r).variables[name]?.secret, data(r).variables[name]?.set], [name, true, set], 'validate and GET disagree');
  }
  assert.not.match(r.text, DB_URL, 'a secret value was echoed');
  const fine = await req<{ valid: boolean }>('POST', `/v1/environments/${seedEnv}/validate`, {
    variables: { PORT: 8080, NODE_ENV: 'test' },
  });
  assert.is(data(fine).valid, true);
  assert.is(data(await req<EnvView>('GET', `/v1/environments/${seedEnv}`)).variables.PORT, '3000', 'nothing saved');
  const asIs = await req<{ valid: boolean }>('POST', `/v1/environments/${seedEnv}/validate`, {});
  assert.is(data(asIs).valid, true);
});

let exported: Record<string, unknown> = {};

test('GET /{id}/export is a portable, versioned document with secrets only as set', async () => {
  const created = await req<EnvView>('POST', '/v1/environments', {
    template: 'web-api',
    name: 'with secrets',
    variables: { PORT: 8080, DATABASE_URL: DB_URL, API_KEY },
    files: [{ path: 'config/app.json', content: '{"feature":true}\n', mode: '0600' }],
  });
  assert.is(created.status, 201, created.text);
  const r = await req<Record<string, unknown>>('GET', `/v1/environments/${data(created).id}/export`);
  assert.is(r.status, 200, r.text);
  exported = data(r);
  assert.equal(exported, {
    kind: 'director.environment',
    version: 1,
    name: 'with secrets',
    template: 'web-api',
    templateVersion: 1,
    variables: { PORT: '8080', NODE_ENV: 'development', LOG_LEVEL: 'info' },
    secrets: { API_KEY: { set: true }, DATABASE_URL: { set: true } },
    files: [{ path: '/workspace/config/app.json', content: '{"feature":true}\n', mode: '0600' }],
  });
});

test('POST /import: the export without its secrets is a 400 naming them; with them supplied it round-trips', async () => {
  const missing = await req('POST', '/v1/environments/import', exported);
  assert.is(missing.status, 400, missing.text);
  const fields = (missing.body.error?.details.errors as { field: string }[]).map((e) => e.field).sort();
  assert.equal(fields, ['variables.API_KEY', 'variables.DATABASE_URL']);
  assert.match(missing.body.error!.message, /exports never carry secret values/);

  const doc = { ...exported, variables: { ...(exported.variables as object), API_KEY, DATABASE_URL: DB_URL } };
  const ok = await req<EnvView>('POST', '/v1/environments/import', doc, true);
  assert.is(ok.status, 201, ok.text);
  assert.equal(data(ok).secrets, { API_KEY: { set: true }, DATABASE_URL: { set: true } });
  const again = await req<Record<string, unknown>>('GET', `/v1/environments/${data(ok).id}/export`, undefined, true);
  assert.equal(data(again), exported, 'the imported copy exports the same document');
  const s = srv.environments.forSandbox({ workspace: workspaceB }, data(ok).id);
  assert.is(s.environment.API_KEY, API_KEY, 'the supplied secret reaches the sandbox environment');
});

test("POST /import with the Director Protocol's body; unknown versions, kinds and invalid variables refused", async () => {
  const seedBody = await req<EnvView>('POST', '/v1/environments/import', {
    name: 'Imported Environment',
    template: 'web-api',
    variables: {},
    files: [],
  });
  assert.is(seedBody.status, 201, seedBody.text);
  assert.equal(data(seedBody).variables, { PORT: '3000', NODE_ENV: 'development', LOG_LEVEL: 'info' });
  const v2 = await req('POST', '/v1/environments/import', { ...exported, version: 2, somethingNew: {} });
  assert.is(v2.status, 400);
  assert.is(v2.body.error?.details.field, 'version');
  assert.match(v2.body.error!.message, /unknown export version \(version 2\)/);
  const kind = await req('POST', '/v1/environments/import', { ...exported, kind: 'director.workflow' });
  assert.is(kind.body.error?.details.field, 'kind');
  const invalid = await req('POST', '/v1/environments/import', { name: 'x', template: 'web-api', variables: { PORT: '0' } });
  assert.is(invalid.status, 400);
  assert.is(invalid.body.error?.message, 'Invalid variables.PORT: must be a port number 1-65535');
  const unknownField = await req('POST', '/v1/environments/import', { name: 'x', template: 'web-api', extra: true });
  assert.is(unknownField.body.error?.details.field, 'extra');
  const empty = await call(srv.url, 'POST', '/v1/environments/import', { token: srv.token });
  assert.is(empty.status, 400);
  assert.is(empty.body.error?.details.field, 'body');
});

test('DELETE /{id} removes it: 404 afterwards, gone from the list; idempotent create replays', async () => {
  const key = `env-${randomBytes(6).toString('hex')}`;
  const body = { template: 'shell', name: 'to delete', variables: { DEBUG: true } };
  const first = await call<EnvView>(srv.url, 'POST', '/v1/environments', { token: srv.token, body, headers: { 'idempotency-key': key } });
  const replay = await call<EnvView>(srv.url, 'POST', '/v1/environments', { token: srv.token, body, headers: { 'idempotency-key': key } });
  seen.push(first.text, replay.text);
  assert.is(first.status, 201, first.text);
  assert.is(replay.headers.get('idempotent-replayed'), 'true');
  assert.is(data(replay).id, data(first).id);
  const id = data(first).id;
  const del = await req('DELETE', `/v1/environments/${id}`);
  assert.is(del.status, 200, del.text);
  assert.equal(del.body.data, { id, deleted: true });
  assert.is((await req('GET', `/v1/environments/${id}`)).status, 404);
  assert.is((await req('DELETE', `/v1/environments/${id}`)).status, 404);
  assert.not.ok(data(await req<{ items: EnvView[] }>('GET', '/v1/environments?limit=500')).items.some((e) => e.id === id));
});

test("another workspace's environment id answers 404 exactly like a missing one, on every route, and is recorded", async () => {
  const MISSING = 'env_AAAAAAAAAAAAAAAA';
  const probes: [string, (id: string) => string, unknown?][] = [
    ['GET', (id) => `/v1/environments/${id}`],
    ['GET', (id) => `/v1/environments/${id}/export`],
    ['POST', (id) => `/v1/environments/${id}/validate`, { variables: { PORT: '1' } }],
    ['DELETE', (id) => `/v1/environments/${id}`],
  ];
  for (const [method, p, body] of probes) {
    const foreign = await req(method, p(seedEnv), body, true);
    const missing = await req(method, p(MISSING), body, true);
    assert.is(foreign.status, 404, `${method} ${p('{id}')}: ${foreign.text}`);
    const norm = (r: Res, id: string) => JSON.stringify(r.body.error).replaceAll(id, '<id>');
    assert.is(norm(foreign, seedEnv), norm(missing, MISSING), `${method} ${p('{id}')}`);
    assert.not.ok(foreign.text.includes('Production API'), 'nothing of the foreign environment leaks');
  }
  assert.not.ok(
    data(await req<{ items: EnvView[] }>('GET', '/v1/environments?limit=500', undefined, true)).items.some((e) => e.id === seedEnv),
  );
  assert.is((await req('GET', `/v1/environments/${seedEnv}`)).status, 200, 'untouched for its owner');
  const attempts = srv.rt.events.list({ workspace: workspaceB, type: 'cross_workspace_attempt', limit: 50 });
  assert.ok(attempts.filter((e) => e.details.resource === 'environment' && e.details.id === seedEnv).length >= probes.length);
});

test('the environment API is in the OpenAPI document and needs the sessions scopes', async () => {
  const doc = await call<{ paths: Record<string, Record<string, unknown>> }>(srv.url, 'GET', '/v1/openapi.json');
  for (const p of [
    '/v1/environments',
    '/v1/environments/{id}',
    '/v1/environments/{id}/validate',
    '/v1/environments/{id}/export',
    '/v1/environments/import',
  ]) {
    assert.ok(doc.body.paths[p], `${p} documented`);
  }
  const noToken = await call(srv.url, 'GET', '/v1/environments');
  assert.is(noToken.status, 401);
});

test('a sandbox made from what forSandbox hands over runs the image with the variables, secrets included, under the ceiling', async () => {
  const env = data(
    await req<EnvView>('POST', '/v1/environments', {
      template: 'node',
      name: 'node-run',
      variables: { NODE_ENV: 'production', NPM_TOKEN },
    }),
  );
  const caller = { workspace: workspaceA() };
  const s = srv.environments.forSandbox(caller, env.id);
  const sbx = await srv.rt.sandboxes.create({ image: s.image, environment: s.environment }, caller, { limitCeilings: [s.limitCeiling] });
  try {
    assert.is(sbx.spec.resourceLimits.memory, Math.min(srv.rt.config.defaultMemoryMb, 2048));
    const run = await srv.rt.executor.run(caller, sbx.id, {
      command: ['sh', '-c', 'node -e "process.stdout.write(process.env.NODE_ENV + \' \' + process.env.NPM_TOKEN)"; echo; npm --version'],
      timeout: 60_000,
    });
    assert.is(run.exitCode, 0, run.stderr);
    const [line, npmVersion] = run.stdout.trim().split('\n');
    assert.is(line, `production ${NPM_TOKEN}`);
    assert.match(npmVersion!, /^\d+\.\d+\.\d+$/);
    const view = await req<{ environmentKeys: string[] }>('GET', `/v1/sandboxes/${sbx.id}`);
    assert.ok(data(view).environmentKeys.includes('NPM_TOKEN'));
  } finally {
    await srv.rt.sandboxes.delete(caller, sbx.id);
  }
});

test('a restart keeps every record and its secrets decryptable with the key generated once (mode 0600)', async () => {
  const keyFile = path.join(dataDir, SECRETS_KEY_FILE);
  assert.is(statSync(keyFile).mode & 0o777, 0o600);
  const keyBefore = readFileSync(keyFile, 'utf8');
  const before = data(await req<{ items: EnvView[]; total: number }>('GET', '/v1/environments?limit=500'));
  await stopServer(srv, { cleanup: false });
  srv = await startServer();
  assert.is(readFileSync(keyFile, 'utf8'), keyBefore, 'the key is not regenerated');
  const after = data(await req<{ items: EnvView[]; total: number }>('GET', '/v1/environments?limit=500'));
  assert.equal(after, before);
  assert.is(srv.environments.forSandbox({ workspace: workspaceA() }, seedEnv).environment.DATABASE_URL, DB_URL);
});

test('no secret value appears in any response, the server log, the event stream or the store files', async () => {
  assert.ok(seen.length > 30, `responses checked: ${seen.length}`);
  assert.ok(log.length > 50, `log lines checked: ${log.length}`);
  const events = JSON.stringify(srv.rt.events.list({ limit: 10_000 }));
  assert.ok(events.includes('environment_created'));
  const audit = JSON.stringify(srv.rt.db.sql.prepare('SELECT * FROM audit_log').all());
  const store = readdirSync(dataDir)
    .filter((f) => f.startsWith('director.db'))
    .map((f) => readFileSync(path.join(dataDir, f)).toString('latin1'))
    .join('');
  for (const secret of SECRETS) {
    for (const [where, text] of [
      ['responses', seen.join('\n')],
      ['server log', log.join('')],
      ['events', events],
      ['audit log', audit],
      ['store files', store],
    ] as const) {
      assert.not.ok(text.includes(secret), `${secret.slice(0, 12)}… found in the ${where}`);
    }
  }
});

test.run();
