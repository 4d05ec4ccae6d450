import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TokenBuckets } from '../../../runtime/network/dns/rate-limit.ts';

test('a client gets its burst, then its rate; clients are independent', () => {
  let now = 0;
  const buckets = new TokenBuckets({ ratePerS: 2, burst: 3 }, { nowMs: () => now });
  assert.equal(
    [1, 2, 3, 4].map(() => buckets.take('a')),
    [true, true, true, false],
  );
  assert.is(buckets.take('b'), true);
  now += 500; // one token back
  assert.equal([buckets.take('a'), buckets.take('a')], [true, false]);
  now += 60_000;
  assert.equal(
    [1, 2, 3, 4].map(() => buckets.take('a')),
    [true, true, true, false],
    'refills only up to the burst',
  );
});

test('forget drops the clients of one prefix', () => {
  const buckets = new TokenBuckets({ ratePerS: 1, burst: 1 }, { nowMs: () => 0 });
  assert.is(buckets.take('n1|c'), true);
  assert.is(buckets.take('n1|c'), false);
  buckets.forget('n1|');
  assert.is(buckets.take('n1|c'), true);
});

test.run();
