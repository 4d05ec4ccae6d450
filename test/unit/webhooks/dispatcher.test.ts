import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { signBody } from '../../../runtime/webhooks/signature.ts';
import { verifyWebhook } from './seed.ts';
import { hangUntilAborted, harness, recorder, removeDir, SECRET, sleep, until } from './support.ts';

const hook = (h: ReturnType<typeof harness>, workspace: string, events: string[]) =>
  h.store.create({ workspace, url: 'http://203.0.113.5/hook', events, secret: SECRET, createdBy: 'test' });

const created = (workspace: string, n = 0) => ({
  type: 'sandbox_created',
  severity: 'info' as const,
  workspace,
  sandboxId: `sbx_${String(n).padStart(16, '0')}`,
  details: { status: 'running', n },
});

test("delivers the subscribed events of the webhook's own workspace, signed", async () => {
  const { calls, transport } = recorder();
  const h = harness(transport);
  try {
    const a = hook(h, 'wsp_a', ['sandbox.created']);
    const egress = hook(h, 'wsp_a', ['security.egress_denied']);
    const all = hook(h, 'wsp_b', ['*']);
    h.events.emit(created('wsp_a', 1));
    h.events.emit({ type: 'egress_denied', severity: 'medium', workspace: 'wsp_a', details: { remote: '203.0.113.9' } });
    h.events.emit({ type: 'exec_denied', severity: 'medium', workspace: 'wsp_a' });
    h.events.emit(created('wsp_b', 2));
    h.events.emit({ type: 'auth_failed', severity: 'medium', workspace: null });
    await until(() => calls.length >= 3);
    await sleep(50);
    assert.is(calls.length, 3);
    const by = (id: string) =>
      calls.filter((c) => h.store.deliveries(id, { limit: 10 }).some((d) => d.delivery.id === c.headers['x-director-delivery']));
    assert.equal(
      by(a.id).map((c) => [c.payload.event, c.payload.data.n]),
      [['sandbox.created', 1]],
    );
    assert.equal(
      by(egress.id).map((c) => [c.payload.event, c.payload.data.type]),
      [['security.event', 'egress_denied']],
    );
    assert.equal(
      by(all.id).map((c) => [c.payload.event, c.payload.data.n]),
      [['sandbox.created', 2]],
    );
    for (const c of calls) {
      assert.is(c.headers['x-director-signature'], signBody(c.body, SECRET));
      assert.ok(verifyWebhook(JSON.parse(c.body), c.headers['x-director-signature']!, SECRET));
      assert.is(c.headers['x-director-event'], c.payload.event);
      assert.is(c.headers['user-agent'], 'Director-Webhooks/1');
      assert.is(c.headers['content-type'], 'application/json');
    }
  } finally {
    await h.stop();
    removeDir(h.dir);
  }
});

test('one attempt at a time per webhook, oldest first, retries included', async () => {
  let inFlight = 0;
  let maxInFlight = 0;
  const { calls, transport } = recorder(async (_req, n) => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    await sleep(5);
    inFlight--;
    return n <= 2 ? 500 : 204; // the first delivery fails twice
  });
  const h = harness(transport);
  try {
    const w = hook(h, 'wsp_a', ['sandbox.created']);
    for (let i = 1; i <= 3; i++) h.events.emit(created('wsp_a', i));
    await until(() => h.store.deliveries(w.id, { limit: 10 }).every((d) => d.delivery.state === 'delivered') && calls.length === 5);
    assert.equal(
      calls.map((c) => c.payload.data.n),
      [1, 1, 1, 2, 3],
    );
    assert.is(maxInFlight, 1);
    const first = h.store.deliveries(w.id, { limit: 10 }).at(-1)!;
    assert.equal(
      first.attempts.map((a) => a.statusCode),
      [500, 500, 204],
    );
    assert.equal(new Set(calls.slice(0, 3).map((c) => c.headers['x-director-delivery'])).size, 1, 'retries keep the delivery id');
    assert.equal(
      calls.slice(0, 3).map((c) => c.headers['x-director-attempt']),
      ['1', '2', '3'],
    );
    assert.ok(calls[1]!.atMs - calls[0]!.atMs >= 20 - 2 && calls[2]!.atMs - calls[1]!.atMs >= 40 - 2, 'backoff between attempts');
  } finally {
    await h.stop();
    removeDir(h.dir);
  }
});

