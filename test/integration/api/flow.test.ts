/** The Director Protocol's sandbox flow over real HTTP: login → create → execute → metrics → stop → delete. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { call, startApi, type TestApi } from '../../helpers/api.ts';

const test = suite('api-flow');
let api: TestApi;

test.before(async () => {
  api = await startApi();
});
test.after(async () => {
  await api?.close();
});

test('the Director Protocol sandbox flow works end to end in the envelope', async () => {
  const t = api.adminToken;
  const created = await call<{ data: { id: string; status: string } }>(api.url, 'POST', '/v1/sandboxes', {
    token: t,
    body: {
      name: 'Code Execution Sandbox',
      image: 'director/busybox:latest',
      environment: { NODE_ENV: 'production', API_KEY: 'secure_key' },
      resourceLimits: { cpu: 1, memory: 128, disk: 64, network: false, maxDuration: 300000 },
      securityPolicy: {
        allowFilesystem: true,
        allowNetwork: false,
        allowExec: true,
        allowedPaths: ['/app'],
        blockedPaths: ['/etc', '/root'],
        readOnlyRoot: true,
        noPrivileges: true,
      },
      networkMode: 'isolated',
    },
  });
  assert.is(created.status, 201, created.text);
  assert.is(created.body.success, true);
  assert.match(String(created.body.metadata?.requestId), /^req_/);
  assert.is(created.body.metadata?.version, '1.0.0');
  const id = created.body.data.id;
  assert.match(id, /^sbx_/);
  assert.not.match(created.text, 'secure_key', 'an environment value was echoed back');
  const exec = await call<{ data: { exitCode: number; stdout: string } }>(api.url, 'POST', `/v1/sandboxes/${id}/execute`, {
    token: t,
    body: { command: ['sh', '-c', 'echo Hello World; echo $API_KEY'], timeout: 30000 },
  });
  assert.is(exec.status, 200, exec.text);
  assert.is(exec.body.data.stdout, 'Hello World\nsecure_key\n');
  const metrics = await call(api.url, 'GET', `/v1/sandboxes/${id}/metrics`, { token: t });
  assert.is(metrics.status, 200, metrics.text);
  const got = await call<{ data: { status: string } }>(api.url, 'GET', `/v1/sandboxes/${id}`, { token: t });
  assert.is(got.body.data.status, 'running');
  const list = await call<{ data: { items: unknown[]; total: number } }>(api.url, 'GET', '/v1/sandboxes?status=running&limit=20', {
    token: t,
  });
  assert.is(list.body.data.total, 1);
  const stopped = await call<{ data: { status: string } }>(api.url, 'POST', `/v1/sandboxes/${id}/stop`, { token: t });
  assert.is(stopped.body.data.status, 'stopped');
  const del = await call(api.url, 'DELETE', `/v1/sandboxes/${id}`, { token: t });
  assert.is(del.status, 200);
  const gone = await call(api.url, 'GET', `/v1/sandboxes/${id}`, { token: t });
  assert.is(gone.status, 404);
  assert.is(gone.body.error?.code, 'NOT_FOUND');
});

test('execute streams as server-sent events with ids when asked', async () => {
  const t = api.adminToken;
  const created = await call<{ data: { id: string } }>(api.url, 'POST', '/v1/sandboxes', {
    token: t,
    body: { image: 'director/busybox:latest' },
  });
  const res = await fetch(`${api.url}/v1/sandboxes/${created.body.data.id}/execute`, {
    method: 'POST',
    headers: { authorization: `Bearer ${t}`, 'content-type': 'application/json', accept: 'text/event-stream' },
    body: JSON.stringify({ command: 'echo one; echo two >&2; exit 3' }),
  });
  assert.is(res.headers.get('content-type')?.split(';')[0], 'text/event-stream');
  // A stream is a response like any other: it carries the request id and the rate-limit headers.
  assert.match(res.headers.get('x-request-id') ?? '', /^req_/);
  for (const h of ['x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset', 'x-ratelimit-reset-time'])
    assert.ok(res.headers.get(h), `SSE response lacks ${h}`);
  const text = await res.text();
  // stdout and stderr travel separately, so either may come first; ids count up from 1.
  assert.match(text, /id: \d+\nevent: stdout\ndata: {"data":"one\\n"}/);
  assert.match(text, /^id: 1\n/);
  assert.match(text, /event: stderr\ndata: {"data":"two\\n"}/);
  assert.match(text, /event: exit\ndata: {"exitCode":3,/);
});

test('files go in and out over HTTP', async () => {
  const t = api.adminToken;
  const created = await call<{ data: { id: string } }>(api.url, 'POST', '/v1/sandboxes', {
    token: t,
    body: { image: 'director/busybox:latest' },
  });
  const id = created.body.data.id;
  const put = await call(api.url, 'PUT', `/v1/sandboxes/${id}/files?path=/workspace/hello.txt`, {
    token: t,
    raw: 'hello file',
    headers: { 'content-type': 'application/octet-stream' },
  });
  assert.is(put.status, 200, put.text);
  const get = await fetch(`${api.url}/v1/sandboxes/${id}/files?path=/workspace/hello.txt`, { headers: { authorization: `Bearer ${t}` } });
  assert.is(get.status, 200);
  assert.is(await get.text(), 'hello file');
});

test('health, readiness, metrics, OpenAPI and llms.txt answer', async () => {
  assert.is((await call(api.url, 'GET', '/health')).status, 200);
  assert.is((await call(api.url, 'GET', '/health/live')).status, 200);
  const ready = await call(api.url, 'GET', '/health/ready');
  assert.is(ready.status, 200, ready.text);
  const metrics = await fetch(`${api.url}/metrics`);
  assert.match(await metrics.text(), /director_sandbox_create_duration_seconds_bucket/);
  const spec = await call<{ openapi: string; paths: Record<string, unknown> }>(api.url, 'GET', '/v1/openapi.json');
  assert.is(spec.body.openapi, '3.1.0');
  assert.ok(spec.body.paths['/v1/sandboxes'] && spec.body.paths['/v1/sandboxes/{id}/execute']);
  const llms = await fetch(`${api.url}/llms.txt`);
  assert.match(await llms.text(), /# Director/);
});

test.run();
