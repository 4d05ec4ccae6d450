import { isoTime } from '../core/clock.ts';

/** The Director Protocol response envelope. */
export const API_VERSION = '1.0.0';

export interface Meta {
  timestamp: string;
  requestId: string;
  version?: string;
  retryAfter?: number;
}

// Many responses share a millisecond under load: format each millisecond once.
let stampMs = Number.NaN;
let stamp = '';
/** The current time in ISO 8601, as envelopes carry it. */
export function timestampNow(): string {
  const now = Date.now();
  if (now !== stampMs) {
    stampMs = now;
    stamp = isoTime(now);
  }
  return stamp;
}

export const ok = <T>(data: T, requestId: string) => ({
  success: true as const,
  data,
  metadata: { timestamp: timestampNow(), requestId, version: API_VERSION },
});

export const fail = (
  code: string,
  message: string,
  details: Record<string, unknown> | undefined,
  requestId: string,
  retryAfter?: number,
) => ({
  success: false as const,
  error: { code, message, details: details ?? {} },
  metadata: { timestamp: timestampNow(), requestId, ...(retryAfter === undefined ? {} : { retryAfter }) },
});
