/** The WebSocket endpoints over a real server: the hub (/v1/ws) and the sandbox terminal. */
import { setImmediate as nextTurn } from 'node:timers/promises';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { WebSocket } from 'ws';
import { ADMIN_PASSWORD, call, startApi, type TestApi } from '../../helpers/api.ts';
import { BUSYBOX, eventually } from '../../helpers/runtime.ts';

const test = suite('api-ws');
let api: TestApi;
let wsUrl: string;
/** The default workspace's id, and a second workspace with an auditor of its own. */
let ws1: string;
let ws2: string;
let auditor2Token: string;

/** Channel payloads as the tests read them (event data, alert, sandbox_event). */
interface Data {
  type?: string;
  details: Record<string, unknown>;
  sandboxId?: string;
  event?: string;
  status?: string;
  alert?: Record<string, string>;
  resourceUsage?: { cpu: number; memory: number };
}

interface Msg {
  type: string;
  cursor?: number;
  code?: string;
  message?: string;
  channel?: string;
  exitCode?: number;
  details?: Record<string, unknown>;
  principal?: { userId: string; workspace: string; role: string };
  /** Present on channel messages. */
  data: Data;
}

/** A test client that records every frame and can wait for conditions on them. */
class Client {
  readonly ws: WebSocket;
  readonly messages: Msg[] = [];
  readonly #byType = new Map<string, Msg[]>();
  readonly output: Buffer[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly opened: Promise<void>;
  /** The HTTP status when the upgrade was refused. */
  refusedStatus: number | null = null;
  #waiters = new Set<() => void>();

  constructor(path: string, opts: { token?: string; workspace?: string; origin?: string } = {}) {
    const headers: Record<string, string> = {};
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    if (opts.workspace) headers['x-director-workspace'] = opts.workspace;
    this.ws = new WebSocket(`${wsUrl}${path}`, { headers, ...(opts.origin ? { origin: opts.origin } : {}) });
    this.ws.on('message', (d: Buffer, isBinary: boolean) => {
      if (isBinary) this.output.push(d);
      else {
        const m = JSON.parse(d.toString()) as Msg & { items?: Msg[] };
        // A batch frame is recorded as itself and as the channel messages it carries.
        for (const one of [m, ...(m.type === 'batch' ? m.items! : [])]) {
          this.messages.push(one);
          const list = this.#byType.get(one.type) ?? [];
          list.push(one);
          this.#byType.set(one.type, list);
        }
      }
      for (const w of this.#waiters) w();
    });
    this.ws.on('error', () => undefined);
    this.closed = new Promise((resolve) => this.ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('unexpected-response', (_req, res) => {
        this.refusedStatus = res.statusCode ?? null;
        res.resume();
        reject(new Error(`upgrade refused: ${res.statusCode}`));
      });
    });
    this.opened.catch(() => undefined);
  }

  send(msg: unknown): void {
    this.ws.send(JSON.stringify(msg));
  }

  text(): string {
    return Buffer.concat(this.output).toString('utf8');
  }

  of(type: string): Msg[] {
    return this.#byType.get(type) ?? [];
  }

  /** Waits until `pred` holds over what was received (re-checked on every frame). */
  async until<T>(pred: () => T, timeoutMs = 5000): Promise<NonNullable<T>> {
    const hit = pred();
    if (hit) return hit;
    return new Promise((resolve, reject) => {
      const check = () => {
        const v = pred();
        if (v) {
          done();
          resolve(v);
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(
          new Error(`condition not met within ${timeoutMs} ms; last messages: ${JSON.stringify(this.messages.slice(-3)).slice(0, 500)}`),
        );
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
    });
  }

  /** The first message of `type`, whenever it arrived. */
  first(type: string, timeoutMs?: number): Promise<Msg> {
    return this.until(() => this.of(type)[0], timeoutMs);
  }

  /** The next message of `type` after this call. */
  next(type: string, timeoutMs?: number): Promise<Msg> {
    const seen = this.of(type).length;
    return this.until(() => this.of(type)[seen], timeoutMs);
  }

  /** Everything sent before this returns has been received (the hub answers in order). */
  async sync(): Promise<void> {
    const pongs = this.of('pong').length;
    this.send({ type: 'ping' });
    await this.until(() => this.of('pong').length > pongs);
  }

  close(): void {
    this.ws.close();
  }
}

/** An authenticated hub client subscribed to `channels`. */
async function hubClient(
  token: string,
  channels: string[],
  opts: { after?: number; firstMessage?: boolean; batch?: boolean } = {},
): Promise<Client> {
  const c = opts.firstMessage ? new Client('/v1/ws') : new Client('/v1/ws', { token });
  await c.opened;
  if (opts.firstMessage) c.send({ type: 'auth', token });
  await c.first('authenticated');
  for (const channel of channels) {
    c.send({
      type: 'subscribe',
      channel,
      ...(opts.after === undefined ? {} : { after: opts.after }),
      ...(opts.batch ? { batch: true } : {}),
    });
    await c.until(() => c.of('subscribed').find((m) => m.channel === channel));
  }
  return c;
}

const emit = (workspace: string | null, type: string, details: Record<string, unknown> = {}) =>
  api.rt.events.emit({ type, severity: 'info', workspace, details });

test.before(async () => {
  // A short grace (DIRECTOR_WS_AUTH_GRACE_MS) keeps the auth-timeout test quick.
  api = await startApi({ wsAuthGraceMs: 300 });
  wsUrl = api.url.replace(/^http/, 'ws');
  const me = await call<{ data: { workspace: string } }>(api.url, 'POST', '/v1/auth/login', {
    body: { username: 'admin', password: ADMIN_PASSWORD },
  });
  ws1 = me.body.data.workspace;
  const created = await call<{ data: { id: string } }>(api.url, 'POST', '/v1/workspaces', {
    token: api.adminToken,
    body: { name: 'ws-two' },
  });
  assert.is(created.status, 201, created.text);
  ws2 = created.body.data.id;
  const admin2 = await call<{ data: { token: string } }>(api.url, 'POST', '/v1/auth/login', {
    body: { username: 'admin', password: ADMIN_PASSWORD, workspace: 'ws-two' },
  });
  const user = await call(api.url, 'POST', '/v1/users', {
    token: admin2.body.data.token,
    body: { username: 'auditor2', password: 'auditor-two-password-1', role: 'auditor' },
  });
  assert.is(user.status, 201, user.text);
  const login = await call<{ data: { token: string } }>(api.url, 'POST', '/v1/auth/login', {
    body: { username: 'auditor2', password: 'auditor-two-password-1' },
  });
  auditor2Token = login.body.data.token;
});
test.after(async () => {
  await api?.close();
});

test('an unauthenticated socket is closed with 4001 after the grace period', async () => {
  const c = new Client('/v1/ws');
  await c.opened;
  const t0 = Date.now();
  const { code, reason } = await c.closed;
  assert.is(code, 4001);
  assert.is(reason, 'auth timeout');
  assert.ok(Date.now() - t0 >= 250, 'closed before the grace period');
});

test('a bad token is refused with 4003, as first message or at the upgrade', async () => {
  const first = new Client('/v1/ws');
  await first.opened;
  first.send({ type: 'auth', token: 'not.a.token' });
  assert.equal(await first.closed, { code: 4003, reason: 'authentication failed' });
  const bearer = new Client('/v1/ws', { token: 'dk_nonsense' });
  assert.is((await bearer.closed).code, 4003);
  const failures = api.rt.events.list({ type: 'auth_failed', limit: 100 }).filter((e) => e.details.transport === 'websocket');
  assert.ok(failures.length >= 2, 'auth failures were not recorded');
});

test('any other message before authentication closes with 4003', async () => {
  const c = new Client('/v1/ws');
  await c.opened;
  c.send({ type: 'subscribe', channel: 'security' });
  assert.is((await c.closed).code, 4003);
  const junk = new Client('/v1/ws');
  await junk.opened;
  junk.ws.send('{not json');
  assert.is((await junk.closed).code, 4003);
});

test('a foreign Origin is refused at the upgrade with 403 and recorded; the own host is allowed', async () => {
  const evil = new Client('/v1/ws', { token: api.adminToken, origin: 'https://evil.example' });
  await evil.opened.then(
    () => assert.unreachable('upgrade was accepted'),
    () => undefined,
  );
  assert.is(evil.refusedStatus, 403);
  const refused = api.rt.events.list({ type: 'ws_origin_refused', limit: 10 });
  assert.is(refused.at(-1)?.details.origin, 'https://evil.example');
  const term = new Client('/v1/sandboxes/sbx_0000000000000000/terminal', { token: api.adminToken, origin: 'http://evil.example' });
  await term.opened.catch(() => undefined);
  assert.is(term.refusedStatus, 403);
  const own = new Client('/v1/ws', { token: api.adminToken, origin: api.url });
  await own.opened;
  await own.first('authenticated');
  own.close();
});

test('messages are validated on receipt: errors answer without closing', async () => {
  const c = await hubClient(api.adminToken, [], { firstMessage: true });
  c.ws.send('{oops');
  assert.is((await c.next('error')).code, 'VALIDATION_ERROR');
  c.send({ type: 'launch' });
  const unknown = await c.next('error');
  assert.is(unknown.code, 'VALIDATION_ERROR');
  assert.match(unknown.message ?? '', /unknown message type/);
  c.send({ type: 'subscribe', channel: 'security', after: -1 });
  assert.is((await c.next('error')).details?.field, 'after');
  c.send({ type: 'subscribe', channel: 'nope' });
  assert.is((await c.next('error')).code, 'NOT_FOUND');
  c.send({ type: 'subscribe', channel: 'security', after: 1e12 });
  assert.is((await c.next('error')).details?.field, 'after');
  await c.sync();
  assert.is(c.ws.readyState, WebSocket.OPEN);
  c.close();
});

test('a channel needs its scope', async () => {
  const t = await call<{ data: { key: string } }>(api.url, 'POST', '/v1/api-keys', {
    token: api.adminToken,
    body: { name: 'sandbox-reader', scopes: ['sandboxes:read'] },
  });
  assert.is(t.status, 201, t.text);
  const c = await hubClient(t.body.data.key, ['sandboxes']);
  c.send({ type: 'subscribe', channel: 'security' });
  const err = await c.next('error');
  assert.is(err.code, 'AUTHORIZATION_ERROR');
  assert.is(err.details?.scope, 'security:read');
  c.close();
});

test("a workspace sees only its own events, in the Director Protocol's message shapes", async () => {
  const one = await hubClient(api.adminToken, ['security', 'sandboxes']);
  const two = await hubClient(auditor2Token, ['security', 'sandboxes']);
  assert.is(two.of('authenticated')[0]?.principal?.workspace, ws2);
  emit(ws1, 'isolation_probe', { who: 'one' });
  emit(ws2, 'isolation_probe', { who: 'two' });
  emit(null, 'isolation_probe', { who: 'nobody' });
  api.rt.events.emit({
    type: 'security_alert',
    severity: 'high',
    workspace: ws2,
    details: { rule: 'HIGH_ERROR_RATE', severity: 'high', message: 'Error rate exceeded threshold', timestamp: '2023-06-30T12:00:00Z' },
  });
  api.rt.events.emit({
    type: 'sandbox_created',
    severity: 'info',
    workspace: ws2,
    sandboxId: 'sbx_aaaaaaaaaaaaaaaa',
    details: { status: 'running', source: 'cold' },
  });
  await one.sync();
  await two.sync();
  const probes = (c: Client) =>
    c
      .of('security_event')
      .filter((m) => m.data.type === 'isolation_probe')
      .map((m) => m.data.details.who as string);
  assert.equal(probes(one), ['one']);
  assert.equal(probes(two), ['two']);
  assert.is(one.of('security_alert').length, 0);
  assert.is(one.of('sandbox_event').length, 0);
  const alert = two.of('security_alert')[0]!;
  assert.equal(alert.data, {
    alert: { rule: 'HIGH_ERROR_RATE', severity: 'high', message: 'Error rate exceeded threshold', timestamp: '2023-06-30T12:00:00Z' },
  });
  assert.type(alert.cursor, 'number');
  const sbx = two.of('sandbox_event')[0]!;
  assert.is(sbx.data.sandboxId, 'sbx_aaaaaaaaaaaaaaaa');
  assert.is(sbx.data.event, 'created');
  assert.is(sbx.data.status, 'running');
  one.close();
  two.close();
});

test('sandbox_event carries resourceUsage (cpu %, memory MiB) where the monitoring sampler measured the sandbox, and none where it did not', async () => {
  const t = api.adminToken;
  const make = async () => {
    const r = await call<{ data: { id: string } }>(api.url, 'POST', '/v1/sandboxes', { token: t, body: { image: BUSYBOX } });
    assert.is(r.status, 201, r.text);
    return r.body.data.id;
  };
  const sampled = await make();
  const unsampled = await make();
  const started = await call(api.url, 'POST', '/v1/monitoring/start', { token: t, body: { sandboxIds: [sampled], intervalMs: 1000 } });
  assert.is(started.status, 200, started.text);
  type Stats = { data: { resources: { samples: { sandboxId: string; memoryBytes: number }[] } } };
  const sample = await eventually(async () => {
    const stats = await call<Stats>(api.url, 'GET', '/v1/monitoring/stats', { token: t });
    return stats.body.data.resources.samples.find((x) => x.sandboxId === sampled);
  });
  const c = await hubClient(t, ['sandboxes']);
  try {
    for (const id of [sampled, unsampled]) {
      const stopped = await call(api.url, 'POST', `/v1/sandboxes/${id}/stop`, { token: t });
      assert.is(stopped.status, 200, stopped.text);
    }
    const stopEvent = (id: string) =>
      c.until(() => c.of('sandbox_event').find((m) => m.data.sandboxId === id && m.data.event === 'stopped'));
    const measured = await stopEvent(sampled);
    const usage = measured.data.resourceUsage;
    assert.ok(usage, JSON.stringify(measured.data));
    assert.equal(Object.keys(usage).sort(), ['cpu', 'memory']);
    assert.type(usage.cpu, 'number');
    assert.ok(usage.cpu >= 0);
    assert.ok(Number.isInteger(usage.memory) && usage.memory >= 0);
    assert.ok(
      Math.abs(usage.memory - sample.memoryBytes / 1_048_576) < 64,
      `memory ${usage.memory} MiB, sampled ${sample.memoryBytes} bytes`,
    );
    assert.is((await stopEvent(unsampled)).data.resourceUsage, undefined, 'a sandbox nobody measured got a resourceUsage');
  } finally {
    c.close();
    await call(api.url, 'POST', '/v1/monitoring/stop', { token: t });
  }
});

test('resuming with the last cursor delivers exactly the missed events, in order, then live ones', async () => {
  const first = await hubClient(api.adminToken, ['security']);
  for (let i = 0; i < 5; i++) emit(ws1, 'resume_probe', { n: i });
  await first.until(() => first.of('security_event').length === 5);
  const last = first.of('security_event').at(-1)!.cursor!;
  first.close();
  await first.closed;
  // Missed: more than one replay page, interleaved with another workspace's events.
  for (let i = 5; i < 1200; i++) {
    emit(ws1, 'resume_probe', { n: i });
    if (i % 3 === 0) emit(ws2, 'resume_probe', { n: -1 });
  }
  const second = await hubClient(api.adminToken, ['security'], { after: last });
  assert.is(second.of('subscribed')[0]?.cursor, last);
  // Live events arrive while the replay is still running.
  for (let i = 1200; i < 1500; i++) {
    emit(ws1, 'resume_probe', { n: i });
    if (i % 50 === 0) await nextTurn();
  }
  await second.until(() => second.of('security_event').length >= 1495, 15_000);
  await second.sync();
  const got = second.of('security_event');
  assert.equal(
    got.map((m) => m.data.details.n as number),
    Array.from({ length: 1495 }, (_, i) => i + 5),
  );
  const cursors = got.map((m) => m.cursor!);
  assert.ok(
    cursors.every((c, i) => i === 0 || c > cursors[i - 1]!),
    'cursors are not increasing',
  );
  assert.ok(cursors[0]! > last);
  second.close();
});

test('a batch subscription gets the same messages grouped in batch frames: same order, own workspace only, resume too', async () => {
  const plain = await hubClient(api.adminToken, ['security']);
  const batched = await hubClient(api.adminToken, ['security'], { batch: true });
  const other = await hubClient(auditor2Token, ['security'], { batch: true });
  for (let round = 0; round < 4; round++) {
    for (let i = 0; i < 300; i++) emit(ws1, 'batch_probe', { n: round * 300 + i });
    emit(ws2, 'batch_probe', { n: -1 });
    await nextTurn();
  }
  await plain.until(() => plain.of('security_event').length === 1200);
  await batched.until(() => batched.of('security_event').length === 1200);
  await batched.sync();
  await other.sync();
  const ns = (c: Client) => c.of('security_event').map((m) => m.data.details.n as number);
  assert.equal(ns(batched), ns(plain), 'the batch subscriber got other messages than the plain one');
  assert.equal(
    batched.of('security_event').map((m) => m.cursor),
    plain.of('security_event').map((m) => m.cursor),
  );
  assert.is(plain.of('batch').length, 0, 'a plain subscription never gets batch frames');
  const frames = batched.of('batch') as unknown as { channel: string; items: Msg[] }[];
  assert.ok(frames.length >= 3 && frames.length <= 40, `1200 events in ${frames.length} frames`);
  assert.ok(frames.every((f) => f.channel === 'security' && f.items.length > 0 && f.items.length <= 512));
  assert.equal(ns(other), [-1, -1, -1, -1], 'another workspace saw foreign events (or lost its own)');
  // Resume in batch mode: the replay arrives batched, then live events.
  const last = batched.of('security_event')[599]!.cursor!;
  batched.close();
  const again = await hubClient(api.adminToken, ['security'], { after: last, batch: true });
  emit(ws1, 'batch_probe', { n: 1200 });
  await again.until(() => again.of('security_event').length === 601);
  assert.equal(
    ns(again),
    Array.from({ length: 601 }, (_, i) => i + 600),
  );
  assert.ok(again.of('batch').length < 20);
  for (const c of [plain, other, again]) c.close();
});

test('a stalled client does not delay others and is closed with 4008', async () => {
  const stalled = await hubClient(api.adminToken, ['security']);
  const healthy = await hubClient(api.adminToken, ['security']);
  stalled.ws.pause();
  // Big enough events that the stalled client's kernel buffers fill well before the end.
  const pad = 'x'.repeat(2048);
  const total = 10_000;
  let slowest = 0;
  for (let batch = 0; batch < total / 500; batch++) {
    for (let i = 0; i < 500; i++) emit(ws1, 'flood', { n: batch * 500 + i, pad });
    const t0 = Date.now();
    const want = (batch + 1) * 500;
    await healthy.until(() => healthy.of('security_event').length >= want, 3000);
    slowest = Math.max(slowest, Date.now() - t0);
  }
  const got = healthy.of('security_event');
  assert.is(got.length, total);
  assert.ok(
    got.every((m, i) => m.data.details.n === i),
    'the healthy client lost or reordered events',
  );
  assert.ok(slowest < 1000, `healthy client waited ${slowest} ms for a batch of 500`);
  stalled.ws.resume();
  const { code, reason } = await stalled.closed;
  assert.is(code, 4008);
  assert.is(reason, 'too slow');
  assert.is(stalled.messages.at(-1)?.code, 'SLOW_CONSUMER');
  assert.ok(stalled.of('security_event').length < total);
  healthy.close();
});

async function createSandbox(body: Record<string, unknown> = {}): Promise<string> {
  const res = await call<{ data: { id: string } }>(api.url, 'POST', '/v1/sandboxes', {
    token: api.adminToken,
    body: { image: BUSYBOX, ...body },
  });
  assert.is(res.status, 201, res.text);
  return res.body.data.id;
}

test('the terminal runs a shell: bytes both ways, resize, exit status, close 1000', async () => {
  const id = await createSandbox();
  const t = new Client(`/v1/sandboxes/${id}/terminal`, { token: api.adminToken });
  await t.opened;
  await t.first('authenticated');
  t.ws.send(Buffer.from('echo hi\n'));
  await t.until(() => /\r?\nhi\r?\n/.test(t.text()), 10_000);
  t.send({ type: 'resize', cols: 100, rows: 40 });
  t.ws.send(Buffer.from('stty size\n'));
  await t.until(() => t.text().includes('40 100'), 10_000);
  t.send({ type: 'resize', cols: 0, rows: 40 });
  assert.is((await t.next('error')).code, 'VALIDATION_ERROR');
  t.ws.send(Buffer.from('exit\n'));
  const exit = await t.next('exit', 10_000);
  assert.equal(exit, { type: 'exit', exitCode: 0 });
  assert.is((await t.closed).code, 1000);
});

test('closing the terminal socket kills its process', async () => {
  const id = await createSandbox();
  const t = new Client(`/v1/sandboxes/${id}/terminal`);
  await t.opened;
  t.send({ type: 'auth', token: api.adminToken });
  await t.first('authenticated');
  t.ws.send(Buffer.from('sleep 321\n'));
  await t.until(() => t.text().includes('sleep 321'), 10_000);
  const ps = async () => {
    const r = await call<{ data: { stdout: string } }>(api.url, 'POST', `/v1/sandboxes/${id}/execute`, {
      token: api.adminToken,
      body: { command: ['ps', '-o', 'args'] },
    });
    return r.body.data.stdout;
  };
  await eventually(async () => (await ps()).includes('sleep 321'), 10_000, 500);
  t.close();
  await t.closed;
  await eventually(async () => !(await ps()).includes('sleep 321'), 10_000, 500);
});

test("the terminal refuses: another workspace's sandbox (4004), exec disabled (4003, recorded), missing scope (4003)", async () => {
  const id = await createSandbox();
  const foreign = new Client(`/v1/sandboxes/${id}/terminal`, { token: api.adminToken, workspace: 'ws-two' });
  assert.is((await foreign.closed).code, 4004);
  const unknown = new Client('/v1/sandboxes/sbx_0000000000000000/terminal', { token: api.adminToken });
  assert.is((await unknown.closed).code, 4004);
  const locked = await createSandbox({ securityPolicy: { allowExec: false } });
  const denied = new Client(`/v1/sandboxes/${locked}/terminal`, { token: api.adminToken });
  assert.is((await denied.closed).code, 4003);
  assert.is(denied.of('error')[0]?.code, 'AUTHORIZATION_ERROR');
  assert.ok(api.rt.events.list({ type: 'exec_denied', sandboxId: locked, limit: 10 }).length > 0, 'exec_denied was not recorded');
  const auditor = new Client(`/v1/sandboxes/${id}/terminal`, { token: auditor2Token });
  assert.is((await auditor.closed).code, 4003);
  const badCmd = new Client(`/v1/sandboxes/${id}/terminal?cmd=python`, { token: api.adminToken });
  await badCmd.opened.catch(() => undefined);
  assert.is(badCmd.refusedStatus, 400);
});

test.run();
