import { DEFAULT_QUEUE_LIMITS, type SendQueueLimits } from './queue.ts';
import { parseList } from '../../core/validate.ts';

/** Tunables of the WebSocket endpoints. Each has a default; two can come from the environment. */
export interface WsOptions {
  /** How long an unauthenticated socket may wait for its `auth` message, in ms; default 5000 (env `DIRECTOR_WS_AUTH_GRACE_MS`). */
  authGraceMs?: number;
  /**
   * Origins (`https://ui.example.com`) browsers may connect from. Default: env
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

export const WS_ENV = { authGraceMs: 'DIRECTOR_WS_AUTH_GRACE_MS', allowedOrigins: 'DIRECTOR_ALLOWED_ORIGINS' } as const;

/**
 * Options win over the environment, the environment over defaults. A bad value throws with
 * the name of the option or variable, so the server refuses to start rather than guess.
 */
export function resolveWsOptions(opts: WsOptions, env: NodeJS.ProcessEnv = process.env): ResolvedWsOptions {
  const graceEnv = env[WS_ENV.authGraceMs];
  const authGraceMs = opts.authGraceMs ?? (graceEnv !== undefined && graceEnv !== '' ? Number(graceEnv) : 5000);
  checkInt(opts.authGraceMs !== undefined ? 'authGraceMs' : WS_ENV.authGraceMs, authGraceMs, 1, 600_000);
  const originsEnv = env[WS_ENV.allowedOrigins] ?? '';
  const rawOrigins = opts.allowedOrigins ?? parseList(originsEnv);
  const allowedOrigins = rawOrigins.map((o) => normalizeOrigin(o, opts.allowedOrigins ? 'allowedOrigins' : WS_ENV.allowedOrigins));
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

/**
 * `scheme://host[:port]` in the form browsers send. Wildcards are refused: an allowed origin
 * is a site the operator trusts, named exactly.
 */
export function normalizeOrigin(raw: string, name: string): string {
  if (raw.includes('*')) throw new Error(`${name}: wildcards are not allowed (got ${JSON.stringify(raw)}); list each origin`);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new Error(`${name}: ${JSON.stringify(raw)} is not an origin like https://ui.example.com`);
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.pathname !== '/' || url.search || url.hash || url.username) {
    throw new Error(`${name}: ${JSON.stringify(raw)} is not an origin like https://ui.example.com`);
  }
  return url.origin;
}
