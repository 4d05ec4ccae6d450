/**
 * director-sdk: a typed client for the Director API (types generated from its OpenAPI document).
 * Runs wherever `fetch` and `WebSocket` exist (Node 22+, browsers).
 */
export { DirectorClient } from './client.ts';
export { Transport, unwrap, type ClientOptions, type RawRequest, type WebSocketFactory, type WebSocketLike } from './transport.ts';
export {
  API_ERROR_CODES,
  AuthenticationError,
  AuthorizationError,
  ConflictError,
  ConnectionError,
  DirectorApiError,
  NotFoundError,
  RateLimitError,
  ServerError,
  ValidationError,
  type ApiErrorCode,
  type ErrorCode,
} from './errors.ts';
export type { ReconnectOptions } from './backoff.ts';
export { Execution, type ExecOptions, type ExecOutput } from './exec.ts';
export { Terminal, type TerminalOptions } from './terminal.ts';
export { EventSubscription, type ChannelMessage, type StatusChange, type SubscribeOptions, type SubscriptionState } from './events.ts';
export { Sandbox, SandboxFiles, SandboxRef, Sandboxes } from './resources/sandboxes.ts';
export type { CreateOptions, RequestOptions } from './resources/request.ts';
export { Network, NetworkRef, Networks } from './resources/networks.ts';
export { Events } from './resources/events.ts';
export { Audit, Security } from './resources/security.ts';
export { Auth } from './resources/auth.ts';
export { Sessions } from './resources/sessions.ts';
export { Workflows } from './resources/workflows.ts';
export { APPROVAL_STATES, ENDED_RUN_STATES, RUN_STATES, runHasEnded, SANDBOX_STATES, SESSION_STATES, SEVERITIES } from './states.ts';
export { Agents } from './resources/agents.ts';
export { Approvals, Chat } from './resources/chat.ts';
export { follow, type FollowedEvent, type FollowOptions, type FollowSource } from './follow.ts';
export { parseSse, type SseEvent } from './sse.ts';
export type * from './types.ts';
