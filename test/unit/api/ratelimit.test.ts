import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  classify,
  DEFAULT_RATE_LIMITS,
  RateLimiter,
  rateLimitError,
  setRateLimitHeaders,
  type RateClass,
  type RateDecision,
} from '../../../api/ratelimit.ts';

/** The headers {@link setRateLimitHeaders} puts on a reply. */
function rateLimitHeaders(d: RateDecision): Record<string, string> {
  const set: Record<string, string> = {};
  setRateLimitHeaders({ header: (n: string, v: string) => (set[n] = v) }, d);
  return set;
}
import { DirectorError } from '../../../core/errors.ts';

// 2021-07-01T00:00:00Z, the Director Protocol's example reset instant: a minute boundary.
const T0 = 1_625_097_600_000;

function limiter(opts: ConstructorParameters<typeof RateLimiter>[0] = {}, startMs = T0) {
  const clock = {
    now: startMs,
    nowMs(): number {
      return this.now;
    },
  };
  return { clock, rl: new RateLimiter({ clock, ...opts }) };
}

test('uses the Director Protocol limits per minute by default', () => {
  const { rl } = limiter();
  assert.equal(rl.limits, { auth: 5, refresh: 60, session: 100, sandbox: 50, general: 1000 });
  assert.equal(DEFAULT_RATE_LIMITS, rl.limits);
  assert.is(rl.windowMs, 60_000);
  assert.is(rl.maxKeys, 100_000);
});

test('allows exactly the limit in a window, counting remaining down, then refuses', () => {
  const { rl } = limiter();
  const remaining: number[] = [];
  for (let i = 0; i < 5; i++) {
    const d = rl.take('auth', 'ip:10.0.0.1');
    assert.ok(d.allowed);
    assert.is(d.limit, 5);
    remaining.push(d.remaining);
  }
  assert.equal(remaining, [4, 3, 2, 1, 0]);
  const refused = rl.take('auth', 'ip:10.0.0.1');
  assert.not.ok(refused.allowed);
  assert.is(refused.remaining, 0);
  assert.not.ok(rl.take('auth', 'ip:10.0.0.1').allowed);
});

test('starts a fresh count when the window ends', () => {
  const { rl, clock } = limiter({ limits: { auth: 2 } }, T0 + 30_000);
  rl.take('auth', 'usr_a');
  rl.take('auth', 'usr_a');
  const refused = rl.take('auth', 'usr_a');
  assert.not.ok(refused.allowed);
  assert.is(refused.resetMs, T0 + 60_000);
  clock.now = T0 + 59_999;
  assert.not.ok(rl.take('auth', 'usr_a').allowed);
  clock.now = T0 + 60_000;
  const d = rl.take('auth', 'usr_a');
  assert.ok(d.allowed);
  assert.is(d.remaining, 1);
  assert.is(d.resetMs, T0 + 120_000);
});

test('retryAfterS is the whole seconds left in the window, never below 1', () => {
  const { rl, clock } = limiter({ limits: { sandbox: 1 } }, T0 + 15_000);
  rl.take('sandbox', 'usr_a');
  assert.is(rl.take('sandbox', 'usr_a').retryAfterS, 45);
  clock.now = T0 + 58_500;
  assert.is(rl.take('sandbox', 'usr_a').retryAfterS, 2);
  clock.now = T0 + 59_999;
  assert.is(rl.take('sandbox', 'usr_a').retryAfterS, 1);
  clock.now = T0;
  const other = rl.take('sandbox', 'usr_b');
  assert.is(other.retryAfterS, 60);
});

test('counts keys and classes independently', () => {
  const { rl } = limiter({ limits: { auth: 1, session: 1 } });
  assert.ok(rl.take('auth', 'usr_a').allowed);
  assert.not.ok(rl.take('auth', 'usr_a').allowed);
  assert.ok(rl.take('auth', 'usr_b').allowed);
  assert.ok(rl.take('session', 'usr_a').allowed);
  assert.ok(rl.take('auth', 'ip:usr_a').allowed);
  assert.is(rl.take('general', 'usr_a').remaining, 999);
});

