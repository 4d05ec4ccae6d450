/**
 * Request fuzzing over loopback: a few thousand malformed requests (wrong types and shapes for
 * every POST body, random query strings and ids, huge strings, deep nesting, invalid UTF-8,
 * wrong content types). The server must never answer 5xx, every 4xx must be in the envelope,
 * and it must still work normally afterwards.
 *
 * Deterministic: `FUZZ_SEED=<n>` replays a run; `FUZZ_COUNT` changes its size.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { call, startApi, type TestApi } from '../../helpers/api.ts';
import { BUSYBOX } from '../../helpers/runtime.ts';

const test = suite('api-fuzz');
let api: TestApi;
const SEED = Number(process.env.FUZZ_SEED ?? 0x5eed);
const COUNT = Number(process.env.FUZZ_COUNT ?? 3000);
const DEADLINE_MS = 60_000;
const CONCURRENCY = 8;
const BODY_LIMIT = 262_144;
let sandboxId = '';
let networkId = '';

test.before(async () => {
  api = await startApi({
    networking: 'on',
    bodyLimitBytes: BODY_LIMIT,
    execTimeoutMs: 2000,
    maxExecTimeoutMs: 3000,
    rateLimitAuth: 1_000_000,
    rateLimitSandbox: 1_000_000,
    rateLimitGeneral: 1_000_000,
    rateLimitSession: 1_000_000,
  });
  const sb = await call<{ data: { id: string } }>(api.url, 'POST', '/v1/sandboxes', { token: api.adminToken, body: { image: BUSYBOX } });
  assert.is(sb.status, 201, sb.text);
  sandboxId = sb.body.data.id;
  const net = await call<{ data: { id: string } }>(api.url, 'POST', '/v1/networks', {
    token: api.adminToken,
    body: { name: 'fuzz', enableDNS: false },
  });
  assert.is(net.status, 201, net.text);
  networkId = net.body.data.id;
});
test.after(async () => {
  await api?.close();
});

/** mulberry32: small, fast, good enough to drive a fuzzer, and reproducible from one number. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  return { next, int, pick, chance: (p: number) => next() < p };
}
type Rng = ReturnType<typeof prng>;

const KEYS = [
  'name',
  'image',
  'command',
  'environment',
  'resourceLimits',
  'securityPolicy',
  'networkMode',
  'workdir',
  'labels',
  'timeout',
  'stdin',
  'subnet',
  'gateway',
  'enableDNS',
  'internal',
  'inbound',
  'outbound',
  'action',
  'protocol',
  'destination',
  'source',
  'port',
  'mode',
  'destinations',
  'host',
  'scopes',
  'expiresAt',
  'username',
  'password',
  'role',
  'workspace',
  'refreshToken',
  'Privileged',
  'HostConfig',
  'Binds',
  'constructor',
  'prototype',
  'toString',
  'valueOf',
  '',
  ' ',
  '\u0000',
  'a.b',
  '$ref',
];
const STRINGS = [
  '',
  ' ',
  'host',
  'none',
  'isolated',
  'container:x',
  'net_AAAAAAAAAAAAAAAA',
  'sbx_AAAAAAAAAAAAAAAA',
  '/proc/self/fd',
  '/',
  '//',
  '/../..',
  '..',
  '%00',
  '\u0000',
  '\ud800',
  '\uffff',
  '🦀',
  '\u202e',
  'admin',
  'tcp',
  'udp',
  'all',
  'allow',
  'deny',
  '*',
  '*.com',
  '0.0.0.0/0',
  '::/0',
  '10.231.0.0/24',
  '256.1.1.1',
  '1e999',
  'NaN',
  'null',
  'true',
  '2026-13-45T99:99:99Z',
  'sandboxes:read',
  'drt_',
  'dk_',
  '${jndi:ldap://x}',
  '<script>',
  "' OR 1=1 --",
  'director/busybox:latest',
  'x'.repeat(300),
];
const NUMBERS = [
  0,
  -1,
  1,
  0.5,
  -0.0001,
  1e308,
  -1e308,
  2 ** 53,
  2 ** 31,
  65535,
  65536,
  1000,
  3001,
  86_400_001,
  Number.MAX_SAFE_INTEGER + 2,
];

function randomString(r: Rng): string {
  if (r.chance(0.5)) return r.pick(STRINGS);
  if (r.chance(0.05)) return 'A'.repeat(r.int(BODY_LIMIT / 2));
  let s = '';
  const n = r.int(40);
  for (let i = 0; i < n; i++) s += String.fromCharCode(r.chance(0.8) ? 32 + r.int(95) : r.int(0xffff));
  return s;
}

function randomValue(r: Rng, depth = 0): unknown {
  const k = r.int(depth > 3 ? 5 : 7);
  switch (k) {
    case 0:
      return null;
    case 1:
      return r.chance(0.5);
    case 2:
      return r.pick(NUMBERS);
    case 3:
    case 4:
      return randomString(r);
    case 5:
      return Array.from({ length: r.int(5) }, () => randomValue(r, depth + 1));
    default: {
      const o: Record<string, unknown> = {};
      for (let i = r.int(5); i > 0; i--) o[r.chance(0.7) ? r.pick(KEYS) : randomString(r)] = randomValue(r, depth + 1);
      return o;
    }
  }
}

/** A valid-looking body with one to three fields broken, or something else entirely. */
function mutate(r: Rng, seed: Record<string, unknown>): unknown {
  if (r.chance(0.15)) return randomValue(r);
  const out = structuredClone(seed);
  for (let n = 1 + r.int(3); n > 0; n--) {
    const keys = Object.keys(out);
    const key = keys.length && r.chance(0.8) ? r.pick(keys) : r.pick(KEYS);
    const v = out[key];
    if (v && typeof v === 'object' && !Array.isArray(v) && r.chance(0.5)) out[key] = mutate(r, v as Record<string, unknown>);
    else if (Array.isArray(v) && v.length && r.chance(0.5))
      out[key] = (v as unknown[]).map((x) =>
        x && typeof x === 'object' && r.chance(0.5) ? mutate(r, x as Record<string, unknown>) : r.chance(0.3) ? randomValue(r, 2) : x,
      );
    else if (r.chance(0.2)) delete out[key];
    else out[key] = randomValue(r, 1);
  }
  return out;
}

