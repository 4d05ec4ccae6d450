/**
 * Typed errors. Everything the API refuses arrives in the Director Protocol's error envelope
 * `{success: false, error: {code, message, details}, metadata: {requestId, retryAfter?}}`; the
 * SDK throws it as a {@link DirectorApiError} (a subclass per status family) carrying that code,
 * so callers branch on `err.code` or `instanceof NotFoundError`, never on message text.
 * Failures that never reached the API (refused connection, dropped socket) are
 * {@link ConnectionError}s with code `CONNECTION_ERROR`.
 */

/** The API's error codes (its one registry), plus the WebSocket-only `SLOW_CONSUMER`. */
export const API_ERROR_CODES = [
  'VALIDATION_ERROR',
  'AUTHENTICATION_ERROR',
  'AUTHORIZATION_ERROR',
  'NOT_FOUND',
  'METHOD_NOT_ALLOWED',
  'REQUEST_TIMEOUT',
  'CONFLICT',
  'PAYLOAD_TOO_LARGE',
  'UNSUPPORTED_MEDIA_TYPE',
  'UNPROCESSABLE',
  'HEADERS_TOO_LARGE',
  'RATE_LIMIT_EXCEEDED',
  'INTERNAL_ERROR',
  'SERVICE_UNAVAILABLE',
  'SLOW_CONSUMER',
] as const;

export type ApiErrorCode = (typeof API_ERROR_CODES)[number];
/** A code from the API (a newer server may send one this SDK does not know yet) or the SDK's own. */
export type ErrorCode = ApiErrorCode | 'CONNECTION_ERROR' | 'PROTOCOL_ERROR' | (string & {});

export interface ErrorInit {
  code: ErrorCode;
  message: string;
  /** HTTP status; 0 when the failure was not an HTTP answer (a socket, the network). */
  status?: number;
  details?: Record<string, unknown>;
  requestId?: string | null;
  cause?: unknown;
}

export class DirectorApiError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** The envelope's `details` (`field` and `issue` for validation errors). */
  readonly details: Record<string, unknown>;
  /** The server's request id (`req_...`), to find the request in its logs and audit. */
  readonly requestId: string | null;

  constructor(init: ErrorInit) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = new.target.name;
    this.code = init.code;
    this.status = init.status ?? 0;
    this.details = init.details ?? {};
    this.requestId = init.requestId ?? null;
  }
}

export class ValidationError extends DirectorApiError {
  /** The request field at fault (`securityPolicy.readOnlyRoot`), when the API named one. */
  get field(): string | undefined {
    return typeof this.details.field === 'string' ? this.details.field : undefined;
  }
}
export class AuthenticationError extends DirectorApiError {}
export class AuthorizationError extends DirectorApiError {}
export class NotFoundError extends DirectorApiError {}
export class ConflictError extends DirectorApiError {}
export class RateLimitError extends DirectorApiError {
  /** Seconds to wait before trying again, as the API advised. */
  readonly retryAfterS: number | null;
  constructor(init: ErrorInit & { retryAfterS?: number | null }) {
    super(init);
    this.retryAfterS = init.retryAfterS ?? null;
  }
}
export class ServerError extends DirectorApiError {}
/** The API could not be reached, or a connection to it dropped. */
export class ConnectionError extends DirectorApiError {}

const CLASS_OF: Record<string, new (init: ErrorInit) => DirectorApiError> = {
  VALIDATION_ERROR: ValidationError,
  AUTHENTICATION_ERROR: AuthenticationError,
  AUTHORIZATION_ERROR: AuthorizationError,
  NOT_FOUND: NotFoundError,
  CONFLICT: ConflictError,
  INTERNAL_ERROR: ServerError,
  SERVICE_UNAVAILABLE: ServerError,
  CONNECTION_ERROR: ConnectionError,
};

/** The error for a code, as its most specific class. */
export function apiError(init: ErrorInit & { retryAfterS?: number | null }): DirectorApiError {
  if (init.code === 'RATE_LIMIT_EXCEEDED') return new RateLimitError(init);
  const Class = CLASS_OF[init.code] ?? (init.status !== undefined && init.status >= 500 ? ServerError : DirectorApiError);
  return new Class(init);
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The error an HTTP answer carries: its envelope when it has one, else a description of the status. */
export function errorFromResponse(status: number, body: unknown, headers?: Headers): DirectorApiError {
  const requestId = headers?.get('x-request-id') ?? null;
  if (isObj(body) && isObj(body.error) && typeof body.error.code === 'string') {
    const meta = isObj(body.metadata) ? body.metadata : {};
    const retry = typeof meta.retryAfter === 'number' ? meta.retryAfter : Number(headers?.get('retry-after') ?? Number.NaN);
    return apiError({
      code: body.error.code,
      message: typeof body.error.message === 'string' ? body.error.message : body.error.code,
      status,
      details: isObj(body.error.details) ? body.error.details : {},
      requestId: typeof meta.requestId === 'string' ? meta.requestId : requestId,
      retryAfterS: Number.isFinite(retry) ? retry : null,
    });
  }
  const text = typeof body === 'string' && body.trim() ? `: ${body.trim().slice(0, 200)}` : '';
  return apiError({
    code: status >= 500 ? 'INTERNAL_ERROR' : 'PROTOCOL_ERROR',
    message: `HTTP ${status} without an error envelope${text}`,
    status,
    requestId,
  });
}

/** Reads a failed response's body and turns it into the error it carries. */
export async function errorOf(res: Response): Promise<DirectorApiError> {
  const text = await res.text().catch(() => '');
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: described by status
  }
  return errorFromResponse(res.status, body, res.headers);
}

/** A failure to reach `url` (fetch's TypeError, a refused connection), with the system's reason when it has one. */
export function connectionError(url: string, cause: unknown): ConnectionError {
  const inner = isObj(cause) && 'cause' in cause ? (cause as { cause?: unknown }).cause : undefined;
  const reason =
    (isObj(inner) && typeof inner.code === 'string' ? inner.code : null) ?? (cause instanceof Error ? cause.message : String(cause));
  return new ConnectionError({ code: 'CONNECTION_ERROR', message: `cannot reach ${url}: ${reason}`, cause });
}
