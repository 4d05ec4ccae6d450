import { DirectorError, type ErrorDetails } from '../../core/errors.ts';

/**
 * Why authentication failed, for logs and `details.reason`. The message is the same for all
 * of them so a caller cannot probe which check refused it; never includes the credential.
 */
export type AuthFailureReason =
  | 'missing_credentials'
  | 'malformed_header'
  | 'malformed_token'
  | 'algorithm_not_allowed'
  | 'bad_signature'
  | 'token_expired'
  | 'wrong_audience'
  | 'wrong_issuer'
  | 'invalid_claims'
  | 'token_revoked'
  | 'invalid_api_key'
  | 'unknown_user'
  | 'user_disabled'
  | 'invalid_credentials'
  | 'unknown_refresh_token'
  | 'refresh_token_expired'
  | 'refresh_token_reused';

export const AUTH_FAILED_MESSAGE = 'Authentication required: missing or invalid credentials';

/** A 401 with a stable message and a machine-readable reason. */
export const authFailure = (reason: AuthFailureReason): DirectorError =>
  new DirectorError('AUTHENTICATION_ERROR', AUTH_FAILED_MESSAGE, { reason });

/** A 403: the caller is known but may not do this. */
export const forbidden = (message: string, details?: ErrorDetails): DirectorError =>
  new DirectorError('AUTHORIZATION_ERROR', message, details);

export const notMember = (): DirectorError => forbidden('not a member of this workspace', { reason: 'not_member' });

/** The 403 for a principal that lacks the scope a route needs. */
export const missingScope = (scope: string): DirectorError =>
  forbidden(`missing required scope ${scope}`, { scope, reason: 'missing_scope' });
