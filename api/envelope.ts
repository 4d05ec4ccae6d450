import { isoTime } from '../runtime/clock.ts';

/** The Director Protocol response envelope. */
export const API_VERSION = '1.0.0';

export interface Meta {
  timestamp: string;
  requestId: string;
  version?: string;
  retryAfter?: number;
}

export const ok = <T>(data: T, requestId: string, extra: Record<string, unknown> = {}) => ({
  success: true as const,
  data,
  metadata: { timestamp: isoTime(Date.now()), requestId, version: API_VERSION, ...extra },
});

export const fail = (code: string, message: string, details: Record<string, unknown> | undefined, requestId: string, retryAfter?: number) => ({
  success: false as const,
  error: { code, message, details: details ?? {} },
  metadata: { timestamp: isoTime(Date.now()), requestId, ...(retryAfter === undefined ? {} : { retryAfter }) },
});
