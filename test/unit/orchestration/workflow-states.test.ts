import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { canTransition, isOpenRun, RUN_STATES, statesBefore } from '../../../orchestration/workflows/states.ts';

test('a run goes pending → queued → running → an end; a pending run may start at once', () => {
  assert.ok(canTransition('pending', 'queued'));
  assert.ok(canTransition('pending', 'running'));
  assert.ok(canTransition('queued', 'running'));
  for (const end of ['completed', 'failed', 'cancelled', 'timed_out'] as const) assert.ok(canTransition('running', end), end);
});

test('only a running run completes or times out; any open run may be cancelled or fail', () => {
  for (const from of ['pending', 'queued'] as const) {
    assert.not.ok(canTransition(from, 'completed'));
    assert.not.ok(canTransition(from, 'timed_out'));
    assert.ok(canTransition(from, 'cancelled'));
    assert.ok(canTransition(from, 'failed'));
  }
  assert.not.ok(canTransition('running', 'queued'), 'a running run never goes back to the queue');
  assert.not.ok(canTransition('running', 'pending'));
});

test('ended states are final', () => {
  for (const end of ['completed', 'failed', 'cancelled', 'timed_out'] as const) {
    assert.not.ok(isOpenRun(end));
    for (const to of RUN_STATES) assert.not.ok(canTransition(end, to), `${end} → ${to}`);
  }
  for (const open of ['pending', 'queued', 'running'] as const) assert.ok(isOpenRun(open));
});

test('statesBefore lists exactly the states a transition may start from', () => {
  assert.equal(statesBefore('running').sort(), ['pending', 'queued']);
  assert.equal(statesBefore('cancelled').sort(), ['pending', 'queued', 'running']);
  assert.equal(statesBefore('completed'), ['running']);
  assert.equal(statesBefore('pending'), []);
});

test.run();
