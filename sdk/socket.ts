/**
 * What the API's WebSocket close codes and error messages mean, as SDK errors (the protocol is
 * declared in the server's api/ws/protocol.ts: close codes 4000-4999 say why a socket ended).
 */
import { apiError, ConnectionError, type DirectorApiError } from './errors.ts';

export const CLOSE = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  ABNORMAL: 1006,
  INTERNAL: 1011,
  AUTH_TIMEOUT: 4001,
  FORBIDDEN: 4003,
  NOT_FOUND: 4004,
  TOO_SLOW: 4008,
  CONFLICT: 4009,
} as const;

/** An `{type: 'error'}` message as the API sends it. */
export interface ErrorMessage {
  type: 'error';
  code: string;
  message: string;
  details?: Record<string, unknown>;
}

export const isErrorMessage = (m: { type?: unknown }): m is ErrorMessage => m.type === 'error';

export const errorOfMessage = (m: ErrorMessage): DirectorApiError =>
  apiError({ code: m.code, message: m.message, ...(m.details ? { details: m.details } : {}) });

/** Why a socket closed, as an error: the last error message the server sent when it sent one, else the close code's meaning. */
export function errorOfClose(code: number, reason: string, last: ErrorMessage | null): DirectorApiError {
  if (last) return errorOfMessage(last);
  const why = reason ? `: ${reason}` : '';
  switch (code) {
    case CLOSE.AUTH_TIMEOUT:
      return apiError({ code: 'AUTHENTICATION_ERROR', message: `the socket was not authenticated in time${why}` });
    case CLOSE.FORBIDDEN:
      return apiError({
        code: /auth/i.test(reason) ? 'AUTHENTICATION_ERROR' : 'AUTHORIZATION_ERROR',
        message: `the server refused the socket${why}`,
      });
    case CLOSE.NOT_FOUND:
      return apiError({ code: 'NOT_FOUND', message: `not found${why}` });
    case CLOSE.TOO_SLOW:
      return apiError({ code: 'SLOW_CONSUMER', message: `the client did not read fast enough${why}` });
    case CLOSE.CONFLICT:
      return apiError({ code: 'CONFLICT', message: `the resource is in the wrong state${why}` });
    case CLOSE.INTERNAL:
      return apiError({ code: 'INTERNAL_ERROR', message: `the server failed${why}` });
    case CLOSE.GOING_AWAY:
      return apiError({ code: 'SERVICE_UNAVAILABLE', message: `the server is going away${why}` });
    default:
      return new ConnectionError({ code: 'CONNECTION_ERROR', message: `the connection closed (${code})${why}` });
  }
}

/** Frame payloads as bytes (`binaryType = 'arraybuffer'`; Node may hand a Buffer). */
export function bytesOf(data: unknown): Uint8Array | null {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return null;
}