test('a delivery that keeps failing is failed after maxAttempts, and the next one proceeds', async () => {
  const { calls, transport } = recorder((req) => {
    if ((JSON.parse(req.body) as { data: { n: number } }).data.n === 1)
      throw Object.assign(new Error('connect ECONNREFUSED 203.0.113.5:80'), { code: 'ECONNREFUSED' });
    return 200;
  });
  const h = harness(transport, { maxAttempts: 3 });
  try {
    const w = hook(h, 'wsp_a', ['sandbox.created']);
    h.events.emit(created('wsp_a', 1));
    h.events.emit(created('wsp_a', 2));
    h.events.flush();
    await until(() => h.store.deliveries(w.id, { limit: 10 }).every((d) => d.delivery.state !== 'pending'));
    const [second, first] = h.store.deliveries(w.id, { limit: 10 });
    assert.is(first!.delivery.state, 'failed');
    assert.is(first!.attempts.length, 3);
    assert.equal(
      first!.attempts.map((a) => a.error),
      Array(3).fill('connect ECONNREFUSED 203.0.113.5:80'),
    );
    assert.ok(first!.attempts[0]!.nextMs !== null && first!.attempts[2]!.nextMs === null);
    assert.is(second!.delivery.state, 'delivered');
    assert.is(calls.length, 4);
    assert.ok(h.logs.some((l) => l.msg === 'webhook delivery failed for good' && l.deliveryId === first!.delivery.id));
    assert.ok(h.logs.length > 0 && !JSON.stringify(h.logs).includes(SECRET), 'a log line carries the secret');
    assert.not.ok(JSON.stringify(h.logs).includes('/hook'), 'a log line carries the URL path');
  } finally {
    await h.stop();
    removeDir(h.dir);
  }
});

test('an attempt that outlives the timeout is a failed attempt', async () => {
  const { transport } = recorder((req) => hangUntilAborted(req.signal));
  const h = harness(transport, { timeoutMs: 50, maxAttempts: 2 });
  try {
    const w = hook(h, 'wsp_a', ['sandbox.created']);
    h.events.emit(created('wsp_a'));
    const [d] = await until(() => h.store.deliveries(w.id, { limit: 1, state: 'failed' }).at(0) && h.store.deliveries(w.id, { limit: 1 }));
    assert.equal(
      d!.attempts.map((a) => a.error),
      ['timeout after 50 ms', 'timeout after 50 ms'],
    );
    assert.ok(d!.attempts.every((a) => a.durationMs >= 45));
  } finally {
    await h.stop();
    removeDir(h.dir);
  }
});

test('pending deliveries survive a restart; an attempt cut by shutdown runs again', async () => {
  const first = recorder((req) => hangUntilAborted(req.signal));
  const h1 = harness(first.transport);
  const w = hook(h1, 'wsp_a', ['sandbox.created']);
  h1.events.emit(created('wsp_a', 1));
  await until(() => first.calls.length === 1);
  await h1.stop();
  const second = recorder();
  const h2 = harness(second.transport, {}, h1.dir);
  try {
    await until(() => second.calls.length === 1);
    await until(() => h2.store.deliveries(w.id, { limit: 1 })[0]?.delivery.state === 'delivered');
    const [d] = h2.store.deliveries(w.id, { limit: 1 });
    assert.is(second.calls[0]!.headers['x-director-delivery'], first.calls[0]!.headers['x-director-delivery']);
    assert.is(second.calls[0]!.body, first.calls[0]!.body);
    assert.is(d!.attempts.length, 1, 'the aborted attempt was not recorded');
  } finally {
    await h2.stop();
    removeDir(h2.dir);
  }
});

test('a full queue drops the oldest pending delivery, counts it and logs it', async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const { calls, transport } = recorder(async (_req, n) => {
    if (n === 1) await gate;
    return 200;
  });
  const h = harness(transport, { maxPendingPerWebhook: 2 });
  try {
    const w = hook(h, 'wsp_a', ['sandbox.created']);
    h.events.emit(created('wsp_a', 1));
    await until(() => calls.length === 1);
    for (let i = 2; i <= 4; i++) h.events.emit(created('wsp_a', i));
    release();
    await until(() => h.store.deliveries(w.id, { limit: 10 }).every((d) => d.delivery.state !== 'pending'));
    assert.equal(
      calls.map((c) => c.payload.data.n),
      [1, 4],
    );
    assert.equal(
      h.store.deliveries(w.id, { limit: 10 }).map((d) => d.delivery.state),
      ['delivered', 'dropped', 'dropped', 'delivered'],
    );
    assert.is(h.store.get('wsp_a', w.id)!.dropped, 2);
    const warnings = h.logs.filter((l) => l.msg === 'webhook queue full: dropped the oldest pending deliveries');
    assert.is(warnings.length, 2);
    assert.is(warnings[1]!.droppedTotal, 2);
  } finally {
    await h.stop();
    removeDir(h.dir);
  }
});

test("a deleted webhook's queue goes with it", async () => {
  const { calls, transport } = recorder(() => 500);
  const h = harness(transport, { baseDelayMs: 200 });
  try {
    const w = hook(h, 'wsp_a', ['sandbox.created']);
    h.events.emit(created('wsp_a'));
    await until(() => calls.length === 1);
    assert.ok(h.store.delete('wsp_a', w.id));
    await sleep(400);
    assert.is(calls.length, 1);
    assert.is(h.store.pendingCount(w.id), 0);
  } finally {
    await h.stop();
    removeDir(h.dir);
  }
});

test.run();
