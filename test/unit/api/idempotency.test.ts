import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { canonicalJson, DEFAULT_IDEMPOTENCY_TTL_MS, fingerprint, IdempotencyStore, parseIdempotencyKey } from '../../../api/idempotency.ts';
import { DirectorError } from '../../../core/errors.ts';
import { openDb } from '../../../core/db.ts';

const ROUTE = '/v1/sandboxes';
const BODY = { image: 'python:3.12', resources: { cpu: 1, memoryMb: 512 }, labels: { team: 'a' } };
const FP = fingerprint('POST', ROUTE, BODY);

function fresh(ttlMs?: number) {
  const clock = {
    now: 1_000_000,
    nowMs(): number {
      return this.now;
    },
  };
  const db = openDb('/tmp/unused', ':memory:');
  return { clock, db, store: new IdempotencyStore(db, { clock, ...(ttlMs === undefined ? {} : { ttlMs }) }) };
}

function throwsCode(fn: () => unknown, code: string, status: number): DirectorError {
  try {
    fn();
  } catch (err) {
    assert.instance(err, DirectorError);
    const e = err as DirectorError;
    assert.is(e.code, code);
    assert.is(e.status, status);
    return e;
  }
  assert.unreachable(`expected ${code}`);
  throw new Error('unreachable');
}

test('a completed request is replayed with its original status and body', () => {
  const { store } = fresh();
  assert.equal(store.begin('ws1', 'k1', FP, 'POST', ROUTE), { kind: 'new' });
  const body = { success: true, data: { id: 'sbx_1', status: 'creating', tags: [1, null, 'x'] } };
  assert.ok(store.complete('ws1', 'k1', 201, body));
  assert.equal(store.begin('ws1', 'k1', FP, 'POST', ROUTE), { kind: 'replay', statusCode: 201, body });
  assert.equal(store.begin('ws1', 'k1', FP, 'POST', ROUTE), { kind: 'replay', statusCode: 201, body });
});

test('a client error is replayed too', () => {
  const { store } = fresh();
  store.begin('ws1', 'k1', FP, 'POST', ROUTE);
  const body = { success: false, error: { code: 'CONFLICT', message: 'name taken' } };
  assert.ok(store.complete('ws1', 'k1', 409, body));
  assert.equal(store.begin('ws1', 'k1', FP, 'POST', ROUTE), { kind: 'replay', statusCode: 409, body });
});

test('reusing a key for a different request is a 422 naming the header', () => {
  const { store } = fresh();
  store.begin('ws1', 'k1', FP, 'POST', ROUTE);
  store.complete('ws1', 'k1', 201, { id: 'sbx_1' });
  const other = fingerprint('POST', ROUTE, { ...BODY, image: 'node:24' });
  const err = throwsCode(() => store.begin('ws1', 'k1', other, 'POST', ROUTE), 'UNPROCESSABLE', 422);
  assert.equal(err.details, { field: 'Idempotency-Key', issue: 'reused with a different request' });
  // The mismatch wins over "still running": retrying later would not help.
  store.begin('ws1', 'k2', FP, 'POST', ROUTE);
  throwsCode(() => store.begin('ws1', 'k2', other, 'POST', ROUTE), 'UNPROCESSABLE', 422);
});

test('a second request while the first is still running is a 409', () => {
  const { store } = fresh();
  assert.equal(store.begin('ws1', 'k1', FP, 'POST', ROUTE), { kind: 'new' });
  const err = throwsCode(() => store.begin('ws1', 'k1', FP, 'POST', ROUTE), 'CONFLICT', 409);
  assert.is(err.details?.field, 'Idempotency-Key');
  store.complete('ws1', 'k1', 201, { id: 'sbx_1' });
  assert.is(store.begin('ws1', 'k1', FP, 'POST', ROUTE).kind, 'replay');
});

test('two concurrent requests with one key: exactly one runs', async () => {
  const { store } = fresh();
  const attempt = async () => {
    await Promise.resolve();
    try {
      return store.begin('ws1', 'k1', FP, 'POST', ROUTE).kind;
    } catch (err) {
      return (err as DirectorError).code;
    }
  };
  const outcomes = await Promise.all([attempt(), attempt(), attempt()]);
  assert.equal(outcomes.sort(), ['CONFLICT', 'CONFLICT', 'new']);
});

test('abandoning a failed request lets a retry run again', () => {
  const { store } = fresh();
  store.begin('ws1', 'k1', FP, 'POST', ROUTE);
  store.abandon('ws1', 'k1');
  assert.equal(store.begin('ws1', 'k1', FP, 'POST', ROUTE), { kind: 'new' });
});