interface Req {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string | Uint8Array;
}

const SEEDS = (): Array<[string, Record<string, unknown>]> => [
  [
    '/v1/sandboxes',
    {
      name: 'fz',
      image: 'director/nope:latest',
      command: ['sleep', '1'],
      environment: { A: 'b' },
      resourceLimits: { cpu: 0.5, memory: 64 },
      securityPolicy: { readOnlyRoot: true },
      networkMode: 'none',
    },
  ],
  [`/v1/sandboxes/${sandboxId}/execute`, { command: ['echo', 'hi'], timeout: 1000, environment: { A: 'b' } }],
  ['/v1/sandboxes/sbx_AAAAAAAAAAAAAAAA/execute', { command: 'echo hi' }],
  ['/v1/networks', { name: 'fz', subnet: '10.231.250.0/24', gateway: '10.231.250.1', enableDNS: false, internal: true }],
  [
    `/v1/networks/${networkId}/policies`,
    {
      name: 'p',
      inbound: [{ action: 'allow', protocol: 'all', source: '127.0.0.1/32' }],
      outbound: [{ action: 'deny', protocol: 'all' }],
      logging: true,
      metrics: true,
    },
  ],
  [`/v1/networks/${networkId}/allow-access`, { destinations: [{ host: 'api.example.com', port: 443, protocol: 'tcp' }] }],
  ['/v1/api-keys', { name: 'k', scopes: ['sandboxes:read'], expiresAt: '2099-01-01T00:00:00Z' }],
  ['/v1/auth/login', { username: 'nobody', password: 'x' }],
  ['/v1/auth/refresh', { refreshToken: `drt_${'A'.repeat(43)}` }],
  ['/v1/users', { username: 'u', password: 'short', role: 'developer' }],
  ['/v1/workspaces', { name: 'Not Valid' }],
];

