/**
 * The WebSocket wire protocols, declared once: what clients may send (validated on receipt),
 * what the server sends, and the close codes that say why a socket ended.
 *
 * Both endpoints authenticate the same way: an `Authorization: Bearer ...` header at the upgrade
 * (plus `X-Director-Workspace`), or else a first message `{type: 'auth', token, workspace?}`
 * within the grace period. Credentials are re-checked at every heartbeat: a socket whose token
 * was revoked or expired, or whose user was disabled, is closed with 4003. To outlive a token,
 * send `auth` again with a fresh one (same user and workspace) before it expires. Every JSON
 * frame is one object with a `type`.
 *
 * `/v1/ws` (the hub), client → server: `auth`, `subscribe {channel, after?, batch?}`,
 * `unsubscribe {channel}`, `ping`. Server → client: `authenticated {principal}`,
 * `subscribed {channel, cursor}`, `unsubscribed {channel}`, channel messages
 * `{type, data, cursor}`, `error {code, message, details?}`, `pong`. A subscription made with
 * `batch: true` receives its channel messages grouped instead, as
 * `batch {channel, items: [{type, data, cursor} ...]}` (in cursor order; at most
 * {@link BATCH_MAX_ITEMS} per frame): one frame per burst rather than one per message, for
 * consumers of busy streams.
 *
 * `/v1/sandboxes/:id/terminal`: terminal bytes travel as binary frames in both directions;
 * control is JSON text: client → server `auth`, `resize {cols, rows}`, `ping`; server → client
 * `authenticated`, `error`, `pong` and, when the process ends, `exit {exitCode}` followed by
 * close 1000.
 */
import { Type, type Static, type TSchema } from 'typebox';
import type { ErrorCode } from '../../core/errors.ts';
import { firstIssue, schemaError } from '../../core/validate.ts';
import type { Principal, Role } from '../auth/types.ts';

/** Close codes: the standard ones we use and ours, in 4000–4999. */
export const CLOSE = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  INTERNAL: 1011,
  /** No credentials within the grace period. */
  AUTH_TIMEOUT: 4001,
  /** Bad credentials, a message before authentication, a missing scope, or a policy refusal. */
  FORBIDDEN: 4003,
  /** The resource does not exist (or belongs to another workspace). */
  NOT_FOUND: 4004,
  /** The client did not read fast enough; its queue overflowed. */
  TOO_SLOW: 4008,
  /** The resource is in the wrong state (e.g. the sandbox is not running). */
  CONFLICT: 4009,
} as const;

/** Close reasons sent with the codes above (at most 123 bytes by the WebSocket spec). */
export const CLOSE_REASON = {
  authTimeout: 'auth timeout',
  authFailed: 'authentication failed',
  authRequired: 'authentication required',
  authExpired: 'authentication no longer valid',
  tooSlow: 'too slow',
  tooManyMessages: 'too many messages in flight',
  shuttingDown: 'server shutting down',
} as const;

/** Error codes of `{type: 'error'}` messages: the API's registry plus the socket-only ones. */
export type WsErrorCode = ErrorCode | 'SLOW_CONSUMER';

const Token = Type.String({ minLength: 1, maxLength: 4096 });
const Workspace = Type.String({ minLength: 1, maxLength: 128 });
/** Channel names: lower-case words (`security`, `sandboxes`, later `sessions`, `workflows`). */
export const ChannelName = Type.String({ minLength: 1, maxLength: 64, pattern: '^[a-z][a-z0-9_-]*$' });

export const AuthMessage = Type.Object(
  { type: Type.Literal('auth'), token: Token, workspace: Type.Optional(Workspace) },
  { additionalProperties: false },
);
export const SubscribeMessage = Type.Object(
  {
    type: Type.Literal('subscribe'),
    channel: ChannelName,
    /** Resume: replay everything after this cursor (a `cursor` the server sent), then go live. */
    after: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })),
    /** Receive channel messages grouped in `batch` frames (what arrived together goes in one frame). */
    batch: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export const UnsubscribeMessage = Type.Object({ type: Type.Literal('unsubscribe'), channel: ChannelName }, { additionalProperties: false });
