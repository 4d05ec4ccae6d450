import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { canTransition, SESSION_STATES } from '../../../orchestration/sessions/states.ts';

test('active and paused go either way and may end; ended states are final except for deletion', () => {
  assert.ok(canTransition('active', 'paused'));
  assert.ok(canTransition('paused', 'active'));
  for (const end of ['completed', 'expired', 'terminated'] as const) {
    assert.ok(canTransition('active', end));
    assert.ok(canTransition('paused', end));
  }
  assert.not.ok(canTransition('completed', 'active'));
  assert.not.ok(canTransition('expired', 'active'));
  assert.not.ok(canTransition('expired', 'completed'));
  assert.ok(canTransition('completed', 'terminated'));
  assert.ok(canTransition('expired', 'terminated'));
  for (const s of SESSION_STATES) assert.not.ok(canTransition('terminated', s));
});

test.run();