test('a 5xx or 429 result is not kept: the key is released for a retry', () => {
  const { store } = fresh();
  store.begin('ws1', 'k1', FP, 'POST', ROUTE);
  assert.not.ok(store.complete('ws1', 'k1', 503, { error: 'engine down' }));
  assert.equal(store.begin('ws1', 'k1', FP, 'POST', ROUTE), { kind: 'new' });
  assert.not.ok(store.complete('ws1', 'k1', 429, { error: 'slow down' }));
  assert.equal(store.begin('ws1', 'k1', FP, 'POST', ROUTE), { kind: 'new' });
});

test('abandon leaves a completed key alone', () => {
  const { store } = fresh();
  store.begin('ws1', 'k1', FP, 'POST', ROUTE);
  store.complete('ws1', 'k1', 201, { id: 'sbx_1' });
  store.abandon('ws1', 'k1');
  assert.is(store.begin('ws1', 'k1', FP, 'POST', ROUTE).kind, 'replay');
});

test('an expired key is treated as new, even for a different request', () => {
  const { store, clock } = fresh(60_000);
  store.begin('ws1', 'k1', FP, 'POST', ROUTE);
  store.complete('ws1', 'k1', 201, { id: 'sbx_1' });
  clock.now += 59_999;
  assert.is(store.begin('ws1', 'k1', FP, 'POST', ROUTE).kind, 'replay');
  clock.now += 1;
  const other = fingerprint('POST', ROUTE, { image: 'node:24' });
  assert.equal(store.begin('ws1', 'k1', other, 'POST', ROUTE), { kind: 'new' });
  throwsCode(() => store.begin('ws1', 'k1', other, 'POST', ROUTE), 'CONFLICT', 409);
});

test('keys default to a 24 hour lifetime', () => {
  const { store, clock } = fresh();
  assert.is(store.ttlMs, DEFAULT_IDEMPOTENCY_TTL_MS);
  assert.is(DEFAULT_IDEMPOTENCY_TTL_MS, 86_400_000);
  store.begin('ws1', 'k1', FP, 'POST', ROUTE);
  store.complete('ws1', 'k1', 201, {});
  clock.now += 86_400_000 - 1;
  assert.is(store.begin('ws1', 'k1', FP, 'POST', ROUTE).kind, 'replay');
  clock.now += 1;
  assert.is(store.begin('ws1', 'k1', FP, 'POST', ROUTE).kind, 'new');
});

test('purgeExpired deletes only expired keys', () => {
  const { store, clock, db } = fresh(1_000);
  store.begin('ws1', 'old', FP, 'POST', ROUTE);
  store.complete('ws1', 'old', 201, {});
  clock.now += 500;
  store.begin('ws1', 'young', FP, 'POST', ROUTE);
  clock.now += 500;
  assert.is(store.purgeExpired(), 1);
  assert.is(store.purgeExpired(), 0);
  const rows = db.sql.prepare('SELECT key FROM idempotency_keys').all() as { key: string }[];
  assert.equal(
    rows.map((r) => r.key),
    ['young'],
  );
});

test('the same key in two workspaces is two independent keys', () => {
  const { store } = fresh();
  assert.is(store.begin('ws1', 'k1', FP, 'POST', ROUTE).kind, 'new');
  assert.is(store.begin('ws2', 'k1', FP, 'POST', ROUTE).kind, 'new');
  store.complete('ws1', 'k1', 201, { id: 'sbx_1' });
  throwsCode(() => store.begin('ws2', 'k1', FP, 'POST', ROUTE), 'CONFLICT', 409);
  store.complete('ws2', 'k1', 201, { id: 'sbx_2' });
  assert.equal(store.begin('ws1', 'k1', FP, 'POST', ROUTE), { kind: 'replay', statusCode: 201, body: { id: 'sbx_1' } });
  assert.equal(store.begin('ws2', 'k1', FP, 'POST', ROUTE), { kind: 'replay', statusCode: 201, body: { id: 'sbx_2' } });
});

test('releaseRunning frees keys a dead process left running, keeping completed ones', () => {
  const { store } = fresh();
  store.begin('ws1', 'done', FP, 'POST', ROUTE);
  store.complete('ws1', 'done', 201, {});
  store.begin('ws1', 'stuck', FP, 'POST', ROUTE);
  assert.is(store.releaseRunning(), 1);
  assert.is(store.begin('ws1', 'stuck', FP, 'POST', ROUTE).kind, 'new');
  assert.is(store.begin('ws1', 'done', FP, 'POST', ROUTE).kind, 'replay');
});

