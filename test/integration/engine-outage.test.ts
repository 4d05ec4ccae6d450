/**
 * The engine going away: the API answers 503 in the envelope, keeps serving what does not need
 * the engine, and recovers by itself when the engine returns. The engine is reached through a
 * unix-socket proxy the test can cut.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { DockerEngine } from '../../runtime/engine/docker/docker.ts';
import { resolveEndpoint } from '../../runtime/engine/docker/connect.ts';
import { call, startApi, type TestApi } from '../helpers/api.ts';
import { eventually } from '../helpers/runtime.ts';

const test = suite('engine-outage');
const sock = `/tmp/director-proxy-${randomBytes(4).toString('hex')}.sock`;
let proxy: Server | null = null;
const open = new Set<Socket>();
let api: TestApi;
let url = '';
let token = '';

function startProxy(): Promise<void> {
  rmSync(sock, { force: true });
  proxy = createServer((client) => {
    const upstream = createConnection('/var/run/docker.sock');
    open.add(client).add(upstream);
    client.pipe(upstream).pipe(client);
    const done = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on('error', done).on('close', done);
    upstream.on('error', done).on('close', done);
  });
  return new Promise((r) => proxy!.listen(sock, r));
}

async function stopProxy(): Promise<void> {
  const p = proxy;
  proxy = null;
  for (const s of open) s.destroy();
  await new Promise<void>((r) => (p ? p.close(() => r()) : r()));
  rmSync(sock, { force: true });
}

test.before(async () => {
  await startProxy();
  api = await startApi({ execAgent: 'on' }, { engine: new DockerEngine(resolveEndpoint({ DOCKER_HOST: `unix://${sock}` })) });
  url = api.url;
  token = api.adminToken;
});
test.after(async () => {
  if (!proxy) await startProxy();
  await api?.close();
  await stopProxy();
});

test('engine down: creates 503 in the envelope, reads and executes through the agent still served; engine back: creates work again', async () => {
  const first = await call<{ data: { id: string } }>(url, 'POST', '/v1/sandboxes', { token, body: { image: 'director/busybox:latest' } });
  assert.is(first.status, 201, first.text);
  const id = first.body.data.id;

  await stopProxy();
  const create = await call(url, 'POST', '/v1/sandboxes', { token, body: { image: 'director/busybox:latest' } });
  assert.is(create.status, 503, create.text);
  assert.is(create.body.error?.code, 'SERVICE_UNAVAILABLE');
  assert.not.match(create.text, /    at /);
  // A running sandbox's executes go through its exec agent (the default), which needs no engine.
  const exec = await call<{ data: { stdout: string } }>(url, 'POST', `/v1/sandboxes/${id}/execute`, {
    token,
    body: { command: ['echo', 'engine down'] },
  });
  assert.is(exec.status, 200, exec.text);
  assert.is(exec.body.data.stdout, 'engine down\n');
  const ready = await call(url, 'GET', '/health/ready');
  assert.is(ready.status, 503);
  // What needs only the store keeps working.
  const got = await call<{ data: { status: string } }>(url, 'GET', `/v1/sandboxes/${id}`, { token });
  assert.is(got.status, 200);
  assert.is((await call(url, 'GET', '/health/live')).status, 200);

  await startProxy();
  await eventually(async () => (await call(url, 'GET', '/health/ready')).status === 200, 15_000, 250);
  const again = await call(url, 'POST', '/v1/sandboxes', { token, body: { image: 'director/busybox:latest' } });
  assert.is(again.status, 201, again.text);
  const out = await call<{ data: { stdout: string } }>(url, 'POST', `/v1/sandboxes/${id}/execute`, {
    token,
    body: { command: ['echo', 'back'] },
  });
  assert.is(out.body.data.stdout, 'back\n');
});

test.run();