test('honours configured limits and window length', () => {
  const { rl, clock } = limiter({ limits: { general: 3 }, windowMs: 10_000 });
  assert.is(rl.limits.auth, 5);
  for (let i = 0; i < 3; i++) assert.ok(rl.take('general', 'k').allowed);
  assert.not.ok(rl.take('general', 'k').allowed);
  clock.now = T0 + 10_000;
  assert.ok(rl.take('general', 'k').allowed);
});

test('rejects a non-positive or fractional limit, window or key bound', () => {
  assert.throws(() => new RateLimiter({ limits: { auth: 0 } }), /limits\.auth/);
  assert.throws(() => new RateLimiter({ limits: { general: 1.5 } }), /limits\.general/);
  assert.throws(() => new RateLimiter({ windowMs: 0 }), /windowMs/);
  assert.throws(() => new RateLimiter({ maxKeys: -1 }), /maxKeys/);
});

test('drops counters from earlier windows', () => {
  const { rl, clock } = limiter();
  for (let i = 0; i < 50; i++) rl.take('general', `ip:10.0.0.${i}`);
  assert.is(rl.size, 50);
  clock.now = T0 + 60_000;
  rl.take('general', 'usr_new');
  assert.is(rl.size, 1);
});

test('keeps at most maxKeys counters, forgetting the oldest first', () => {
  const { rl } = limiter({ maxKeys: 3, limits: { general: 1 } });
  rl.take('general', 'a');
  rl.take('general', 'b');
  rl.take('general', 'c');
  assert.not.ok(rl.take('general', 'a').allowed);
  rl.take('general', 'd');
  assert.is(rl.size, 3);
  // 'a' was evicted, so it starts over; 'b' was then the oldest and went when 'a' came back.
  assert.ok(rl.take('general', 'a').allowed);
  assert.is(rl.size, 3);
  assert.not.ok(rl.take('general', 'c').allowed);
  assert.not.ok(rl.take('general', 'd').allowed);
  assert.ok(rl.take('general', 'b').allowed);
});

test('memory stays bounded under a flood of distinct keys', () => {
  const { rl } = limiter({ maxKeys: 100 });
  for (let i = 0; i < 10_000; i++) rl.take('general', `ip:${i}`);
  assert.is(rl.size, 100);
});

test('renders the Director Protocol headers: limit, remaining, reset in epoch seconds and ISO time', () => {
  const { rl, clock } = limiter({}, T0 - 60_000 + 1234);
  const d = rl.take('general', 'usr_a');
  assert.equal(rateLimitHeaders(d), {
    'x-ratelimit-limit': '1000',
    'x-ratelimit-remaining': '999',
    'x-ratelimit-reset': '1625097600',
    'x-ratelimit-reset-time': '2021-07-01T00:00:00Z',
  });
  clock.now = T0 + 1;
  assert.is(rateLimitHeaders(rl.take('general', 'usr_a'))['x-ratelimit-reset'], '1625097660');
});

test('rounds a sub-second reset up to the next whole second in both reset headers', () => {
  const h = rateLimitHeaders({ allowed: true, limit: 2, remaining: 1, resetMs: T0 + 250, retryAfterS: 1 });
  assert.is(h['x-ratelimit-reset'], '1625097601');
  assert.is(h['x-ratelimit-reset-time'], '2021-07-01T00:00:01Z');
});

