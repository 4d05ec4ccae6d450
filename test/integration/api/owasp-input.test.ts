/**
 * Mass assignment (OWASP API3/API6) and malformed input: engine powers asked for in a create
 * body are refused by name, create nothing and are recorded; oversize, malformed and misrouted
 * requests answer in the envelope without leaking internals.
 */
import { request } from 'node:http';
import { connect } from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { call, startApi, type Res, type TestApi } from '../../helpers/api.ts';
import { BUSYBOX } from '../../helpers/runtime.ts';

const test = suite('api-owasp-input');
let api: TestApi;
const LIMIT = 4096;

test.before(async () => {
  api = await startApi({ bodyLimitBytes: LIMIT, rateLimitSandbox: 1000 });
});
test.after(async () => {
  await api?.close();
});

const containers = async () => (await api.rt.engine.listContainers({ 'director.runtime': api.rt.config.runtimeName })).length;

function assertEnvelope(res: Res, status: number, code: string, what: string) {
  assert.is(res.status, status, `${what}: ${res.text}`);
  assert.is(res.body.success, false, `${what}: not in the envelope`);
  assert.is(res.body.error?.code, code, what);
  assert.type(res.body.error?.message, 'string', what);
  assert.type(res.body.error?.details, 'object', what);
  assert.match(String(res.body.metadata?.requestId), /^req_/, what);
  assert.is(res.headers.get('x-request-id'), res.body.metadata?.requestId, `${what}: X-Request-Id header missing or not the envelope's`);
  assert.not.ok(res.text.includes('    at '), `${what}: stack trace in the body`);
  assert.not.ok(/node_modules|\/work\/|file:\/\//.test(res.text), `${what}: a server path leaked`);
}

const MASS_ASSIGNMENT: Array<[string, Record<string, unknown>]> = [
  ['Privileged', { Privileged: true }],
  ['Binds', { Binds: ['/:/host'] }],
  ['CapAdd', { CapAdd: ['SYS_ADMIN'] }],
  ['NetworkMode', { NetworkMode: 'host' }],
  ['networkMode', { networkMode: 'host' }],
  ['networkMode', { networkMode: 'container:abc', securityPolicy: { allowNetwork: true } }],
  ['Runtime', { Runtime: 'runc' }],
  ['HostConfig', { HostConfig: { Privileged: true } }],
  ['workdir', { workdir: '/proc/self/fd' }],
  ['securityPolicy.noPrivileges', { securityPolicy: { noPrivileges: false } }],
  ['securityPolicy.Privileged', { securityPolicy: { Privileged: true } }],
  ['resourceLimits.Devices', { resourceLimits: { Devices: ['/dev/mem'] } }],
  ['PidMode', { PidMode: 'host' }],
  ['User', { User: 'root' }],
  ['securityPolicy.allowedPaths[0]', { securityPolicy: { allowedPaths: ['/var/run/docker.sock'] } }],
];

test('create bodies asking for engine powers are refused with 400 naming the field, create nothing and are recorded', async () => {
  const before = await containers();
  for (const [field, extra] of MASS_ASSIGNMENT) {
    const res = await call(api.url, 'POST', '/v1/sandboxes', { token: api.adminToken, body: { image: BUSYBOX, ...extra } });
    assertEnvelope(res, 400, 'VALIDATION_ERROR', field);
    assert.is(res.body.error?.details.field, field, `${JSON.stringify(extra)}: ${res.text}`);
    const ev = api.rt.events.list({ type: 'policy_violation', limit: 100 }).find((e) => e.details.field === field);
    assert.ok(ev, `no policy_violation event for ${field}`);
    assert.is(ev.severity, 'medium');
    assert.ok(ev.actor, `the event for ${field} does not say who asked`);
  }
  assert.is(await containers(), before, 'a refused request created a container');
  const list = await call<{ data: { total: number } }>(api.url, 'GET', '/v1/sandboxes', { token: api.adminToken });
  assert.is(list.body.data.total, 0);
});

test('unknown fields are refused by name rather than ignored', async () => {
  for (const [field, body] of [
    ['colour', { colour: 'red' }],
    ['resourceLimits.gpu', { resourceLimits: { gpu: 1 } }],
    ['securityPolicy.allowRoot', { securityPolicy: { allowRoot: true } }],
  ] as const) {
    const res = await call(api.url, 'POST', '/v1/sandboxes', { token: api.adminToken, body });
    assertEnvelope(res, 400, 'VALIDATION_ERROR', field);
    assert.is(res.body.error?.details.field, field);
  }
  // A null is not coerced into false.
  const nul = await call(api.url, 'POST', '/v1/sandboxes', { token: api.adminToken, body: { securityPolicy: { readOnlyRoot: null } } });
  assertEnvelope(nul, 400, 'VALIDATION_ERROR', 'null');
  assert.is(nul.body.error?.details.field, 'securityPolicy.readOnlyRoot');
  assert.is(await containers(), 0);
});

test('environment and label keys may be named like engine fields (they are user data)', async () => {
  const res = await call<{ data: { id: string; environmentKeys: string[] } }>(api.url, 'POST', '/v1/sandboxes', {
    token: api.adminToken,
    body: { image: BUSYBOX, environment: { Privileged: 'true', Binds: 'x' }, labels: { runtime: 'x' } },
  });
  assert.is(res.status, 201, res.text);
  assert.equal(res.body.data.environmentKeys.sort(), ['Binds', 'Privileged']);
  const inspect = await call<{ data: { stdout: string } }>(api.url, 'POST', `/v1/sandboxes/${res.body.data.id}/execute`, {
    token: api.adminToken,
    body: { command: ['id', '-u'] },
  });
  assert.is.not(inspect.body.data.stdout.trim(), '0', 'the sandbox runs as root');
  assert.is((await call(api.url, 'DELETE', `/v1/sandboxes/${res.body.data.id}`, { token: api.adminToken })).status, 200);
});

test('a JSON body over the body limit answers 413 in the envelope, with or without Content-Length', async () => {
  const big = { image: BUSYBOX, labels: { a: 'x'.repeat(LIMIT) } };
  const res = await call(api.url, 'POST', '/v1/sandboxes', { token: api.adminToken, body: big });
  assertEnvelope(res, 413, 'PAYLOAD_TOO_LARGE', 'content-length');
  const chunked = await rawRequest(
    'POST',
    '/v1/sandboxes',
    { authorization: `Bearer ${api.adminToken}`, 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
    [Buffer.from('{"labels":{"a":"'), Buffer.alloc(LIMIT, 'x'), Buffer.from('"}}')],
  );
  assertEnvelope(chunked, 413, 'PAYLOAD_TOO_LARGE', 'chunked');
  assert.is(await containers(), 0);
});

test('malformed JSON answers 400 naming the body; wrong content types 415; both in the envelope', async () => {
  for (const raw of ['{"image":', '{image: 1}', '[1,2', '\u0000', '{"a":1}{"b":2}']) {
    const res = await call(api.url, 'POST', '/v1/sandboxes', {
      token: api.adminToken,
      raw,
      headers: { 'content-type': 'application/json' },
    });
    assertEnvelope(res, 400, 'VALIDATION_ERROR', JSON.stringify(raw));
    assert.is(res.body.error?.details.field, 'body', raw);
  }
  const empty = await call(api.url, 'POST', '/v1/sandboxes/sbx_AAAAAAAAAAAAAAAA/execute', {
    token: api.adminToken,
    raw: '',
    headers: { 'content-type': 'application/json' },
  });
  assertEnvelope(empty, 400, 'VALIDATION_ERROR', 'empty');
  assert.is(empty.body.error?.details.field, 'body');
  // ...but on a route that takes no body, an empty one labelled JSON is simply no body.
  const del = await call(api.url, 'DELETE', '/v1/sandboxes/sbx_AAAAAAAAAAAAAAAA', {
    token: api.adminToken,
    raw: '',
    headers: { 'content-type': 'application/json' },
  });
  assertEnvelope(del, 404, 'NOT_FOUND', 'empty DELETE body');
  const array = await call(api.url, 'POST', '/v1/sandboxes', { token: api.adminToken, body: [] });
  assertEnvelope(array, 400, 'VALIDATION_ERROR', 'array body');
  for (const type of [
    'application/x-www-form-urlencoded',
    'multipart/form-data; boundary=x',
    'application/xml',
    'application/octet-stream',
  ]) {
    const res = await call(api.url, 'POST', '/v1/sandboxes', { token: api.adminToken, raw: 'image=x', headers: { 'content-type': type } });
    assertEnvelope(res, 415, 'UNSUPPORTED_MEDIA_TYPE', type);
  }
  // Fastify parses text/plain as a string, which the schema then refuses as not an object.
  const text = await call(api.url, 'POST', '/v1/sandboxes', {
    token: api.adminToken,
    raw: '{"image":"x"}',
    headers: { 'content-type': 'text/plain' },
  });
  assertEnvelope(text, 400, 'VALIDATION_ERROR', 'text/plain');
  assert.is(text.body.error?.details.field, 'body');
  assert.is(await containers(), 0);
});

/** Sends raw bytes and returns everything the server answers before it closes the connection. */
function rawExchange(bytes: string): Promise<string> {
  const { hostname, port } = new URL(api.url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.end(bytes));
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (text += d));
    socket.on('close', () => resolve(text));
    socket.on('error', reject);
  });
}

