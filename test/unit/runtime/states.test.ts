import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { canTransition, isActive, isTerminal, SANDBOX_STATES, type SandboxState } from '../../../runtime/sandbox/states.ts';

const ALLOWED: [SandboxState, SandboxState][] = [
  ['creating', 'running'],
  ['creating', 'failed'],
  ['creating', 'deleted'],
  ['running', 'stopping'],
  ['running', 'stopped'],
  ['running', 'failed'],
  ['running', 'deleted'],
  ['stopping', 'stopped'],
  ['stopping', 'failed'],
  ['stopping', 'deleted'],
  ['stopped', 'deleted'],
  ['failed', 'deleted'],
];
const allowed = new Set(ALLOWED.map(([a, b]) => `${a}>${b}`));

test('allows exactly the lifecycle transitions creating → running → stopping → stopped | failed → deleted', () => {
  for (const from of SANDBOX_STATES) {
    for (const to of SANDBOX_STATES) {
      assert.is(canTransition(from, to), allowed.has(`${from}>${to}`), `${from} → ${to}`);
    }
  }
});

test('no state transitions to itself', () => {
  for (const s of SANDBOX_STATES) assert.is(canTransition(s, s), false, s);
});

test('deleted is final: nothing leaves it', () => {
  for (const to of SANDBOX_STATES) assert.is(canTransition('deleted', to), false, to);
});

test('a stopped or failed sandbox cannot be restarted, only deleted', () => {
  for (const from of ['stopped', 'failed'] as const) {
    for (const to of ['creating', 'running', 'stopping'] as const) assert.is(canTransition(from, to), false, `${from} → ${to}`);
    assert.is(canTransition(from, 'deleted'), true);
  }
});

test('nothing goes back to creating', () => {
  for (const from of SANDBOX_STATES) assert.is(canTransition(from, 'creating'), false, from);
});

test('every state but deleted can be deleted directly', () => {
  for (const s of SANDBOX_STATES) {
    if (s !== 'deleted') assert.ok(canTransition(s, 'deleted'), s);
  }
});

test('creating, running and stopping are active; stopped, failed and deleted are terminal', () => {
  assert.equal(SANDBOX_STATES.filter(isActive), ['creating', 'running', 'stopping']);
  assert.equal(SANDBOX_STATES.filter(isTerminal), ['stopped', 'failed', 'deleted']);
  for (const s of SANDBOX_STATES) assert.is(isActive(s), !isTerminal(s), s);
});

test.run();
