import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { outcomeOf, shouldAudit } from '../../../api/audit/hook.ts';

test('outcome: success below 400, denied for 401 and 403, error otherwise', () => {
  assert.is(outcomeOf(200), 'success');
  assert.is(outcomeOf(201), 'success');
  assert.is(outcomeOf(304), 'success');
  assert.is(outcomeOf(401), 'denied');
  assert.is(outcomeOf(403), 'denied');
  assert.is(outcomeOf(400), 'error');
  assert.is(outcomeOf(404), 'error');
  assert.is(outcomeOf(500), 'error');
});

test('every mutating request under /v1 is audited, whatever its status', () => {
  for (const m of ['POST', 'PUT', 'PATCH', 'DELETE']) {
    for (const s of [200, 201, 400, 404, 409, 500]) assert.ok(shouldAudit(m, '/v1/sandboxes', s, true), `${m} ${s}`);
  }
  assert.ok(shouldAudit('POST', '/v1/auth/login', 401, false));
  assert.ok(shouldAudit('POST', '/v1/no/such/route', 404, false));
});

test('reads are audited only when refused', () => {
  assert.not.ok(shouldAudit('GET', '/v1/sandboxes', 200, true));
  assert.not.ok(shouldAudit('GET', '/v1/sandboxes/x', 404, true));
  assert.ok(shouldAudit('GET', '/v1/sandboxes', 401, false));
  assert.ok(shouldAudit('GET', '/v1/audit-logs', 403, true));
  assert.ok(shouldAudit('GET', '/metrics', 401, false));
});

test('mutations outside /v1 are not audited unless refused', () => {
  assert.not.ok(shouldAudit('POST', '/health', 404, false));
  assert.ok(shouldAudit('POST', '/health', 401, false));
});

test('an anonymous 429 is not audited (no unbounded growth from a flood); an authenticated one is', () => {
  assert.not.ok(shouldAudit('POST', '/v1/auth/login', 429, false));
  assert.ok(shouldAudit('POST', '/v1/sandboxes', 429, true));
});

test.run();
