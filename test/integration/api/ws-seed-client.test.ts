/**
 * The Director Protocol's own WebSocket client (its `DirectorAPI` example: connect, send
 * `{type: 'auth', token}`, then only listen) receives the protocol's message types for its
 * workspace without subscribing to anything; an explicit `subscribe` narrows that set.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { call, startApi, type TestApi } from '../../helpers/api.ts';
import { BUSYBOX, eventually } from '../../helpers/runtime.ts';

const test = suite('api-ws-seed-client');
let api: TestApi;

/** The Director Protocol's example client, as written there (browser WebSocket API; Node has it built in). */
class DirectorAPI {
  token: string;
  ws: WebSocket | null = null;
  eventHandlers = new Map<string, (data: unknown) => void>();
  url: string;
  constructor(url: string, token: string) {
    this.url = url;
    this.token = token;
  }
  connect(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.ws = new WebSocket(this.url);
      this.ws.onopen = () => {
        this.ws!.send(JSON.stringify({ type: 'auth', token: this.token }));
        resolve();
      };
      this.ws.onmessage = (event: MessageEvent) => {
        const message = JSON.parse(String(event.data)) as { type: string; data: unknown };
        this.handleMessage(message);
      };
      this.ws.onerror = reject;
    });
  }
  handleMessage(message: { type: string; data: unknown }) {
    const handler = this.eventHandlers.get(message.type);
    if (handler) handler(message.data);
  }
  on(type: string, handler: (data: unknown) => void) {
    this.eventHandlers.set(type, handler);
  }
}

/** Records what each handler got. */
function listen(client: DirectorAPI) {
  const got: Record<string, Record<string, unknown>[]> = {};
  for (const type of ['authenticated', 'session_update', 'workflow_progress', 'sandbox_event', 'security_alert', 'security_event']) {
    got[type] = [];
    client.on(type, (data) => got[type]!.push((data ?? {}) as Record<string, unknown>));
  }
  return got;
}

test.before(async () => {
  api = await startApi({ rateLimitSandbox: 1000, rateLimitSession: 10_000 });
});
test.after(async () => {
  await api?.close();
});

/** The seed's client, connected and authenticated (only `auth` sent), and what each of its handlers got. */
async function authenticatedClient() {
  const client = new DirectorAPI(`${api.url.replace('http', 'ws')}/v1/ws`, api.adminToken);
  const got = listen(client);
  await client.connect();
  try {
    await eventually(() => got.authenticated!.length === 1 || null, 5000, 20);
  } catch (err) {
    client.ws?.close();
    throw err;
  }
  return { client, got };
}

/** A session made with the seed's body. */
const createSession = (name: string) =>
  call<{ data: { id: string } }>(api.url, 'POST', '/v1/sessions', { token: api.adminToken, body: { type: 'director', name } });

test('after auth alone, the client receives session_update, sandbox_event and security_alert of its workspace', async () => {
  const { client, got } = await authenticatedClient();
  try {
    const s = await createSession('Development Session');
    const update = await eventually(() => got.session_update!.find((d) => d.sessionId === s.body.data.id), 5000, 20);
    assert.is(update.status, 'active');
    assert.equal(update.metrics, { activeDepartments: 0, totalTasks: 0 });

    const sb = await call<{ data: { id: string } }>(api.url, 'POST', '/v1/sandboxes', {
      token: api.adminToken,
      body: { image: BUSYBOX, sessionId: s.body.data.id },
    });
    const ev = await eventually(() => got.sandbox_event!.find((d) => d.sandboxId === sb.body.data.id), 5000, 20);
    assert.is(ev.event, 'created');
    assert.is(ev.status, 'running');

    // Five refused creates by one actor raise the REPEATED_POLICY_VIOLATIONS alert.
    for (let i = 0; i < 5; i++) {
      const r = await call(api.url, 'POST', '/v1/sandboxes', { token: api.adminToken, body: { image: BUSYBOX, privileged: true } });
      assert.is(r.status, 400);
    }
    const alert = await eventually(() => got.security_alert![0], 10_000, 50);
    assert.is((alert.alert as { rule: string }).rule, 'REPEATED_POLICY_VIOLATIONS');
    assert.is(got.security_event!.length, 0, 'not every security event: only the protocol’s four message types');

    const del = await call(api.url, 'DELETE', `/v1/sessions/${s.body.data.id}`, { token: api.adminToken });
    assert.is(del.status, 200);
    await eventually(() => got.session_update!.find((d) => d.sessionId === s.body.data.id && d.status === 'terminated'), 5000, 20);
  } finally {
    client.ws?.close();
  }
});

