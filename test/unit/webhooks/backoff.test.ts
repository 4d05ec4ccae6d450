import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { backoffMs } from '../../../runtime/webhooks/backoff.ts';
import { DISPATCHER_DEFAULTS } from '../../../runtime/webhooks/options.ts';

test('the default schedule doubles from 1 s over 8 attempts', () => {
  const waits = Array.from({ length: DISPATCHER_DEFAULTS.maxAttempts - 1 }, (_, i) => backoffMs(i + 1, DISPATCHER_DEFAULTS));
  assert.equal(waits, [1000, 2000, 4000, 8000, 16_000, 32_000, 64_000]);
});

test('delays stop growing at the cap', () => {
  const o = { baseDelayMs: 1000, maxDelayMs: 5000 };
  assert.equal(
    [1, 2, 3, 4, 5, 60, 5000].map((n) => backoffMs(n, o)),
    [1000, 2000, 4000, 5000, 5000, 5000, 5000],
  );
});

test('jitter only ever lengthens a delay, by at most the ratio', () => {
  const o = { baseDelayMs: 100, maxDelayMs: 10_000 };
  assert.is(backoffMs(3, o, 0, 0.1), 400);
  assert.is(backoffMs(3, o, 1, 0.1), 440);
  assert.is(backoffMs(3, o, 0.5, 0.1), 420);
  assert.is(backoffMs(3, o, 7, 0.1), 440, 'an out-of-range random value is clamped');
});

test.run();
