/** Time source injected everywhere time matters, so tests can drive it. */
export interface Clock {
  nowMs(): number;
}
export const systemClock: Clock = { nowMs: () => Date.now() };
export const isoTime = (ms: number): string => new Date(ms).toISOString();