test('complete after the key was abandoned stores nothing', () => {
  const { store } = fresh();
  store.begin('ws1', 'k1', FP, 'POST', ROUTE);
  store.abandon('ws1', 'k1');
  assert.not.ok(store.complete('ws1', 'k1', 201, {}));
  assert.is(store.begin('ws1', 'k1', FP, 'POST', ROUTE).kind, 'new');
});

test('an undefined response body replays as null', () => {
  const { store } = fresh();
  store.begin('ws1', 'k1', FP, 'POST', ROUTE);
  store.complete('ws1', 'k1', 204, undefined);
  assert.equal(store.begin('ws1', 'k1', FP, 'POST', ROUTE), { kind: 'replay', statusCode: 204, body: null });
});

test('fingerprint ignores key order at every depth but not values, arrays, method or path', () => {
  const reordered = { labels: { team: 'a' }, resources: { memoryMb: 512, cpu: 1 }, image: 'python:3.12' };
  assert.is(fingerprint('POST', ROUTE, reordered), FP);
  assert.is(fingerprint('post', ROUTE, BODY), FP);
  assert.match(FP, /^[0-9a-f]{64}$/);
  assert.is.not(fingerprint('POST', ROUTE, { ...BODY, resources: { cpu: 2, memoryMb: 512 } }), FP);
  assert.is.not(fingerprint('POST', ROUTE, { ...BODY, extra: 1 }), FP);
  assert.is.not(fingerprint('POST', ROUTE, { a: [1, 2] }), fingerprint('POST', ROUTE, { a: [2, 1] }));
  assert.is.not(fingerprint('PUT', ROUTE, BODY), FP);
  assert.is.not(fingerprint('POST', '/v1/sandboxes/sbx_2/execute', BODY), fingerprint('POST', '/v1/sandboxes/sbx_1/execute', BODY));
  assert.is.not(fingerprint('POST', ROUTE, '1'), fingerprint('POST', ROUTE, 1));
  assert.is.not(fingerprint('POST', ROUTE, undefined), fingerprint('POST', ROUTE, null));
});

test('canonicalJson sorts keys recursively and follows JSON for undefined', () => {
  assert.is(canonicalJson({ b: 1, a: { d: [{ z: 1, y: 2 }], c: null } }), '{"a":{"c":null,"d":[{"y":2,"z":1}]},"b":1}');
  assert.is(canonicalJson({ a: undefined, b: [undefined] }), '{"b":[null]}');
  assert.is(canonicalJson('x"y'), '"x\\"y"');
  assert.is(canonicalJson(new Date(0)), '"1970-01-01T00:00:00.000Z"');
});

test('rejects a malformed key with a 400 naming the header', () => {
  const { store } = fresh();
  const bad: unknown[] = ['', 'a'.repeat(256), 'caf\u00e9', 'tab\tkey', 'line\nbreak', ' lead', 'trail ', undefined, 42, ['a', 'b']];
  for (const key of bad) {
    const err = throwsCode(() => parseIdempotencyKey(key), 'VALIDATION_ERROR', 400);
    assert.is(err.details?.field, 'Idempotency-Key');
  }
  throwsCode(() => store.begin('ws1', '', FP, 'POST', ROUTE), 'VALIDATION_ERROR', 400);
  throwsCode(() => store.begin('ws1', 'k\u0000', FP, 'POST', ROUTE), 'VALIDATION_ERROR', 400);
});

test('accepts 1 to 255 printable ASCII characters, inner spaces included', () => {
  const good = ['a', 'a'.repeat(255), '550e8400-e29b-41d4-a716-446655440000', 'order 42 / retry', '!~{}"\\'];
  for (const key of good) assert.is(parseIdempotencyKey(key), key);
  const { store } = fresh();
  assert.is(store.begin('ws1', 'a'.repeat(255), FP, 'POST', ROUTE).kind, 'new');
});

test('a second store on the same db sees the keys of the first', () => {
  const { db, store, clock } = fresh();
  store.begin('ws1', 'k1', FP, 'POST', ROUTE);
  const again = new IdempotencyStore(db, { clock });
  throwsCode(() => again.begin('ws1', 'k1', FP, 'POST', ROUTE), 'CONFLICT', 409);
});

test.run();