test('session_update follows the metrics too (departments made, tasks begun and ended), at most one per 250 ms per session', async () => {
  const { client, got } = await authenticatedClient();
  try {
    const s = await createSession('Metrics Session');
    const id = s.body.data.id;
    type Update = { sessionId: string; status: string; metrics: { activeDepartments: number; totalTasks: number }; timestamp: string };
    const updates = () => (got.session_update as unknown as Update[]).filter((d) => d.sessionId === id);
    await eventually(() => updates()[0], 5000, 20);
    // A burst: three departments at once, a task that begins and ends, one that begins.
    const made = await Promise.all(
      [1, 2, 3].map((n) =>
        call(api.url, 'POST', '/v1/departments', {
          token: api.adminToken,
          body: { sessionId: id, name: `Department ${n}`, domain: 'code-generation' },
        }),
      ),
    );
    for (const r of made) assert.is(r.status, 201, r.text);
    api.orch.tasks.begin(id, null)(false);
    const running = api.orch.tasks.begin(id, null);
    const last = await eventually(() => updates().find((d) => d.metrics.activeDepartments === 3 && d.metrics.totalTasks === 2), 5000, 20);
    assert.is(last.status, 'active');
    running(false);
    await new Promise((r) => setTimeout(r, 600));
    const metricUpdates = updates().slice(1);
    assert.ok(metricUpdates.length >= 1);
    // Coalesced: never two of the same session closer than the window (a little slack for timers).
    const times = metricUpdates.map((d) => Date.parse(d.timestamp));
    for (let i = 1; i < times.length; i++) assert.ok(times[i]! - times[i - 1]! >= 200, `updates ${times[i]! - times[i - 1]!} ms apart`);
    // The agreed figures: what GET answers.
    const view = await call<{ data: { metrics: unknown } }>(api.url, 'GET', `/v1/sessions/${id}`, { token: api.adminToken });
    assert.equal(updates().at(-1)!.metrics, view.body.data.metrics);
  } finally {
    client.ws?.close();
  }
});

test('deleting a department is a metric change too: a session_update with the lower activeDepartments follows', async () => {
  const { client, got } = await authenticatedClient();
  try {
    const s = await createSession('Department Deleted');
    const id = s.body.data.id;
    type Update = { sessionId: string; metrics: { activeDepartments: number } };
    const counts = () =>
      (got.session_update as unknown as Update[]).filter((d) => d.sessionId === id).map((d) => d.metrics.activeDepartments);
    const dep = await call<{ data: { id: string } }>(api.url, 'POST', '/v1/departments', {
      token: api.adminToken,
      body: { sessionId: id, name: 'Short-lived', domain: 'code-generation' },
    });
    assert.is(dep.status, 201, dep.text);
    await eventually(() => counts().at(-1) === 1 || null, 5000, 20);
    const gone = await call(api.url, 'DELETE', `/v1/departments/${dep.body.data.id}`, { token: api.adminToken });
    assert.ok(gone.status < 300, gone.text);
    await eventually(() => counts().at(-1) === 0 || null, 5000, 20).catch(() => assert.unreachable(`updates seen: ${counts().join(',')}`));
  } finally {
    client.ws?.close();
  }
});

test('an explicit subscribe narrows the default set to the channels named', async () => {
  const client = new DirectorAPI(`${api.url.replace('http', 'ws')}/v1/ws`, api.adminToken);
  const got = listen(client);
  const replies: string[] = [];
  client.on('subscribed', (d) => replies.push(JSON.stringify(d)));
  await client.connect();
  try {
    await eventually(() => got.authenticated!.length === 1 || null, 5000, 20);
    client.ws!.send(JSON.stringify({ type: 'subscribe', channel: 'sessions' }));
    await new Promise((r) => setTimeout(r, 200));
    const sb = await call<{ data: { id: string } }>(api.url, 'POST', '/v1/sandboxes', { token: api.adminToken, body: { image: BUSYBOX } });
    assert.is(sb.status, 201);
    const s = await call<{ data: { id: string } }>(api.url, 'POST', '/v1/sessions', {
      token: api.adminToken,
      body: { name: 'after narrowing' },
    });
    await eventually(() => got.session_update!.find((d) => d.sessionId === s.body.data.id), 5000, 20);
    assert.is(
      got.sandbox_event!.filter((d) => d.sandboxId === sb.body.data.id).length,
      0,
      'sandbox events stopped once the client chose its channels',
    );
  } finally {
    client.ws?.close();
  }
});

test.run();