const GETS = (): string[] => [
  '/v1/sandboxes',
  '/v1/networks',
  `/v1/sandboxes/${sandboxId}/files`,
  `/v1/networks/${networkId}/proposal`,
  `/v1/sandboxes/${sandboxId}`,
  '/v1/api-keys',
  '/v1/users',
  '/health',
  '/v1/auth/me',
];
const ID_ROUTES = [
  'GET /v1/sandboxes/:id',
  'GET /v1/sandboxes/:id/metrics',
  'POST /v1/sandboxes/:id/stop',
  'DELETE /v1/sandboxes/:id',
  'GET /v1/networks/:id',
  'DELETE /v1/networks/:id',
  'POST /v1/networks/:id/isolate',
  'DELETE /v1/api-keys/:id',
  'POST /v1/api-keys/:id/rotate',
];
const TYPES = [
  'application/json',
  'application/json; charset=utf-8',
  'application/json; charset=utf-16',
  'text/plain',
  'application/x-www-form-urlencoded',
  'application/octet-stream',
  'multipart/form-data',
  'application/xml',
  'json',
  '',
  'application/json, text/plain',
  'APPLICATION/JSON',
];

/** Percent-encodes every UTF-8 byte (lone surrogates become U+FFFD, as on the wire). */
const pct = (s: string) => [...Buffer.from(s, 'utf8')].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');

function randomQuery(r: Rng): string {
  const keys = [
    'limit',
    'offset',
    'status',
    'label',
    'path',
    'format',
    'force',
    'admin',
    '__proto__',
    'constructor[prototype]',
    'limit[]',
    '',
  ];
  const vals = [
    '-1',
    '0',
    '1',
    '501',
    '1e3',
    'abc',
    'true',
    'running',
    'a=b',
    '=',
    '%',
    '%zz',
    '%00',
    '%ff%fe',
    '/etc/passwd',
    '../../',
    'tar',
    'file',
    '[]',
    '{}',
    'x'.repeat(3000),
  ];
  // Bounded: a request line over Node's 16 KiB header limit never reaches the app (see the parser test below).
  return Array.from(
    { length: 1 + r.int(4) },
    () => `${r.pick(keys)}=${r.chance(0.2) ? pct(randomString(r)).slice(0, 2000) : r.pick(vals)}`,
  ).join('&');
}

function randomId(r: Rng): string {
  return r.pick([
    'x',
    'sbx_',
    'sbx_AAAAAAAAAAAAAAAA',
    'net_AAAAAAAAAAAAAAAA',
    `${sandboxId}x`,
    sandboxId.toLowerCase(),
    '..',
    '%2e%2e',
    '%00',
    '%ff%fe',
    pct('🦀'),
    'sbx_%2F..%2F..%2Fetc',
    'a'.repeat(250),
    `key_${'A'.repeat(16)}`,
    pct(randomString(r)).slice(0, 300),
  ]);
}

/** Invalid UTF-8 inside an otherwise well-formed JSON string. */
function badUtf8(r: Rng): Uint8Array {
  const junk = [[0xff], [0xfe, 0xff], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xe2, 0x82]];
  return Buffer.concat([
    Buffer.from('{"name":"'),
    Buffer.from(r.pick(junk)),
    Buffer.from('","command":["'),
    Buffer.from(r.pick(junk)),
    Buffer.from('"]}'),
  ]);
}

function deepNesting(r: Rng): string {
  const depth = r.pick([64, 1000, 10_000, 100_000]);
  return r.chance(0.5) ? `${'['.repeat(depth)}${']'.repeat(depth)}` : `${'{"labels":'.repeat(depth)}1${'}'.repeat(depth)}`;
}

