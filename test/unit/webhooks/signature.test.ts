import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { signBody, webhookBody } from '../../../runtime/webhooks/signature.ts';
import { eventData, eventName } from '../../../runtime/webhooks/catalogue.ts';
import type { SecurityEvent } from '../../../runtime/events.ts';
import { verifyWebhook } from './seed.ts';

const SECRET = 'whsec-0123456789abcdef';

const event = (over: Partial<SecurityEvent> = {}): SecurityEvent => ({
  id: 'evt_AAAAAAAAAAAAAAAA',
  seq: 7,
  type: 'egress_denied',
  severity: 'medium',
  timestamp: '2025-01-02T03:04:05.678Z',
  workspace: 'wsp_x',
  sandboxId: 'sbx_BBBBBBBBBBBBBBBB',
  networkId: null,
  sessionId: null,
  actor: null,
  details: {
    remote: '203.0.113.5',
    port: 443,
    note: 'quotes " and \\ and unicode \u00e9 \u2028 \ud83d\ude00',
    nested: { b: 1, 2: 'two', a: [1.5, -0, 1e21, null] },
  },
  ...over,
});

test("the Director Protocol's verifyWebhook accepts our signature on the parsed body", () => {
  const body = webhookBody({ event: eventName(event()), data: eventData(event()), timestamp: event().timestamp });
  const signature = signBody(body, SECRET);
  assert.match(signature, /^sha256=[0-9a-f]{64}$/);
  assert.ok(verifyWebhook(JSON.parse(body), signature, SECRET));
});

test('the body survives a parse/stringify round trip byte for byte', () => {
  const body = webhookBody({ event: 'security.event', data: eventData(event()), timestamp: event().timestamp });
  assert.is(JSON.stringify(JSON.parse(body)), body);
});

test('the body holds exactly event, data and timestamp, in that order', () => {
  const body = webhookBody({ event: 'sandbox.created', data: { sandboxId: 'sbx_1' }, timestamp: 't' });
  assert.equal(Object.keys(JSON.parse(body) as object), ['event', 'data', 'timestamp']);
});

test("the Director Protocol's verifyWebhook refuses another secret and a changed payload", () => {
  const body = webhookBody({ event: 'sandbox.created', data: { sandboxId: 'sbx_1' }, timestamp: 't' });
  const signature = signBody(body, SECRET);
  assert.not.ok(verifyWebhook(JSON.parse(body), signature, 'another-secret-of-16+'));
  const tampered = { ...(JSON.parse(body) as Record<string, unknown>), event: 'sandbox.deleted' };
  assert.not.ok(verifyWebhook(tampered, signature, SECRET));
});

test('lifecycle events carry the sandbox flat; other security events carry the full event', () => {
  const created = event({ type: 'sandbox_created', details: { status: 'running', source: 'cold' } });
  assert.is(eventName(created), 'sandbox.created');
  assert.equal(eventData(created), {
    status: 'running',
    source: 'cold',
    sandboxId: created.sandboxId,
    networkId: null,
    actor: null,
    eventId: created.id,
  });
  assert.is(eventName(event()), 'security.event');
  assert.equal(eventData(event()), { ...event() });
  assert.is(eventName(event({ type: 'security_alert' })), 'security.alert');
});

test.run();
