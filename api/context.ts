import type { FastifyContextConfig, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import { actorOf, type Principal, type Scope } from './auth/types.ts';
import type { Caller } from '../runtime/sandbox/manager.ts';
import { DirectorError, ERROR_STATUS, type ErrorCode } from '../core/errors.ts';
import { fail, ok } from './envelope.ts';
import type { RateClass } from './ratelimit.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the auth plugin on every non-public route. */
    principal: Principal | null;
    /** The matched route's config, read once per request: use {@link routeConfigOf}. */
    routeConfig: RouteConfig | null;
    /** The error envelope's code, when the response is one ({@link sendFail}); for the HTTP error summary. */
    errorCode: string | null;
  }
  interface FastifyContextConfig {
    /** The scope a route needs; absent together with `public: true` for anonymous routes. */
    scope?: Scope;
    public?: boolean;
    /** Creating POST: honours `Idempotency-Key`. */
    idempotent?: boolean;
    /**
     * The body may be left out: none is taken as an empty one (see {@link noBodyIsEmpty}), and the
     * OpenAPI document marks the request body optional.
     */
    optionalBody?: boolean;
    /** Set by the app when the route is declared (single-method routes): its rate-limit class. */
    rateClass?: RateClass;
  }
}

/** A route's config as Fastify stores it: ours plus the route template (`url`) and method(s); both absent when no route matched. */
export type RouteConfig = FastifyContextConfig & { url?: string; method?: string | string[] };

const NO_ROUTE: RouteConfig = Object.freeze({});

/**
 * The matched route's config. Fastify's `req.routeOptions` builds a new object on every read,
 * and a request reads it from several hooks; this reads it once and keeps it on the request.
 */
export function routeConfigOf(req: FastifyRequest): RouteConfig {
  return (req.routeConfig ??= req.routeOptions.config ?? NO_ROUTE);
}

/**
 * Adds `hook` to a route's own `name` hooks from an `onRoute` hook (Fastify takes one function or
 * an array there), so only that route runs it.
 */
export function appendRouteHook<K extends 'preValidation' | 'preHandler' | 'preSerialization' | 'onSend'>(
  route: RouteOptions,
  name: K,
  hook: Extract<NonNullable<RouteOptions[K]>, (...args: never[]) => unknown>,
): void {
  const current = route[name] as unknown;
  route[name] = (current === undefined ? [hook] : ([] as unknown[]).concat(current, hook)) as RouteOptions[K];
}

/**
 * The `preValidation` of a route with `config.optionalBody` (added by the app): Fastify validates
 * a missing body against the body schema (and refuses it as "body must be object"), so none is
 * taken as an empty one.
 */
export const noBodyIsEmpty = (req: { body: unknown }, _reply: unknown, done: () => void): void => {
  req.body ??= {};
  done();
};

export function principalOf(req: FastifyRequest): Principal {
  if (!req.principal) throw new DirectorError('AUTHENTICATION_ERROR', 'authentication required');
  return req.principal;
}

export const callerOf = (req: FastifyRequest): Caller => {
  const p = principalOf(req);
  return { workspace: p.workspace, actor: actorOf(p) };
};

/** Sends `data` in the success envelope. */
export const send = <T>(reply: FastifyReply, data: T, status = 200) => reply.code(status).send(ok(data, reply.request.id));

/** Sends the error envelope with the code's status, noting the code on the request for the HTTP error summary. */
export function sendFail(
  reply: FastifyReply,
  code: ErrorCode,
  message: string,
  details?: Record<string, unknown>,
  retryAfter?: number,
): FastifyReply {
  reply.request.errorCode = code;
  return reply.code(ERROR_STATUS[code]).send(fail(code, message, details, reply.request.id, retryAfter));
}
