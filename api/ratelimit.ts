import { systemClock, type Clock } from '../core/clock.ts';
import { DirectorError } from '../core/errors.ts';

/**
 * Per-principal request limits (Director Protocol, "Rate Limiting"): a fixed window per
 * (class, key), in memory. Pure bookkeeping: the API layer calls {@link RateLimiter.take}
 * once per request, sets the {@link rateLimitHeaders} on every response (through
 * {@link setRateLimitHeaders}) and throws {@link rateLimitError} when a request is refused.
 */
export type RateClass = 'auth' | 'refresh' | 'session' | 'sandbox' | 'general';

/**
 * The Director Protocol's limits, in requests per window (one minute), plus `refresh`: token
 * refreshes have their own budget, so a client that refreshes often cannot lock its address out
 * of logging in (a refresh token is 256 random bits: guessing one is not what the login limit is for).
 */
export const DEFAULT_RATE_LIMITS: Readonly<Record<RateClass, number>> = { auth: 5, refresh: 60, session: 100, sandbox: 50, general: 1000 };
export const DEFAULT_RATE_WINDOW_MS = 60_000;
export const DEFAULT_RATE_MAX_KEYS = 100_000;

export interface RateDecision {
  allowed: boolean;
  limit: number;
  /** Requests left in this window after this one. */
  remaining: number;
  /** Epoch ms at which the current window ends and the count starts again. */
  resetMs: number;
  /** Whole seconds until `resetMs`, at least 1. */
  retryAfterS: number;
}

export interface RateLimiterOptions {
  /** Requests per window for each class; omitted classes keep {@link DEFAULT_RATE_LIMITS}. Positive integers. */
  limits?: Partial<Record<RateClass, number>>;
  /** Window length; default {@link DEFAULT_RATE_WINDOW_MS}. */
  windowMs?: number;
  clock?: Clock;
  /** Most (class, key) counters kept at once; default {@link DEFAULT_RATE_MAX_KEYS}. */
  maxKeys?: number;
}

interface Counter {
  windowStartMs: number;
  count: number;
}

const positiveInt = (name: string, v: number): number => {
  if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`rate limiter: ${name} must be a positive integer, got ${v}`);
  return v;
};

export class RateLimiter {
  readonly limits: Readonly<Record<RateClass, number>>;
  readonly windowMs: number;
  readonly maxKeys: number;
  private readonly clock: Clock;
  /**
   * Insertion order is window order: a counter is re-inserted when its key starts a new
   * window and never moved within one, so expired counters are always at the front and
   * the oldest counter is always the first.
   */
  private readonly counters = new Map<string, Counter>();
  /** The window whose start the last sweep evicted up to. */
  private sweptWindowMs = Number.NaN;

  constructor(opts: RateLimiterOptions = {}) {
    const limits = { ...DEFAULT_RATE_LIMITS, ...opts.limits };
    for (const [cls, n] of Object.entries(limits)) positiveInt(`limits.${cls}`, n);
    this.limits = limits;
    this.windowMs = positiveInt('windowMs', opts.windowMs ?? DEFAULT_RATE_WINDOW_MS);
    this.maxKeys = positiveInt('maxKeys', opts.maxKeys ?? DEFAULT_RATE_MAX_KEYS);
    this.clock = opts.clock ?? systemClock;
  }

  /** Counters currently held (for tests and metrics). */
  get size(): number {
    return this.counters.size;
  }

  /**
   * Counts one request by `key` (a principal id, `usr_...`/`key_...`, or `ip:<addr>` on
   * anonymous routes) against `cls` and says whether it may proceed. A refused request
   * does not count.
   */
  take(cls: RateClass, key: string): RateDecision {
    const nowMs = this.clock.nowMs();
    // Windows are aligned to the epoch, so every caller's window ends at the same instant
    // and X-RateLimit-Reset is a whole second (as in the Director Protocol's example) when the window is.
    const windowStartMs = nowMs - (((nowMs % this.windowMs) + this.windowMs) % this.windowMs);
    const resetMs = windowStartMs + this.windowMs;
    const limit = this.limits[cls];
    const id = `${cls}:${key}`;
    this.evictExpired(windowStartMs);

    let counter = this.counters.get(id);
    if (!counter) {
      // Evicting a live counter forgets its count (that key gets a fresh window); the bound
      // exists so a flood of distinct keys (many source addresses) cannot exhaust memory.
      while (this.counters.size >= this.maxKeys) {
        const oldest = this.counters.keys().next();
        if (oldest.done) break;
        this.counters.delete(oldest.value);
      }
      counter = { windowStartMs, count: 0 };
      this.counters.set(id, counter);
    }

    const retryAfterS = Math.max(1, Math.ceil((resetMs - nowMs) / 1000));
    if (counter.count >= limit) return { allowed: false, limit, remaining: 0, resetMs, retryAfterS };
    counter.count++;
    return { allowed: true, limit, remaining: limit - counter.count, resetMs, retryAfterS };
  }