function generate(r: Rng): Req {
  const auth = { authorization: `Bearer ${api.adminToken}` };
  const kind = r.int(100);
  if (kind < 55) {
    const [path, seed] = r.pick(SEEDS());
    const headers: Record<string, string> = { ...auth, 'content-type': 'application/json' };
    if (r.chance(0.1)) headers.accept = 'text/event-stream';
    if (r.chance(0.05)) headers['idempotency-key'] = `fz-${r.int(20)}`;
    return { method: 'POST', path, headers, body: JSON.stringify(mutate(r, seed)) ?? 'null' };
  }
  if (kind < 65) {
    const [path] = r.pick(SEEDS());
    const body = r.pick([
      () => deepNesting(r),
      () => badUtf8(r),
      () => '{"__proto__":{"admin":true}}',
      () => '{"constructor":{"prototype":{"x":1}}}',
      () => JSON.stringify(randomString(r)),
      () => '{"a":1,"a":2}',
      () => '\ufeff{}',
      () => '1e999999',
    ])();
    return { method: 'POST', path, headers: { ...auth, 'content-type': r.chance(0.7) ? 'application/json' : r.pick(TYPES) }, body };
  }
  if (kind < 75) {
    const [path, seed] = r.pick(SEEDS());
    const type = r.pick(TYPES);
    return {
      method: 'POST',
      path,
      headers: { ...auth, ...(type ? { 'content-type': type } : {}) },
      body: r.chance(0.5) ? JSON.stringify(seed) : randomString(r),
    };
  }
  if (kind < 85) return { method: 'GET', path: `${r.pick(GETS())}?${randomQuery(r)}`, headers: auth };
  if (kind < 95) {
    const [method, tpl] = r.pick(ID_ROUTES).split(' ') as [string, string];
    return { method, path: tpl.replace(':id', randomId(r)) + (r.chance(0.2) ? `?${randomQuery(r)}` : ''), headers: auth };
  }
  // Headers: random credentials, workspaces and methods on known paths.
  const headers: Record<string, string> = {
    authorization: r.pick([
      `Bearer ${randomString(r)
        .replace(/[^\x21-\x7e]/g, '')
        .slice(0, 8000)}`,
      'Bearer',
      'Bearer a.b.c',
      `bearer ${api.adminToken}`,
      `Bearer ${api.adminToken} extra`,
      'Basic Og==',
    ]),
  };
  if (r.chance(0.5))
    headers['x-director-workspace'] = randomString(r)
      .replace(/[^\x21-\x7e]/g, '')
      .slice(0, 300);
  const method = r.pick(['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD']);
  // `bearer <token>` is valid: a DELETE must not remove the sandbox the other cases aim at.
  const paths = method === 'DELETE' ? GETS().filter((p) => !p.includes(sandboxId)) : GETS();
  return { method, path: r.pick(paths), headers };
}

interface Failure {
  req: Req;
  status: number;
  text: string;
}

