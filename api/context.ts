import type { FastifyReply, FastifyRequest } from 'fastify';
import { actorOf, type Principal, type Scope } from './auth/types.ts';
import type { Caller } from '../runtime/sandbox/manager.ts';
import { DirectorError } from '../runtime/errors.ts';
import { ok } from './envelope.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the auth plugin on every non-public route. */
    principal: Principal | null;
  }
  interface FastifyContextConfig {
    /** The scope a route needs; absent together with `public: true` for anonymous routes. */
    scope?: Scope;
    public?: boolean;
    /** Creating POST: honours `Idempotency-Key`. */
    idempotent?: boolean;
  }
}

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
