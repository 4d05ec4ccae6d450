import type { FastifyBaseLogger, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import { isDirectorError } from '../../core/errors.ts';
import type { EventSink } from '../../runtime/events.ts';
import type { AuthService } from '../auth/service.ts';
import { actorOf, type Principal, type Scope } from '../auth/types.ts';
import { CLOSE, CLOSE_REASON, type AuthClientMessage } from './protocol.ts';
import { closeSocket } from './socket.ts';

/** What a socket authenticated with, kept to re-check it while the socket lives. */
export interface Credential {
  authorization: string;
  workspace: string | undefined;
}

export interface SocketAuthContext {
  ws: WebSocket;
  auth: AuthService;
  events: EventSink;
  logger: FastifyBaseLogger;
  /** Route pattern, for events (`/v1/ws`). */
  route: string;
  ip: string;
}

/** The credential an upgrade request carries (`Authorization` and `X-Director-Workspace`), if any. */
export function upgradeCredential(req: FastifyRequest): Credential | null {
  const authorization = req.headers.authorization;
  if (authorization === undefined || authorization === '') return null;
  const ws = req.headers['x-director-workspace'];
  return { authorization, workspace: typeof ws === 'string' && ws !== '' ? ws : undefined };
}

export const credentialOf = (m: AuthClientMessage): Credential => ({ authorization: `Bearer ${m.token}`, workspace: m.workspace });

/**
 * Authentication of one socket: the grace timer, verifying a credential (closing 4003 when it
 * fails), renewing it with a later `auth` message, and re-checking it periodically so revoked
 * tokens, disabled users and demotions reach sockets that are already open.
 */
export class SocketAuth {
  principal: Principal | null = null;
  readonly #ctx: SocketAuthContext;
  #credential: Credential | null = null;
  #timer: NodeJS.Timeout | null = null;

  constructor(ctx: SocketAuthContext) {
    this.#ctx = ctx;
  }

  /** Closes the socket with 4001 unless it authenticates within `graceMs`. */
  armGrace(graceMs: number): void {
    this.#timer = setTimeout(() => {
      this.#timer = null;
      if (!this.principal) closeSocket(this.#ctx.ws, CLOSE.AUTH_TIMEOUT, CLOSE_REASON.authTimeout);
    }, graceMs);
  }

  /** Verifies `cred`; on failure records `auth_failed`, closes 4003 and returns null. */
  async login(cred: Credential): Promise<Principal | null> {
    this.#disarm();
    const principal = await this.#verify(cred);
    if (!principal) {
      closeSocket(this.#ctx.ws, CLOSE.FORBIDDEN, CLOSE_REASON.authFailed);
      return null;
    }
    this.#credential = cred;
    this.principal = principal;
    return principal;
  }

  /**
   * A later `auth` message swaps in a fresh token (say, before the old one expires). It must
   * name the same user and workspace; anything else closes the socket with 4003.
   */
  async renew(cred: Credential): Promise<Principal | null> {
    const before = this.principal;
    const principal = await this.#verify(cred);
    if (!principal || !before || principal.userId !== before.userId || principal.workspace !== before.workspace) {
      this.principal = null;
      closeSocket(this.#ctx.ws, CLOSE.FORBIDDEN, CLOSE_REASON.authFailed);
      return null;
    }
    this.#credential = cred;
    this.principal = principal;
    return principal;
  }

  /** Re-checks the credential; closes 4003 and returns null when it no longer holds. */
  async revalidate(): Promise<Principal | null> {
    if (!this.#credential || !this.principal) return this.principal;
    // Not recorded as auth_failed: a token expiring under an open socket is routine.
    const principal = await this.#verify(this.#credential, false);
    if (!principal || principal.workspace !== this.principal.workspace) {
      this.principal = null;
      closeSocket(this.#ctx.ws, CLOSE.FORBIDDEN, CLOSE_REASON.authExpired);
      return null;
    }
    this.principal = principal;
    return principal;
  }

  /** Whether the principal holds `scope`; a refusal is recorded as `scope_denied`. */
  /** Whether the principal has `scope`, without recording a refusal (for what the client did not ask for). */
  allows(scope: Scope): boolean {
    return this.principal?.scopes.has(scope) ?? false;
  }

  permits(scope: Scope, details: Record<string, unknown> = {}): boolean {
    const p = this.principal;
    if (!p) return false;
    try {
      this.#ctx.auth.requireScope(p, scope);
      return true;
    } catch {
      this.#ctx.events.emit({
        type: 'scope_denied',
        severity: 'medium',
        workspace: p.workspace,
        actor: actorOf(p),
        details: { scope, route: this.#ctx.route, transport: 'websocket', ...details },
      });
      return false;
    }
  }

  dispose(): void {
    this.#disarm();
  }

  #disarm(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  async #verify(cred: Credential, record = true): Promise<Principal | null> {
    const { auth, events, route, ip, logger } = this.#ctx;
    try {
      return await auth.authenticate(cred.authorization, cred.workspace);
    } catch (err) {
      if (!isDirectorError(err)) {
        logger.error({ err }, 'websocket authentication failed unexpectedly');
        return null;
      }
      const reason = err.details?.reason ?? null;
      if (record)
        events.emit({
          type: err.code === 'AUTHENTICATION_ERROR' ? 'auth_failed' : 'auth_denied',
          severity: 'medium',
          actor: `ip:${ip}`,
          details: { route, method: 'GET', transport: 'websocket', reason },
        });
      return null;
    }
  }
}
