import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { backoffDelayMs, reconnectSettings } from '../../../sdk/backoff.ts';
import { DirectorClient } from '../../../sdk/client.ts';
import { ENDED_RUN_STATES, RUN_STATES, runHasEnded } from '../../../sdk/states.ts';

const ok = (data: unknown, status = 200) =>
  new Response(JSON.stringify({ success: true, data, metadata: {} }), { status, headers: { 'content-type': 'application/json' } });

/** A client whose server answers `answer`; every request is recorded with its query and headers. */
function clientOf(answer: (url: URL, req: Request) => Response) {
  const seen: { method: string; url: URL; headers: Headers }[] = [];
  const client = new DirectorClient({
    baseURL: 'http://127.0.0.1:1',
    token: 'dk_test',
    fetch: async (req) => {
      const url = new URL(req.url);
      seen.push({ method: req.method, url, headers: req.headers });
      return answer(url, req);
    },
  });
  return { client, seen };
}

test('every creating call sends its idempotency key as Idempotency-Key, and none without one', async () => {
  const { client, seen } = clientOf(() => ok({ id: 'x_1', status: 'running' }, 201));
  const key = { idempotencyKey: 'k-1' };
  await client.sandboxes.create({}, key);
  await client.networks.create({ name: 'n' }, key);
  await client.sessions.create({ name: 's' }, key);
  await client.workflows.create({ sessionId: 's', name: 'w', steps: [] }, key);
  await client.workflows.start('wf_1', {}, key);
  await client.sandboxes.create({});
  assert.equal(
    seen.map((r) => [r.method, r.url.pathname, r.headers.get('idempotency-key')]),
    [
      ['POST', '/v1/sandboxes', 'k-1'],
      ['POST', '/v1/networks', 'k-1'],
      ['POST', '/v1/sessions', 'k-1'],
      ['POST', '/v1/workflows', 'k-1'],
      ['POST', '/v1/workflows/wf_1/start', 'k-1'],
      ['POST', '/v1/sandboxes', null],
    ],
  );
});

test('all() pages by offset until the total is reached, for sandboxes, sessions and networks', async () => {
  const total = 5;
  const { client, seen } = clientOf((url) => {
    const limit = Number(url.searchParams.get('limit'));
    const offset = Number(url.searchParams.get('offset'));
    const items = Array.from({ length: Math.max(0, Math.min(limit, total - offset)) }, (_, i) => ({ id: `r${offset + i}` }));
    return ok({ items, total, limit, offset });
  });
  const ids = async (it: AsyncIterable<{ id: string }>) => {
    const out: string[] = [];
    for await (const x of it) out.push(x.id);
    return out;
  };
  const all = ['r0', 'r1', 'r2', 'r3', 'r4'];
  assert.equal(await ids(client.sandboxes.all({ limit: 2 })), all);
  assert.equal(await ids(client.sessions.all({ limit: 2 })), all);
  assert.equal(await ids(client.networks.all({ limit: 5 })), all);
  assert.equal(
    seen.map((r) => `${r.url.pathname}?${r.url.searchParams.get('offset')}`),
    ['/v1/sandboxes?0', '/v1/sandboxes?2', '/v1/sandboxes?4', '/v1/sessions?0', '/v1/sessions?2', '/v1/sessions?4', '/v1/networks?0'],
  );
});

test('reconnect delays double from the first, stop at the cap, with jitter between half and all of the step', () => {
  const r = reconnectSettings({ initialDelayMs: 100, maxDelayMs: 1000 }, { maxAttempts: 5 });
  assert.ok(r);
  assert.equal(
    [0, 1, 2, 3, 4, 10].map((n) => backoffDelayMs(r, n, () => 1)),
    [100, 200, 400, 800, 1000, 1000],
  );
  assert.is(
    backoffDelayMs(r, 2, () => 0),
    200,
  );
  assert.is(reconnectSettings(false, { maxAttempts: 5 }), null);
  assert.equal(reconnectSettings(true, { maxAttempts: 5 }), { initialDelayMs: 250, maxDelayMs: 10_000, maxAttempts: 5 });
  assert.is(reconnectSettings(undefined, { maxAttempts: Number.POSITIVE_INFINITY })?.maxAttempts, Number.POSITIVE_INFINITY);
});

test('run states: the ended ones are among all, and only they count as ended', () => {
  for (const s of ENDED_RUN_STATES) assert.ok(RUN_STATES.includes(s), s);
  assert.equal(
    RUN_STATES.filter((s) => !runHasEnded(s)),
    ['pending', 'queued', 'running'],
  );
  assert.is(runHasEnded(null), false);
});

test.run();
