/**
 * Per-client token buckets: `ratePerS` tokens per second, at most `burst` stored. Clients are
 * sandbox addresses on Director's own networks, so the table is small; it is still bounded.
 */
import type { Clock } from '../../../core/clock.ts';

export interface RateLimitOptions {
  /** Sustained queries per second per client. */
  ratePerS: number;
  /** Queries a client may send at once after being idle. */
  burst: number;
}

export const DEFAULT_RATE_LIMIT: RateLimitOptions = { ratePerS: 200, burst: 400 };
const MAX_CLIENTS = 8192;

interface Bucket {
  tokens: number;
  atMs: number;
}

export class TokenBuckets {
  readonly #opts: RateLimitOptions;
  readonly #clock: Clock;
  readonly #buckets = new Map<string, Bucket>();

  constructor(opts: RateLimitOptions, clock: Clock) {
    this.#opts = opts;
    this.#clock = clock;
  }

  /** Takes one token for `client`; false when it has none left. */
  take(client: string): boolean {
    const now = this.#clock.nowMs();
    let b = this.#buckets.get(client);
    if (b === undefined) {
      if (this.#buckets.size >= MAX_CLIENTS) this.#prune(now);
      b = { tokens: this.#opts.burst, atMs: now };
      this.#buckets.set(client, b);
    } else {
      b.tokens = Math.min(this.#opts.burst, b.tokens + (Math.max(0, now - b.atMs) / 1000) * this.#opts.ratePerS);
      b.atMs = now;
    }
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Forgets clients whose bucket has refilled (they are indistinguishable from new ones). */
  #prune(now: number): void {
    const refillMs = (this.#opts.burst / this.#opts.ratePerS) * 1000;
    for (const [k, b] of this.#buckets) if (now - b.atMs >= refillMs) this.#buckets.delete(k);
    // Still full: drop the oldest entries (Map keeps insertion order).
    for (const k of this.#buckets.keys()) {
      if (this.#buckets.size < MAX_CLIENTS) break;
      this.#buckets.delete(k);
    }
  }

  /** Forgets every client whose key starts with `prefix` (a closed network's). */
  forget(prefix: string): void {
    for (const k of this.#buckets.keys()) if (k.startsWith(prefix)) this.#buckets.delete(k);
  }
}
