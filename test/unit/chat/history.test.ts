import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { ModelMessage } from 'ai';
import { historyWindow } from '../../../orchestration/chat/history.ts';

const user = (t: string): ModelMessage => ({ role: 'user', content: t });
const said = (t: string): ModelMessage => ({ role: 'assistant', content: t });
const call = (id: string): ModelMessage => ({
  role: 'assistant',
  content: [{ type: 'tool-call', toolCallId: id, toolName: 'execute', input: { command: 'true' } }],
});
const result = (id: string): ModelMessage => ({
  role: 'tool',
  content: [{ type: 'tool-result', toolCallId: id, toolName: 'execute', output: { type: 'text', value: 'ok' } }],
});
const roles = (m: ModelMessage[]) => m.map((x) => (typeof x.content === 'string' ? x.content : `${x.role}`));

test('a history within the limit is sent whole', () => {
  const h = [user('u1'), said('a1'), user('u2')];
  assert.equal(historyWindow(h, 3), h);
  assert.equal(historyWindow(h, 100), h);
});

test('the newest messages are kept, starting at a user message: a tool result never goes without its call', () => {
  const h = [user('u1'), call('c1'), result('c1'), said('a1'), user('u2'), call('c2'), result('c2'), said('a2'), user('u3')];
  // The newest 4 start at result('c2'): the window moves on to the next user message.
  assert.equal(roles(historyWindow(h, 4)), ['u3']);
  // The newest 5 start at user('u2'): exactly that.
  assert.equal(roles(historyWindow(h, 5)), ['u2', 'assistant', 'tool', 'a2', 'u3']);
  // 7 start at call('c1')'s result: moved on to u2.
  assert.equal(roles(historyWindow(h, 7)), ['u2', 'assistant', 'tool', 'a2', 'u3']);
});

test('one turn longer than the limit (many tool rounds) is sent from its user message', () => {
  const h = [user('u1'), said('a1'), user('u2'), call('c1'), result('c1'), call('c2'), result('c2'), call('c3'), result('c3')];
  assert.equal(roles(historyWindow(h, 3)), ['u2', 'assistant', 'tool', 'assistant', 'tool', 'assistant', 'tool']);
});

test('the newest user message is always in the window', () => {
  const h = [user('u1'), said('a1'), user('u2')];
  assert.equal(roles(historyWindow(h, 1)), ['u2']);
});

test.run();
