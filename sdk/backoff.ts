/**
 * The reconnect delays of the SDK's live connections (the event hub's WebSocket, followed SSE
 * streams): exponential from `initialDelayMs`, capped at `maxDelayMs`, with jitter (half to all
 * of the step) so clients dropped together do not come back together.
 */

export interface ReconnectOptions {
  /** First delay after a drop, doubled on every failed attempt (with jitter), in ms. Default 250. */
  initialDelayMs?: number;
  /** Longest delay between attempts, in ms. Default 10,000. */
  maxDelayMs?: number;
  /** Give up after this many failed attempts in a row. Default: never for the event hub, 5 for followed streams. */
  maxAttempts?: number;
}

/** The settings for a `reconnect` option (`false`: none; `true` or omitted: the defaults). */
export function reconnectSettings(
  option: boolean | ReconnectOptions | undefined,
  defaults: { maxAttempts: number },
): Required<ReconnectOptions> | null {
  if (option === false) return null;
  return { initialDelayMs: 250, maxDelayMs: 10_000, ...defaults, ...(option === true || option === undefined ? {} : option) };
}

/** The delay before reconnect attempt `attempt` (0 for the first after a drop), in ms. */
export function backoffDelayMs(r: Required<ReconnectOptions>, attempt: number, random: () => number = Math.random): number {
  return Math.min(r.maxDelayMs, r.initialDelayMs * 2 ** attempt) * (0.5 + random() / 2);
}