test('the reset headers follow the window as it moves, and back (the formatted instant is cached)', () => {
  const { rl, clock } = limiter({ limits: { auth: 1 } }, T0 + 20_000);
  for (const [at, reset] of [
    [T0 + 20_000, T0 + 60_000],
    [T0 + 20_001, T0 + 60_000],
    [T0 + 61_000, T0 + 120_000],
    [T0 + 20_000, T0 + 60_000],
  ] as const) {
    clock.now = at;
    const iso = new Date(reset).toISOString().replace('.000Z', 'Z');
    const first = rateLimitHeaders(rl.take('auth', `ip:${at}`));
    assert.equal(first, {
      'x-ratelimit-limit': '1',
      'x-ratelimit-remaining': '0',
      'x-ratelimit-reset': String(reset / 1000),
      'x-ratelimit-reset-time': iso,
    });
    const refused = rateLimitHeaders(rl.take('auth', `ip:${at}`));
    assert.equal(refused, { ...first, 'retry-after': String(Math.ceil((reset - at) / 1000)) });
  }
});

test('a counter from an earlier window is gone even when its key returns in a later one', () => {
  const { rl, clock } = limiter({ limits: { general: 2 } }, T0 + 1);
  rl.take('general', 'usr_a');
  assert.is(rl.take('general', 'usr_a').remaining, 0);
  clock.now = T0 + 60_001;
  assert.is(rl.take('general', 'usr_a').remaining, 1, 'a new window starts from the full limit');
  assert.is(rl.size, 1);
});

test('adds Retry-After only when the request was refused', () => {
  const { rl } = limiter({ limits: { auth: 1 } }, T0 + 20_000);
  assert.not.ok('retry-after' in rateLimitHeaders(rl.take('auth', 'ip:1')));
  const h = rateLimitHeaders(rl.take('auth', 'ip:1'));
  assert.is(h['retry-after'], '40');
  assert.is(h['x-ratelimit-remaining'], '0');
});

test('rateLimitError is a 429 carrying the limit and retryAfter', () => {
  const { rl } = limiter({ limits: { sandbox: 1 } }, T0 + 50_000);
  rl.take('sandbox', 'usr_a');
  const err = rateLimitError(rl.take('sandbox', 'usr_a'));
  assert.instance(err, DirectorError);
  assert.is(err.code, 'RATE_LIMIT_EXCEEDED');
  assert.is(err.status, 429);
  assert.equal(err.details, { limit: 1, retryAfter: 10 });
});

test('classifies routes into the Director Protocol rate classes', () => {
  const table: [string, string, RateClass][] = [
    ['POST', '/v1/auth/login', 'auth'],
    ['POST', '/v1/auth/refresh', 'refresh'],
    ['GET', '/v1/auth/me', 'auth'],
    ['GET', '/v1/auth', 'auth'],
    ['POST', '/v1/sessions', 'session'],
    ['GET', '/v1/sessions/:sessionId', 'session'],
    ['DELETE', '/v1/sessions/:sessionId', 'session'],
    ['POST', '/v1/sandboxes', 'sandbox'],
    ['POST', '/v1/sandboxes/:id/execute', 'sandbox'],
    ['POST', '/v1/sandboxes/:id/stop', 'sandbox'],
    ['DELETE', '/v1/sandboxes/:id', 'sandbox'],
    ['PUT', '/v1/sandboxes/:id/files', 'sandbox'],
    ['GET', '/v1/sandboxes/:id/files', 'sandbox'],
    ['GET', '/v1/sandboxes/:id/terminal', 'sandbox'],
    ['GET', '/v1/sandboxes', 'general'],
    ['GET', '/v1/sandboxes?status=running&limit=20', 'general'],
    ['GET', '/v1/sandboxes/:id', 'general'],
    ['get', '/v1/sandboxes/sbx_123/', 'general'],
    ['HEAD', '/v1/sandboxes/:id', 'general'],
    ['GET', '/v1/sandboxes/:id/metrics', 'general'],
    ['GET', '/v1/networks', 'general'],
    ['POST', '/v1/networks/:id/policies', 'general'],
    ['GET', '/v1/authz', 'general'],
    ['GET', '/v1/sessionsx', 'general'],
    ['GET', '/v1/sandboxesx', 'general'],
    ['GET', '/healthz', 'general'],
  ];
  for (const [method, url, cls] of table) assert.is(classify(method, url), cls, `${method} ${url}`);
});

test.run();
