/**
 * Retry backoff, modelled on Temporal's retry policy: the first retry waits `initialIntervalMs`,
 * each next one `coefficient` times longer, never more than `maxIntervalMs`. Temporal's
 * defaults: 1 s, 2.0, and a cap of 100 × the initial interval. No jitter: a workflow's retries
 * are few and sequential, and a fixed schedule is what a user reading the status expects.
 */
export interface Backoff {
  initialIntervalMs: number;
  coefficient: number;
  maxIntervalMs: number;
}

export const DEFAULT_BACKOFF: Readonly<Backoff> = Object.freeze({ initialIntervalMs: 1000, coefficient: 2, maxIntervalMs: 100_000 });

/** A workflow's `config.backoff` as given (every field optional) with the defaults filled in. */
export function resolveBackoff(given: { initialInterval?: number; coefficient?: number; maxInterval?: number } = {}): Backoff {
  const initialIntervalMs = given.initialInterval ?? DEFAULT_BACKOFF.initialIntervalMs;
  return {
    initialIntervalMs,
    coefficient: given.coefficient ?? DEFAULT_BACKOFF.coefficient,
    // Temporal's cap defaults to 100 × the initial interval; a cap below the initial interval is raised to it.
    maxIntervalMs: Math.max(initialIntervalMs, given.maxInterval ?? initialIntervalMs * 100),
  };
}

/** The wait before retry number `retry` (1 for the first), in ms. */
export function backoffDelayMs(b: Backoff, retry: number): number {
  if (retry < 1) return 0;
  const raw = b.initialIntervalMs * Math.pow(b.coefficient, retry - 1);
  return Math.round(Math.min(raw, b.maxIntervalMs));
}