export const PingMessage = Type.Object({ type: Type.Literal('ping') }, { additionalProperties: false });
/** Terminal size in character cells; bounds keep a client from asking the engine for absurd sizes. */
export const TERMINAL_MAX_CELLS = 1000;
export const ResizeMessage = Type.Object(
  {
    type: Type.Literal('resize'),
    cols: Type.Integer({ minimum: 1, maximum: TERMINAL_MAX_CELLS }),
    rows: Type.Integer({ minimum: 1, maximum: TERMINAL_MAX_CELLS }),
  },
  { additionalProperties: false },
);

/** What a hub client may send, by `type`. */
export const HUB_MESSAGES = { auth: AuthMessage, subscribe: SubscribeMessage, unsubscribe: UnsubscribeMessage, ping: PingMessage };
/** What a terminal client may send as JSON text (input itself is binary). */
export const TERMINAL_MESSAGES = { auth: AuthMessage, resize: ResizeMessage, ping: PingMessage };

type MessageOf<M extends Record<string, TSchema>> = { [K in keyof M]: Static<M[K]> }[keyof M];
export type HubClientMessage = MessageOf<typeof HUB_MESSAGES>;
export type TerminalClientMessage = MessageOf<typeof TERMINAL_MESSAGES>;
export type AuthClientMessage = Static<typeof AuthMessage>;

export interface ProtocolError {
  type: 'error';
  code: WsErrorCode;
  message: string;
  details?: Record<string, unknown>;
}

export type Parsed<T> = { ok: true; message: T } | { ok: false; error: ProtocolError };

/**
 * Parses one text frame against a table of message schemas keyed by `type`: the discriminator
 * is checked first so errors name the real problem (an unknown type, or the field at fault).
 */
export function parseMessage<M extends Record<string, TSchema>>(schemas: M, text: string): Parsed<MessageOf<M>> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return invalid('message', 'not valid JSON');
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return invalid('message', 'must be a JSON object');
  const type = (value as { type?: unknown }).type;
  if (typeof type !== 'string') return invalid('type', 'is required and must be a string');
  if (!Object.hasOwn(schemas, type)) {
    return invalid('type', `unknown message type (expected one of: ${Object.keys(schemas).join(', ')})`);
  }
  const schema = schemas[type]!;
  const issue = firstIssue(schema, value);
  if (issue) {
    const err = schemaError(issue);
    return { ok: false, error: { type: 'error', code: 'VALIDATION_ERROR', message: err.message, details: { ...err.details } } };
  }
  return { ok: true, message: value as MessageOf<M> };
}

const invalid = (field: string, issue: string): { ok: false; error: ProtocolError } => ({
  ok: false,
  error: { type: 'error', code: 'VALIDATION_ERROR', message: `Invalid ${field}: ${issue}`, details: { field, issue } },
});

export const errorMessage = (code: WsErrorCode, message: string, details?: Record<string, unknown>): ProtocolError =>
  details ? { type: 'error', code, message, details } : { type: 'error', code, message };

export interface AuthenticatedMessage {
  type: 'authenticated';
  principal: { userId: string; workspace: string; role: Role };
}

export const authenticatedMessage = (p: Principal): AuthenticatedMessage => ({
  type: 'authenticated',
  principal: { userId: p.userId, workspace: p.workspace, role: p.role },
});

/** A channel message: `type` is the channel's (`security_event`, `sandbox_event` ...). */
export interface ChannelMessage {
  type: string;
  data: unknown;
  /** Position in the channel's stream; pass it back as `after` to resume. */
  cursor: number;
}

/** Channel messages per `batch` frame at most; a bigger burst goes out in several frames. */
export const BATCH_MAX_ITEMS = 512;

/** Several channel messages of one subscription in one frame (subscriptions made with `batch: true`). */
export interface BatchMessage {
  type: 'batch';
  channel: string;
  items: ChannelMessage[];
}

export type HubServerMessage =
  | AuthenticatedMessage
  | { type: 'subscribed'; channel: string; cursor: number }
  | { type: 'unsubscribed'; channel: string }
  | { type: 'pong' }
  | ProtocolError
  | ChannelMessage
  | BatchMessage;

export type TerminalServerMessage = AuthenticatedMessage | { type: 'exit'; exitCode: number } | { type: 'pong' } | ProtocolError;
