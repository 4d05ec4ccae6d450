/** Retry schedule of webhook deliveries: exponential, capped. */
export interface BackoffOptions {
  /** Delay after the first failed attempt, in ms. */
  baseDelayMs: number;
  /** Largest delay between two attempts, in ms. */
  maxDelayMs: number;
}

/**
 * Delay before the attempt after `failedAttempt` (1-based): base, 2·base, 4·base, ... capped at
 * `maxDelayMs`. `jitter` (0..1, from the caller's random source) adds up to `jitterRatio` of the
 * delay, never less, so receivers recovering from an outage are not hit by every webhook at once.
 */
export function backoffMs(failedAttempt: number, o: BackoffOptions, jitter = 0, jitterRatio = 0): number {
  const exp = Math.min(Math.max(failedAttempt - 1, 0), 52);
  const delay = Math.min(o.baseDelayMs * 2 ** exp, o.maxDelayMs);
  return Math.round(delay + delay * jitterRatio * Math.min(Math.max(jitter, 0), 1));
}
