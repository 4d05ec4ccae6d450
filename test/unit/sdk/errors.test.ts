import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  AuthenticationError,
  ConflictError,
  ConnectionError,
  DirectorApiError,
  NotFoundError,
  RateLimitError,
  ServerError,
  ValidationError,
  connectionError,
  errorFromResponse,
} from '../../../sdk/errors.ts';

const envelope = (code: string, extra: Record<string, unknown> = {}) => ({
  success: false,
  error: { code, message: `${code} happened`, details: { field: 'image', issue: 'bad' } },
  metadata: { timestamp: '2026-01-01T00:00:00Z', requestId: 'req_abc', ...extra },
});

test('each error code becomes its own class, carrying code, status, details and request id', () => {
  const cases: [string, number, new (...a: never[]) => DirectorApiError][] = [
    ['VALIDATION_ERROR', 400, ValidationError],
    ['AUTHENTICATION_ERROR', 401, AuthenticationError],
    ['NOT_FOUND', 404, NotFoundError],
    ['CONFLICT', 409, ConflictError],
    ['INTERNAL_ERROR', 500, ServerError],
    ['SERVICE_UNAVAILABLE', 503, ServerError],
  ];
  for (const [code, status, Class] of cases) {
    const err = errorFromResponse(status, envelope(code));
    assert.instance(err, Class, code);
    assert.instance(err, DirectorApiError);
    assert.is(err.code, code);
    assert.is(err.status, status);
    assert.is(err.message, `${code} happened`);
    assert.is(err.requestId, 'req_abc');
    assert.equal(err.details, { field: 'image', issue: 'bad' });
    assert.is(err.name, Class.name);
  }
  assert.is((errorFromResponse(400, envelope('VALIDATION_ERROR')) as ValidationError).field, 'image');
});

test('rate limits carry the advised wait, from the envelope or the Retry-After header', () => {
  const fromBody = errorFromResponse(429, envelope('RATE_LIMIT_EXCEEDED', { retryAfter: 42 }));
  assert.instance(fromBody, RateLimitError);
  assert.is((fromBody as RateLimitError).retryAfterS, 42);
  const fromHeader = errorFromResponse(429, envelope('RATE_LIMIT_EXCEEDED'), new Headers({ 'retry-after': '7' }));
  assert.is((fromHeader as RateLimitError).retryAfterS, 7);
});

test('a code this SDK does not know yet keeps its code; answers without an envelope are described by status', () => {
  const newer = errorFromResponse(418, envelope('SOMETHING_NEW'));
  assert.is(newer.code, 'SOMETHING_NEW');
  assert.is(newer.constructor, DirectorApiError);
  const proxy = errorFromResponse(502, '<html>bad gateway</html>', new Headers({ 'x-request-id': 'req_h' }));
  assert.instance(proxy, ServerError);
  assert.is(proxy.code, 'INTERNAL_ERROR');
  assert.match(proxy.message, /HTTP 502 without an error envelope: <html>bad gateway/);
  assert.is(proxy.requestId, 'req_h');
  assert.is(errorFromResponse(400, 'nope').code, 'PROTOCOL_ERROR');
});

test('an unreachable server is a ConnectionError naming the system reason', () => {
  const cause = Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } });
  const err = connectionError('http://127.0.0.1:1', cause);
  assert.instance(err, ConnectionError);
  assert.is(err.code, 'CONNECTION_ERROR');
  assert.is(err.message, 'cannot reach http://127.0.0.1:1: ECONNREFUSED');
  assert.is(err.cause, cause);
});

test.run();
