import type { Config } from '../../runtime/config.ts';
import { DEFAULT_QUEUE_LIMITS, type SendQueueLimits } from './queue.ts';
import { normalizeOrigin, parseList } from '../../core/validate.ts';

/** Tunables of the WebSocket endpoints. Each has a default; two come from the operator's settings. */
export interface WsOptions {
  /** How long an unauthenticated socket may wait for its `auth` message, in ms; default the setting `DIRECTOR_WS_AUTH_GRACE_MS` (5000). */
  authGraceMs?: number;
  /**
   * Origins (`https://ui.example.com`) browsers may connect from. Default: the setting
   * `DIRECTOR_ALLOWED_ORIGINS`, comma-separated; empty means only the server's own host.
   * Clients that send no `Origin` (not browsers) are not affected.
   */
  allowedOrigins?: string[];
  /** Ping interval in ms; a socket that has not answered the previous ping is terminated. Default 30000. */
  heartbeatMs?: number;
  /** Per-connection send queue limits of the hub (see {@link SendQueueLimits}). */
  queue?: Partial<SendQueueLimits>;
  /** Largest frame a client may send, in bytes; default 256 KiB. */
  maxPayloadBytes?: number;
  /** Client messages one socket may have waiting before reading pauses; default 64 (16 times that closes it). */
  maxPendingMessages?: number;
}

export interface ResolvedWsOptions {
  authGraceMs: number;
  allowedOrigins: string[];
  heartbeatMs: number;
  queue: SendQueueLimits;
  maxPayloadBytes: number;
  maxPendingMessages: number;
}

/** The operator's WebSocket settings (runtime/config.ts, validated at boot). */
export type WsSettings = Partial<Pick<Config, 'wsAuthGraceMs' | 'allowedOrigins'>>;

/**
 * Options win over the operator's settings, settings over defaults. A bad option throws with
 * its name, so the server refuses to start rather than guess (settings were checked at boot).
 */
export function resolveWsOptions(opts: WsOptions, settings: WsSettings = {}): ResolvedWsOptions {
  const authGraceMs = opts.authGraceMs ?? settings.wsAuthGraceMs ?? 5000;
  checkInt(opts.authGraceMs !== undefined ? 'authGraceMs' : 'DIRECTOR_WS_AUTH_GRACE_MS', authGraceMs, 1, 600_000);
  const rawOrigins = opts.allowedOrigins ?? parseList(settings.allowedOrigins ?? '');
  const allowedOrigins = rawOrigins.map((o) => normalizeOrigin(o, opts.allowedOrigins ? 'allowedOrigins' : 'DIRECTOR_ALLOWED_ORIGINS'));
  const heartbeatMs = opts.heartbeatMs ?? 30_000;
  checkInt('heartbeatMs', heartbeatMs, 100, 3_600_000);
  const queue = { ...DEFAULT_QUEUE_LIMITS, ...opts.queue };
  checkInt('queue.maxMessages', queue.maxMessages, 4, 1_000_000);
  checkInt('queue.maxBytes', queue.maxBytes, 1024, 1024 ** 3);
  checkInt('queue.highWaterBytes', queue.highWaterBytes, 1024, queue.maxBytes);
  const maxPayloadBytes = opts.maxPayloadBytes ?? 256 * 1024;
  checkInt('maxPayloadBytes', maxPayloadBytes, 1024, 64 * 1024 * 1024);
  const maxPendingMessages = opts.maxPendingMessages ?? 64;
  checkInt('maxPendingMessages', maxPendingMessages, 1, 100_000);
  return { authGraceMs, allowedOrigins, heartbeatMs, queue, maxPayloadBytes, maxPendingMessages };
}

function checkInt(name: string, v: number, min: number, max: number): void {
  if (!Number.isInteger(v) || v < min || v > max) throw new Error(`${name} must be an integer from ${min} to ${max}`);
}
