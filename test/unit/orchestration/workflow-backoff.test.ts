import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { backoffDelayMs, DEFAULT_BACKOFF, resolveBackoff } from '../../../orchestration/workflows/backoff.ts';

test("Temporal's defaults: 1 s, doubling, capped at 100 × the initial interval", () => {
  const b = resolveBackoff();
  assert.equal(b, { initialIntervalMs: 1000, coefficient: 2, maxIntervalMs: 100_000 });
  assert.equal(b, { ...DEFAULT_BACKOFF });
  assert.equal(
    [1, 2, 3, 4, 5, 6, 7, 8].map((n) => backoffDelayMs(b, n)),
    [1000, 2000, 4000, 8000, 16_000, 32_000, 64_000, 100_000],
  );
  assert.is(backoffDelayMs(b, 50), 100_000, 'stays at the cap');
});

test('given values replace the defaults; the cap defaults to 100 × the given initial interval', () => {
  const b = resolveBackoff({ initialInterval: 50, coefficient: 3 });
  assert.equal(b, { initialIntervalMs: 50, coefficient: 3, maxIntervalMs: 5000 });
  assert.equal(
    [1, 2, 3, 4, 5].map((n) => backoffDelayMs(b, n)),
    [50, 150, 450, 1350, 4050],
  );
  assert.is(backoffDelayMs(b, 6), 5000);
});

test('a cap below the initial interval is raised to it; coefficient 1 is a constant wait', () => {
  assert.is(resolveBackoff({ initialInterval: 500, maxInterval: 10 }).maxIntervalMs, 500);
  const flat = resolveBackoff({ initialInterval: 200, coefficient: 1 });
  assert.equal(
    [1, 2, 10].map((n) => backoffDelayMs(flat, n)),
    [200, 200, 200],
  );
});

test('no wait before the first attempt', () => {
  assert.is(backoffDelayMs(resolveBackoff(), 0), 0);
});

test.run();
