/**
 * `Idempotency-Key` on creating POSTs: a retried create never makes a second sandbox, whether
 * the retry comes after the first answer or races it.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { call, startApi, type TestApi } from '../../helpers/api.ts';
import { BUSYBOX } from '../../helpers/runtime.ts';

const test = suite('api-owasp-idempotency');
let api: TestApi;

test.before(async () => {
  api = await startApi({ rateLimitSandbox: 1000 });
});
test.after(async () => {
  await api?.close();
});

const containers = async () => (await api.rt.engine.listContainers({ 'director.runtime': api.rt.config.runtimeName })).length;
const total = async () =>
  (await call<{ data: { total: number } }>(api.url, 'GET', '/v1/sandboxes', { token: api.adminToken })).body.data.total;
const create = (key: string, body: unknown) =>
  call<{ data: { id: string } }>(api.url, 'POST', '/v1/sandboxes', { token: api.adminToken, body, headers: { 'idempotency-key': key } });

test('the same key and body replays the first answer: same id, Idempotent-Replayed, one container', async () => {
  const body = { image: BUSYBOX, name: 'once', labels: { k: 'v' } };
  const first = await create('retry-1', body);
  assert.is(first.status, 201, first.text);
  assert.is(first.headers.get('idempotent-replayed'), null);
  const again = await create('retry-1', { labels: { k: 'v' }, name: 'once', image: BUSYBOX });
  assert.is(again.status, 201, again.text);
  assert.is(again.headers.get('idempotent-replayed'), 'true');
  assert.is(again.body.data.id, first.body.data.id);
  assert.equal(again.body.data, first.body.data);
  assert.is(await containers(), 1);
  assert.is(await total(), 1);
});

test('the same key with a different body answers 422 and creates nothing', async () => {
  const res = await create('retry-1', { image: BUSYBOX, name: 'twice' });
  assert.is(res.status, 422, res.text);
  assert.is(res.body.error?.code, 'UNPROCESSABLE');
  assert.is(res.body.error?.details.field, 'Idempotency-Key');
  assert.is(await containers(), 1);
});

test('two identical requests fired at once create exactly one sandbox', async () => {
  const before = await containers();
  const body = { image: BUSYBOX, name: 'race' };
  const [a, b] = await Promise.all([create('race-1', body), create('race-1', body)]);
  const statuses = [a.status, b.status].sort();
  const replayed = [a, b].filter((r) => r.headers.get('idempotent-replayed') === 'true');
  // One ran; the other either waited for nothing (409: still in progress) or saw the result.
  assert.ok(
    (statuses[0] === 201 && statuses[1] === 409) || (statuses[0] === 201 && statuses[1] === 201 && replayed.length === 1),
    `statuses ${statuses.join(', ')}: ${a.text} / ${b.text}`,
  );
  const conflict = [a, b].find((r) => r.status === 409);
  if (conflict) assert.is(conflict.body.error?.code, 'CONFLICT');
  assert.is(await containers(), before + 1);
  // Once the first finished, a retry replays it.
  const winner = [a, b].find((r) => r.status === 201 && r.headers.get('idempotent-replayed') === null)!;
  const retry = await create('race-1', body);
  assert.is(retry.headers.get('idempotent-replayed'), 'true');
  assert.is(retry.body.data.id, winner.body.data.id);
});

test('many concurrent retries of one create still make one sandbox', async () => {
  const before = await containers();
  const res = await Promise.all(Array.from({ length: 8 }, () => create('race-8', { image: BUSYBOX })));
  assert.ok(
    res.every((r) => r.status === 201 || r.status === 409),
    res.map((r) => r.status).join(','),
  );
  const ids = new Set(res.filter((r) => r.status === 201).map((r) => r.body.data.id));
  assert.is(ids.size, 1);
  assert.is(await containers(), before + 1);
});

test('malformed keys are refused naming the header', async () => {
  const before = await containers();
  for (const key of ['x'.repeat(256), 'caf\u00e9', 'tab\there']) {
    const res = await call(api.url, 'POST', '/v1/sandboxes', {
      token: api.adminToken,
      body: { image: BUSYBOX },
      headers: { 'idempotency-key': key },
    });
    assert.is(res.status, 400, `${JSON.stringify(key)}: ${res.text}`);
    assert.is(res.body.error?.details.field, 'Idempotency-Key');
  }
  assert.is(await containers(), before);
});

test('without a key every create is a new sandbox', async () => {
  const before = await containers();
  const body = { image: BUSYBOX, name: 'plain' };
  const a = await call<{ data: { id: string } }>(api.url, 'POST', '/v1/sandboxes', { token: api.adminToken, body });
  const b = await call<{ data: { id: string } }>(api.url, 'POST', '/v1/sandboxes', { token: api.adminToken, body });
  assert.is(a.status, 201);
  assert.is(b.status, 201);
  assert.is.not(a.body.data.id, b.body.data.id);
  assert.is(await containers(), before + 2);
});

test.run();
