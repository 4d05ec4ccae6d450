import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { HUB_MESSAGES, TERMINAL_MESSAGES, authenticatedMessage, parseMessage } from '../../../api/ws/protocol.ts';

const hub = (text: string) => parseMessage(HUB_MESSAGES, text);
const fieldOf = (r: ReturnType<typeof hub>) => (r.ok ? null : r.error.details?.field);

test('accepts each hub message type', () => {
  for (const m of [
    { type: 'auth', token: 'a.b.c' },
    { type: 'auth', token: 'dk_x', workspace: 'ws-two' },
    { type: 'subscribe', channel: 'security' },
    { type: 'subscribe', channel: 'sandboxes', after: 0 },
    { type: 'subscribe', channel: 'security', after: 123456 },
    { type: 'unsubscribe', channel: 'security' },
    { type: 'ping' },
  ]) {
    const r = hub(JSON.stringify(m));
    assert.ok(r.ok, JSON.stringify(m));
    if (r.ok) assert.equal(r.message, m);
  }
});

test('answers invalid JSON and non-objects with VALIDATION_ERROR', () => {
  for (const text of ['{oops', '', '[]', '"ping"', 'null', '42']) {
    const r = hub(text);
    assert.not.ok(r.ok, text);
    if (!r.ok) {
      assert.is(r.error.type, 'error');
      assert.is(r.error.code, 'VALIDATION_ERROR');
      assert.is(r.error.details?.field, 'message');
    }
  }
});

test('names an unknown or missing type, and never treats inherited keys as types', () => {
  for (const text of ['{"type":"launch"}', '{"type":"constructor"}', '{"type":"toString"}', '{"type":"resize","cols":1,"rows":1}']) {
    const r = hub(text);
    assert.not.ok(r.ok, text);
    if (!r.ok) assert.match(r.error.message, /unknown message type \(expected one of: auth, subscribe, unsubscribe, ping\)/);
  }
  assert.is(fieldOf(hub('{"channel":"security"}')), 'type');
  assert.is(fieldOf(hub('{"type":7}')), 'type');
});

test('names the field at fault', () => {
  assert.is(fieldOf(hub('{"type":"subscribe"}')), 'channel');
  assert.is(fieldOf(hub('{"type":"subscribe","channel":"security","after":-1}')), 'after');
  assert.is(fieldOf(hub('{"type":"subscribe","channel":"security","after":1.5}')), 'after');
  assert.is(fieldOf(hub('{"type":"subscribe","channel":"security","after":"5"}')), 'after');
  assert.is(fieldOf(hub('{"type":"subscribe","channel":"Security Events"}')), 'channel');
  assert.is(fieldOf(hub('{"type":"auth"}')), 'token');
  assert.is(fieldOf(hub('{"type":"auth","token":""}')), 'token');
  assert.is(fieldOf(hub(JSON.stringify({ type: 'auth', token: 'x'.repeat(5000) }))), 'token');
  assert.is(fieldOf(hub('{"type":"ping","extra":1}')), 'extra');
});

test('terminal control messages bound the size', () => {
  const term = (m: unknown) => parseMessage(TERMINAL_MESSAGES, JSON.stringify(m));
  assert.ok(term({ type: 'resize', cols: 100, rows: 40 }).ok);
  assert.ok(term({ type: 'resize', cols: 1000, rows: 1 }).ok);
  for (const bad of [{ cols: 0, rows: 40 }, { cols: 100, rows: 1001 }, { cols: 80.5, rows: 24 }, { cols: 80 }]) {
    const r = term({ type: 'resize', ...bad });
    assert.not.ok(r.ok, JSON.stringify(bad));
  }
  assert.not.ok(term({ type: 'subscribe', channel: 'security' }).ok);
});

test('authenticated carries only who, where and the role', () => {
  const msg = authenticatedMessage({
    kind: 'key',
    userId: 'usr_1',
    username: 'u',
    keyId: 'key_1',
    workspace: 'wsp_1',
    role: 'auditor',
    scopes: new Set(['security:read']),
    tokenId: null,
  });
  assert.equal(msg, { type: 'authenticated', principal: { userId: 'usr_1', workspace: 'wsp_1', role: 'auditor' } });
});

test.run();