  /**
   * Drops every counter from an earlier window; they sit at the front. Once per window: every
   * counter created after the sweep belongs to the current window.
   */
  private evictExpired(currentStartMs: number): void {
    if (this.sweptWindowMs === currentStartMs) return;
    for (const [id, c] of this.counters) {
      if (c.windowStartMs >= currentStartMs) break;
      this.counters.delete(id);
    }
    this.sweptWindowMs = currentStartMs;
  }
}

/**
 * Sets the Director Protocol's four headers on `reply` (every response that went through the limiter), plus
 * `Retry-After` (RFC 9110) on a refusal. `X-RateLimit-Reset` is epoch seconds;
 * `X-RateLimit-Reset-Time` is the same instant in ISO 8601 without fractional seconds.
 * The Director Protocol shows that value in double quotes; we send it bare, since the quotes in the
 * example are not part of any date format a client would parse.
 */
export function setRateLimitHeaders(reply: { header(name: string, value: string): unknown }, d: RateDecision): void {
  const reset = resetStrings(d.resetMs);
  reply.header('x-ratelimit-limit', String(d.limit));
  reply.header('x-ratelimit-remaining', String(d.remaining));
  reply.header('x-ratelimit-reset', reset.seconds);
  reply.header('x-ratelimit-reset-time', reset.iso);
  if (!d.allowed) reply.header('retry-after', String(d.retryAfterS));
}

// Windows are aligned, so nearly every request shares the last reset instant: format it once.
let lastReset = { ms: Number.NaN, seconds: '', iso: '' };
function resetStrings(resetMs: number): { seconds: string; iso: string } {
  if (resetMs !== lastReset.ms) {
    const resetS = Math.ceil(resetMs / 1000);
    lastReset = { ms: resetMs, seconds: String(resetS), iso: new Date(resetS * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z') };
  }
  return lastReset;
}

const SANDBOX_READ = /^\/v1\/sandboxes(?:\/[^/]+(?:\/metrics)?)?\/?$/;
/**
 * The Director Protocol's "session operations" (100/min): sessions and everything made in them
 * (departments, context, checkpoints, environments, workflows) and the agents, chat, approvals and
 * vault built on them.
 */
const SESSION_AREAS = [
  '/v1/sessions',
  '/v1/departments',
  '/v1/context',
  '/v1/checkpoints',
  '/v1/environments',
  '/v1/workflows',
  '/v1/agents',
  '/v1/chat',
  '/v1/approvals',
  '/v1/auto-approve',
  '/v1/vault',
];
const under = (path: string, prefix: string): boolean => path === prefix || path.startsWith(`${prefix}/`);

/**
 * Which limit a request counts against. `routeUrl` is the route's template
 * (`/v1/sandboxes/:id`) or, for unmatched requests, the path; a query string is ignored.
 *
 * `POST /v1/auth/refresh` is its own class: it shares the client address with login, and a
 * client refreshing often must not spend the login budget.
 *
 * Sandbox routes count as "Sandbox Operations" (50/min) except `GET`/`HEAD` of the list,
 * one sandbox and its metrics, which count as general: they are cheap store reads, and a
 * client polling a sandbox's status would otherwise burn its sandbox budget in under a
 * minute. Other sandbox `GET`s (file downloads, logs, the exec/terminal WebSocket) reach
 * into the container and stay in the sandbox class.
 */
export function classify(method: string, routeUrl: string): RateClass {
  const path = routeUrl.split('?', 1)[0] ?? '';
  if (under(path, '/v1/auth/refresh')) return 'refresh';
  if (under(path, '/v1/auth')) return 'auth';
  if (SESSION_AREAS.some((a) => under(path, a))) return 'session';
  if (under(path, '/v1/sandboxes')) {
    const m = method.toUpperCase();
    return (m === 'GET' || m === 'HEAD') && SANDBOX_READ.test(path) ? 'general' : 'sandbox';
  }
  return 'general';
}

/** The 429 for a refused decision; the API layer copies `details.retryAfter` into the envelope's metadata. */
export const rateLimitError = (d: RateDecision): DirectorError =>
  new DirectorError('RATE_LIMIT_EXCEEDED', 'Rate limit exceeded', { limit: d.limit, retryAfter: d.retryAfterS });
