/**
 * The one registry of error codes. Every error Director raises carries a stable code that
 * maps to exactly one HTTP status; the API's error handler renders them in the Director Protocol's
 * envelope. Codes are the Director Protocol's, plus CONFLICT/PAYLOAD_TOO_LARGE/UNPROCESSABLE and
 * the two the HTTP parser raises before any route runs (REQUEST_TIMEOUT, HEADERS_TOO_LARGE).
 */
export const ERROR_STATUS = {
  VALIDATION_ERROR: 400,
  AUTHENTICATION_ERROR: 401,
  AUTHORIZATION_ERROR: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  REQUEST_TIMEOUT: 408,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  UNPROCESSABLE: 422,
  HEADERS_TOO_LARGE: 431,
  RATE_LIMIT_EXCEEDED: 429,
  INTERNAL_ERROR: 500,
  SERVICE_UNAVAILABLE: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export interface ErrorDetails {
  /** The request field at fault, as a JSON-pointer-like path (`securityPolicy.readOnlyRoot`). */
  field?: string;
  issue?: string;
  [key: string]: unknown;
}

export class DirectorError extends Error {
  readonly code: ErrorCode;
  readonly details: ErrorDetails | undefined;
  constructor(code: ErrorCode, message: string, details?: ErrorDetails, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DirectorError';
    this.code = code;
    this.details = details;
  }
  get status(): number {
    return ERROR_STATUS[this.code];
  }
}

export const validationError = (field: string, issue: string, extra?: Record<string, unknown>): DirectorError =>
  new DirectorError('VALIDATION_ERROR', `Invalid ${field}: ${issue}`, { field, issue, ...extra });

export const notFound = (kind: string, id: string): DirectorError =>
  new DirectorError('NOT_FOUND', `${kind} ${id} not found`, { resource: kind, id });

export const conflict = (message: string, details?: ErrorDetails): DirectorError => new DirectorError('CONFLICT', message, details);

export const unavailable = (message: string, cause?: unknown): DirectorError =>
  new DirectorError('SERVICE_UNAVAILABLE', message, undefined, { cause });

export const isDirectorError = (err: unknown): err is DirectorError => err instanceof DirectorError;
