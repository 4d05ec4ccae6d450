import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { actorOf } from '../auth/types.ts';
import { appendRouteHook, routeConfigOf } from '../context.ts';
import type { Outcome } from './chain.ts';
import type { AuditInput, AuditLog } from './log.ts';

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const LOGIN_ROUTE = '/v1/auth/login';
const USER_AGENT_MAX_CHARS = 200;
// Ids from params or responses: our prefixed ids, or at worst a short token-free word.
const TARGET_FORMAT = /^[A-Za-z0-9_-]{1,64}$/;

/** `success` below 400; `denied` for 401/403; `error` otherwise. */
export function outcomeOf(status: number): Outcome {
  if (status < 400) return 'success';
  return status === 401 || status === 403 ? 'denied' : 'error';
}

/**
 * Which responses are audited: every mutating request under `/v1` (whatever its outcome), and
 * every authentication or authorization refusal on any route. A 429 to an anonymous caller is
 * left out: it is the limiter shedding a flood that already left its 401s in the log, and
 * recording each one would let anyone grow the table without bound.
 */
export function shouldAudit(method: string, path: string, status: number, authenticated: boolean): boolean {
  if (status === 429 && !authenticated) return false;
  if (status === 401 || status === 403) return true;
  return MUTATING.has(method) && path.startsWith('/v1/');
}

const targetOf = (v: unknown): string | null => (typeof v === 'string' && TARGET_FORMAT.test(v) ? v : null);

interface Captured {
  target: string | null;
  workspace: string | null;
}

/** What the audit takes from a response body: its `data.id`, and `data.workspace` (a login's). Nothing else. */
function capture(payload: unknown): Captured {
  const data = (payload as { data?: unknown } | null)?.data;
  if (!data || typeof data !== 'object') return { target: null, workspace: null };
  const d = data as { id?: unknown; workspace?: unknown };
  return { target: targetOf(d.id), workspace: targetOf(d.workspace) };
}

/**
 * Builds the entry for one finished request. Never reads bodies, headers with credentials or
 * query strings: only the route template, the `id` path param, the principal, and for a
 * login the username (so failed logins say whom they tried).
 */
export function entryFor(req: FastifyRequest, reply: FastifyReply, captured: Captured | undefined): AuditInput | null {
  const route = routeConfigOf(req).url;
  const path = route ?? req.url.split('?')[0] ?? '';
  const status = reply.statusCode;
  const p = req.principal;
  if (!shouldAudit(req.method, path, status, p !== null)) return null;
  let username = p?.username ?? null;
  if (!p && route === LOGIN_ROUTE) {
    const u = (req.body as { username?: unknown } | undefined)?.username;
    username = typeof u === 'string' ? u.slice(0, 64) : null;
  }
  const ua = req.headers['user-agent'];
  return {
    actor: p ? actorOf(p) : null,
    username,
    // A login has no principal yet; its response names the workspace it opened.
    workspace: p?.workspace ?? (status < 400 ? (captured?.workspace ?? null) : null),
    action: `${req.method} ${route ?? '(no route)'}`,
    target: targetOf((req.params as { id?: unknown } | undefined)?.id) ?? captured?.target ?? null,
    outcome: outcomeOf(status),
    status,
    requestId: req.id,
    source: req.ip,
    userAgent: typeof ua === 'string' ? ua.slice(0, USER_AGENT_MAX_CHARS) : null,
  };
}

/**
 * Installs the audit: a route-level `preSerialization` hook on mutating routes (declared after
 * this call) that takes the target id from the response body; returns `record`, which the app's
 * single `onResponse` hook calls for every finished request: every route, the 404 handler and
 * errors thrown by `onRequest` (`onResponse` runs for those too). A failed append is logged
 * and never changes the response, which is already sent.
 */
export function installAudit(app: FastifyInstance, opts: { log: AuditLog }): (req: FastifyRequest, reply: FastifyReply) => void {
  const { log } = opts;
  const captured = new WeakMap<FastifyRequest, Captured>();
  const take = (
    req: FastifyRequest,
    _reply: FastifyReply,
    payload: unknown,
    done: (err: Error | null, payload?: unknown) => void,
  ): void => {
    captured.set(req, capture(payload));
    done(null, payload);
  };
  app.addHook('onRoute', (r) => {
    if (!([] as string[]).concat(r.method).some((m) => MUTATING.has(m))) return;
    appendRouteHook(r, 'preSerialization', take);
  });
  const record = (req: FastifyRequest, reply: FastifyReply): void => {
    try {
      const entry = entryFor(req, reply, captured.get(req));
      if (entry) log.append(entry);
    } catch (err) {
      req.log.error({ err }, 'audit append failed');
    }
  };
  return record;
}