test("requests Node's HTTP parser refuses (oversized headers, a malformed request line) answer in the envelope too", async () => {
  const cases: Array<[string, string, number, string]> = [
    ['headers over the limit', `GET /v1/sandboxes HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431, 'HEADERS_TOO_LARGE'],
    ['a malformed request line', 'GET /v1/sandboxes HTTP/9.9 nonsense\r\nHost: x\r\n\r\n', 400, 'VALIDATION_ERROR'],
    ['a header without a colon', 'GET /v1/sandboxes HTTP/1.1\r\nHost x\r\n\r\n', 400, 'VALIDATION_ERROR'],
  ];
  for (const [what, bytes, status, code] of cases) {
    const answer = await rawExchange(bytes);
    const [head = '', body = ''] = answer.split('\r\n\r\n');
    assert.match(head, new RegExp(`^HTTP/1.1 ${status} `), `${what}: ${head}`);
    const parsed = JSON.parse(body) as {
      success: boolean;
      error: { code: string; details: { field: string } };
      metadata: { requestId: string };
    };
    assert.is(parsed.success, false, what);
    assert.is(parsed.error.code, code, what);
    assert.match(parsed.metadata.requestId, /^req_/, what);
    assert.match(head, new RegExp(`X-Request-Id: ${parsed.metadata.requestId}`), `${what}: no matching X-Request-Id`);
  }
  // The server keeps serving.
  assert.is((await call(api.url, 'GET', '/health')).status, 200);
});

test('an unknown route answers 404 in the envelope, authenticated or not', async () => {
  for (const [method, path] of [
    ['GET', '/v1/nope'],
    ['POST', '/v1/sandboxes/sbx_AAAAAAAAAAAAAAAA/escape'],
    ['GET', '/admin'],
    ['GET', '/v2/sandboxes'],
    ['GET', '/v1/../../etc/passwd'],
  ] as const) {
    const anon = await call(api.url, method, path);
    assertEnvelope(anon, 404, 'NOT_FOUND', `${method} ${path}`);
    const authed = await call(api.url, method, path, { token: api.adminToken });
    assertEnvelope(authed, 404, 'NOT_FOUND', `${method} ${path} (token)`);
  }
});

test('a wrong method on a known path answers 405 with Allow', async () => {
  for (const [method, path, allow] of [
    ['PATCH', '/v1/sandboxes', ['GET', 'POST']],
    ['PUT', '/v1/sandboxes/sbx_AAAAAAAAAAAAAAAA', ['DELETE', 'GET']],
    ['DELETE', '/v1/auth/login', ['POST']],
    ['GET', '/v1/sandboxes/sbx_AAAAAAAAAAAAAAAA/execute', ['POST']],
  ] as const) {
    const res = await call(api.url, method, path, { token: api.adminToken });
    assertEnvelope(res, 405, 'METHOD_NOT_ALLOWED', `${method} ${path}`);
    const got = (res.headers.get('allow') ?? '')
      .split(/,\s*/)
      .filter((m) => m !== 'HEAD')
      .sort();
    assert.equal(got, [...allow], `${method} ${path}: Allow ${res.headers.get('allow')}`);
  }
});

test('invalid ids and query parameters answer 400 naming them', async () => {
  const id = await call(api.url, 'GET', '/v1/sandboxes/not-an-id', { token: api.adminToken });
  assertEnvelope(id, 400, 'VALIDATION_ERROR', 'id');
  assert.is(id.body.error?.details.field, 'params.id');
  const limit = await call(api.url, 'GET', '/v1/sandboxes?limit=100000', { token: api.adminToken });
  assertEnvelope(limit, 400, 'VALIDATION_ERROR', 'limit');
  assert.is(limit.body.error?.details.field, 'querystring.limit');
  const extra = await call(api.url, 'GET', '/v1/sandboxes?admin=true', { token: api.adminToken });
  assertEnvelope(extra, 400, 'VALIDATION_ERROR', 'unknown query');
  assert.is(extra.body.error?.details.field, 'querystring.admin');
});

/** A request over a raw socket, for bodies fetch will not send as given (chunked, no length). */
function rawRequest(method: string, path: string, headers: Record<string, string>, chunks: Buffer[]): Promise<Res> {
  const url = new URL(path, api.url);
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, path: url.pathname + url.search, method, headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => {
        const text = Buffer.concat(parts).toString('utf8');
        let body: Res['body'] = {};
        try {
          body = JSON.parse(text) as Res['body'];
        } catch {
          body = {};
        }
        resolve({ status: res.statusCode ?? 0, headers: new Headers(res.headers as Record<string, string>), body, text });
      });
    });
    // The server may answer 413 and close before everything is written.
    req.on('error', reject);
    for (const c of chunks) req.write(c);
    req.end();
  });
}

test.run();