async function send(req: Req): Promise<{ status: number; type: string; text: string }> {
  const res = await fetch(`${api.url}${req.path}`, {
    method: req.method,
    headers: req.headers,
    ...(req.body !== undefined ? { body: req.body } : {}),
    signal: AbortSignal.timeout(15_000),
  });
  if ((res.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
    await res.body?.cancel();
    return { status: res.status, type: 'text/event-stream', text: '' };
  }
  return { status: res.status, type: res.headers.get('content-type') ?? '', text: await res.text() };
}

function problem(req: Req, status: number, type: string, text: string): string | null {
  if (status >= 500) return '5xx';
  if (status < 400 || req.method === 'HEAD') return null;
  if (!type.startsWith('application/json')) return `4xx not JSON (${type})`;
  let b: { success?: unknown; error?: { code?: unknown; message?: unknown; details?: unknown }; metadata?: { requestId?: unknown } };
  try {
    b = JSON.parse(text) as typeof b;
  } catch {
    return '4xx body is not JSON';
  }
  if (
    b.success !== false ||
    typeof b.error?.code !== 'string' ||
    typeof b.error.message !== 'string' ||
    typeof b.error.details !== 'object' ||
    typeof b.metadata?.requestId !== 'string'
  )
    return '4xx not in the envelope';
  if (text.includes('    at ')) return 'stack trace';
  return null;
}

test(`${COUNT} malformed requests: no 5xx, every 4xx in the envelope (seed ${SEED})`, async () => {
  const r = prng(SEED);
  // Generated up front, so the sequence (and a failure's index) does not depend on timing.
  const reqs = Array.from({ length: COUNT }, () => generate(r));
  const failures: Array<Failure & { why: string; i: number }> = [];
  const statuses = new Map<number, number>();
  const until = Date.now() + DEADLINE_MS;
  let next = 0;
  let sent = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < reqs.length && Date.now() < until) {
        const i = next++;
        const req = reqs[i]!;
        let res: { status: number; type: string; text: string };
        try {
          res = await send(req);
        } catch (err) {
          failures.push({ i, req, status: 0, text: String(err), why: 'transport error' });
          continue;
        }
        sent++;
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        const why = problem(req, res.status, res.type, res.text);
        if (why) failures.push({ i, req, status: res.status, text: res.text.slice(0, 400), why });
        // Keep what a valid-by-chance body created from piling up.
        if (res.status === 201 && req.path === '/v1/sandboxes') await deleteCreated('sandboxes', res.text);
        if (res.status === 201 && req.path === '/v1/networks') await deleteCreated('networks', res.text);
      }
    }),
  );
  console.log(
    `fuzz seed ${SEED}: ${sent} requests; statuses ${JSON.stringify(Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0])))}`,
  );
  // 5xx first: they matter most.
  for (const f of [...failures].sort((a, b) => b.status - a.status).slice(0, 5)) {
    const body = f.req.body === undefined ? '' : typeof f.req.body === 'string' ? f.req.body.slice(0, 300) : `<${f.req.body.length} bytes>`;
    console.log(
      `#${f.i} ${f.why}: ${f.req.method} ${f.req.path.slice(0, 200)} ${JSON.stringify({ ...f.req.headers, authorization: '…' })} ${body}\n  -> ${f.status} ${f.text}`,
    );
  }
  assert.is(failures.length, 0, `${failures.length} bad answers (first: ${failures[0]?.why})`);
  assert.ok(sent >= Math.min(COUNT, 1000), `only ${sent} requests within the deadline`);
});

async function deleteCreated(kind: 'sandboxes' | 'networks', text: string) {
  const id = (JSON.parse(text) as { data: { id: string } }).data.id;
  await call(api.url, 'DELETE', `/v1/${kind}/${id}?${kind === 'networks' ? 'force=true' : ''}`.replace(/\?$/, ''), {
    token: api.adminToken,
  });
}

test('oversized headers are refused by the HTTP parser with 431 and the server keeps serving', async () => {
  // Node's parser answers before Fastify sees a request, so this body is Fastify's
  // clientError default, not the envelope.
  for (const headers of [{ 'x-big': 'a'.repeat(20_000) }, { authorization: `Bearer ${'a'.repeat(20_000)}` }]) {
    const res = await fetch(`${api.url}/v1/sandboxes`, { headers });
    assert.is(res.status, 431);
    await res.body?.cancel();
  }
  const long = await fetch(`${api.url}/v1/sandboxes?x=${'a'.repeat(20_000)}`, { headers: { authorization: `Bearer ${api.adminToken}` } });
  assert.is(long.status, 431);
  await long.body?.cancel();
  assert.is((await call(api.url, 'GET', '/health')).status, 200);
});

test('afterwards the server is healthy and a normal create + execute works', async () => {
  assert.is((await call(api.url, 'GET', '/health')).status, 200);
  const ready = await call(api.url, 'GET', '/health/ready');
  assert.is(ready.status, 200, ready.text);
  const sb = await call<{ data: { id: string } }>(api.url, 'POST', '/v1/sandboxes', { token: api.adminToken, body: { image: BUSYBOX } });
  assert.is(sb.status, 201, sb.text);
  const ex = await call<{ data: { exitCode: number; stdout: string } }>(api.url, 'POST', `/v1/sandboxes/${sb.body.data.id}/execute`, {
    token: api.adminToken,
    body: { command: ['echo', 'still fine'] },
  });
  assert.is(ex.status, 200, ex.text);
  assert.is(ex.body.data.stdout, 'still fine\n');
  const first = await call<{ data: { stdout: string } }>(api.url, 'POST', `/v1/sandboxes/${sandboxId}/execute`, {
    token: api.adminToken,
    body: { command: ['echo', 'ok'] },
  });
  assert.is(first.status, 200, first.text);
});

test.run();
