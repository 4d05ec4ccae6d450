/**
 * Engine failures over real HTTP: what Docker answers reaches the client as a Director envelope
 * error with the status that means it (404 the container is gone, 409 its state refuses the
 * call, 503 the engine is unreachable), never Docker's own status or message; and an error
 * object that carries a `statusCode` (a library passing on an upstream status) cannot choose
 * the answer's status: only Fastify's own errors (malformed JSON, body too large) do.
 *
 * The engine is the real Docker driver; the test points its `exec` and `stats` at a container
 * of its choosing (one removed, one never started), so the errors are Docker's own.
 */
import { randomBytes } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { DockerEngine } from '../../../runtime/engine/docker/docker.ts';
import { resolveEndpoint } from '../../../runtime/engine/docker/connect.ts';
import type { ContainerStats, ExecHandle, ExecOptions } from '../../../runtime/engine/engine.ts';
import { call, startApi, type TestApi } from '../../helpers/api.ts';

/** The real driver, with `exec` and `stats` sent elsewhere when the test says so. */
class RedirectedEngine extends DockerEngine {
  /** Container the next calls go to instead of the sandbox's. */
  target: string | null = null;
  /** Another engine the calls go to (an unreachable one). */
  via: DockerEngine | null = null;
  /** Thrown by `stats` as it is (a library's error). */
  fault: Error | null = null;
  override exec(id: string, opts: ExecOptions): Promise<ExecHandle> {
    return this.via ? this.via.exec(this.target ?? id, opts) : super.exec(this.target ?? id, opts);
  }
  override stats(id: string): Promise<ContainerStats> {
    if (this.fault) return Promise.reject(this.fault);
    return this.via ? this.via.stats(this.target ?? id) : super.stats(this.target ?? id);
  }
}

const test = suite('api engine errors');
const engine = new RedirectedEngine();
const docker = new DockerEngine();
let api: TestApi;
let token = '';
let sandbox = '';
let removed = '';
let stopped = '';

test.before(async () => {
  api = await startApi({ execAgent: 'off' }, { engine });
  token = api.adminToken;
  const made = await call<{ data: { id: string } }>(api.url, 'POST', '/v1/sandboxes', {
    token,
    body: { image: 'director/busybox:latest' },
  });
  assert.is(made.status, 201, made.text);
  sandbox = made.body.data.id;
  const tag = randomBytes(4).toString('hex');
  const create = async (name: string) =>
    (await docker.docker.createContainer({ Image: 'director/busybox:latest', Cmd: ['sleep', '60'], name: `${name}-${tag}` })).id;
  removed = await create('director-test-removed');
  await docker.docker.getContainer(removed).remove({ force: true });
  stopped = await create('director-test-stopped');
});

test.after(async () => {
  if (stopped)
    await docker.docker
      .getContainer(stopped)
      .remove({ force: true })
      .catch(() => undefined);
  await api?.close();
});

const reset = () => {
  engine.target = null;
  engine.via = null;
  engine.fault = null;
};

const files = () => call(api.url, 'GET', `/v1/sandboxes/${sandbox}/files?path=/etc/passwd`, { token });
const metrics = () => call(api.url, 'GET', `/v1/sandboxes/${sandbox}/metrics`, { token });

test('a container the engine no longer has: 404 NOT_FOUND in the envelope, without the engine message', async () => {
  try {
    engine.target = removed;
    for (const r of [await files(), await metrics()]) {
      assert.is(r.status, 404, r.text);
      assert.is(r.body.success, false);
      assert.is(r.body.error?.code, 'NOT_FOUND', r.text);
      assert.not.match(r.text, /No such container|[0-9a-f]{64}/, 'the engine message stays in the log');
    }
  } finally {
    reset();
  }
});

test('a container whose state refuses the call (not running): 409 CONFLICT, not a 400 with the engine message', async () => {
  try {
    engine.target = stopped;
    const r = await files();
    assert.is(r.status, 409, r.text);
    assert.is(r.body.error?.code, 'CONFLICT', r.text);
    assert.not.match(r.text, /is not running|[0-9a-f]{64}/);
  } finally {
    reset();
  }
});

test('an unreachable engine: 503 SERVICE_UNAVAILABLE', async () => {
  try {
    engine.via = new DockerEngine(
      resolveEndpoint({ DOCKER_HOST: `unix:///tmp/director-no-engine-${randomBytes(4).toString('hex')}.sock` }),
    );
    for (const r of [await files(), await metrics()]) {
      assert.is(r.status, 503, r.text);
      assert.is(r.body.error?.code, 'SERVICE_UNAVAILABLE', r.text);
    }
  } finally {
    reset();
  }
});

test("an error object's own statusCode does not choose the status: 500 INTERNAL_ERROR, its message not shown", async () => {
  try {
    for (const statusCode of [400, 404, 409, 413, 418, 503]) {
      engine.fault = Object.assign(new Error(`upstream said ${statusCode}: secret-detail-${statusCode}`), {
        statusCode,
        code: 'FST_ERR_CTP_INVALID_JSON_BODY',
      });
      const r = await metrics();
      assert.is(r.status, 500, `statusCode ${statusCode}: ${r.text}`);
      assert.is(r.body.error?.code, 'INTERNAL_ERROR');
      assert.not.match(r.text, /secret-detail|upstream said/);
    }
  } finally {
    reset();
  }
  // The sandbox itself is fine: the same routes answer 200 through the real engine.
  assert.is((await files()).status, 200);
  assert.is((await metrics()).status, 200);
});

test("Fastify's own errors keep their status: malformed JSON 400, a body over the limit 413, a wrong media type 415", async () => {
  const bad = await call(api.url, 'POST', '/v1/sandboxes', { token, raw: '{"image":', headers: { 'content-type': 'application/json' } });
  assert.is(bad.status, 400, bad.text);
  assert.is(bad.body.error?.code, 'VALIDATION_ERROR');
  assert.is(bad.body.error?.details.issue, 'not valid JSON');
  const big = await call(api.url, 'POST', '/v1/sandboxes', {
    token,
    raw: JSON.stringify({ image: 'x'.repeat(api.rt.config.bodyLimitBytes + 10) }),
    headers: { 'content-type': 'application/json' },
  });
  assert.is(big.status, 413, big.text.slice(0, 300));
  assert.is(big.body.error?.code, 'PAYLOAD_TOO_LARGE');
  const media = await call(api.url, 'POST', '/v1/sandboxes', {
    token,
    raw: 'image=x',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
  });
  assert.is(media.status, 415, media.text);
  assert.is(media.body.error?.code, 'UNSUPPORTED_MEDIA_TYPE');
});

test.run();
