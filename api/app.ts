import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { Runtime } from '../runtime/runtime.ts';
import { newId } from '../runtime/ids.ts';
import { isDirectorError } from '../runtime/errors.ts';
import type { AuthService } from './auth/service.ts';
import { actorOf, type Principal } from './auth/types.ts';
import { fail } from './envelope.ts';
import { installValidators, validationToError } from './validation.ts';
import { RateLimiter, classify, rateLimitHeaders, rateLimitError } from './ratelimit.ts';
import { IdempotencyStore, IDEMPOTENCY_HEADER, REPLAY_HEADER, fingerprint, parseIdempotencyKey } from './idempotency.ts';
import { sandboxRoutes } from './routes/sandboxes.ts';
import { securityRoutes } from './routes/security.ts';
import { networkRoutes } from './routes/networks.ts';
import { webhookRoutes } from './routes/webhooks.ts';
import { authRoutes } from './routes/auth.ts';
import { systemRoutes } from './routes/system.ts';
import { wsPlugin } from './ws/plugin.ts';
import { auditRoutes } from './routes/audit.ts';
import { installAudit } from './audit/hook.ts';
import { monitoringRoutes } from './routes/monitoring.ts';
import { installHttpMetrics } from './http-metrics.ts';
import type { ReadinessProbe } from './health.ts';
import './context.ts';

export interface AppDeps {
  runtime: Runtime;
  auth: AuthService;
  probes?: ReadinessProbe[];
  /** Fastify logger options (pino); false in tests. */
  logger?: boolean | Record<string, unknown>;
}

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;

/**
 * Builds the HTTP app: the Director Protocol under `/v1` (envelope, error codes, auth, tenancy,
 * rate limits, idempotency), health, Prometheus metrics, OpenAPI and discovery. Every area is an
 * encapsulated plugin (api/routes/); this file holds only what crosses them.
 */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const { runtime: rt, auth } = deps;
  const cfg = rt.config;
  const app = Fastify({
    logger: deps.logger ?? false,
    genReqId: () => newId('req'),
    requestIdHeader: false,
    bodyLimit: cfg.bodyLimitBytes,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 200 },
    // Raised while routing, before any hook runs: answer in the envelope like every other 4xx.
    frameworkErrors: (err, req, reply) => {
      const issue = err.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 'a path segment is longer than 200 characters' : 'not a valid percent-encoded URL';
      void (reply as FastifyReply).code(400).header('x-request-id', req.id).send(fail('VALIDATION_ERROR', `Invalid path: ${issue}`, { field: 'path', issue }, req.id));
    },
  });
  installValidators(app);
  app.decorateRequest('principal', null);
  const http = installHttpMetrics(app, rt.metrics.registry);

  const limiter = new RateLimiter({ limits: { auth: cfg.rateLimitAuth, session: cfg.rateLimitSession, sandbox: cfg.rateLimitSandbox, general: cfg.rateLimitGeneral } });
  const idempotency = new IdempotencyStore(rt.db);
  idempotency.releaseRunning();
  const purge = setInterval(() => idempotency.purgeExpired(), 3_600_000);
  purge.unref();
  app.addHook('onClose', async () => clearInterval(purge));

  // Routes known by pattern, for 405 Method Not Allowed.
  const routes: { method: string; re: RegExp }[] = [];
  app.addHook('onRoute', (r) => {
    const re = new RegExp(`^${r.url.replace(/:[^/]+/g, '[^/]+').replace(/\*/g, '.*')}/?$`);
    for (const m of ([] as string[]).concat(r.method)) routes.push({ method: m, re });
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Director API',
        version: '1.0.0',
        description: 'Sandbox and network isolation runtime with a secure execution API (the Director Protocol). Every response uses the envelope `{success, data, metadata}`; errors `{success: false, error: {code, message, details}, metadata}`. Authenticate with `Authorization: Bearer <JWT from /v1/auth/login or an API key>`; select a workspace with `X-Director-Workspace` when a user belongs to several. Rate limits answer with `X-RateLimit-*` headers on every response. Creating POSTs honour `Idempotency-Key`.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'A JWT from /v1/auth/login or an API key (dk_...)' } } },
      security: [{ bearer: [] }],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/v1/docs', uiConfig: { deepLinking: false } });

  // The hooks every request runs are written in callback style, and the authentication hook
  // answers synchronously when the principal is cached: an async hook costs a promise and a
  // microtask turn per request, which on a small GET is a measurable share of the whole.

  // Authentication, then the rate limit keyed by who is calling (the client address when anonymous).
  /** Sets the caller and takes its rate-limit token; returns the refusal, if any. */
  const admit = (req: FastifyRequest, reply: FastifyReply, cls: ReturnType<typeof classify>, principal: Principal | null): Error | undefined => {
    req.principal = principal;
    const d = limiter.take(cls, principal ? (principal.keyId ?? principal.userId) : `ip:${req.ip}`);
    void reply.headers(rateLimitHeaders(d));
    return d.allowed ? undefined : rateLimitError(d);
  };
  /** A failed authentication: counted against the address's auth budget and recorded; returns the error to answer. */
  const refused = (req: FastifyRequest, reply: FastifyReply, url: string, err: unknown): Error => {
    const d = limiter.take('auth', `ip:${req.ip}`);
    void reply.headers(rateLimitHeaders(d));
    if (!d.allowed) return rateLimitError(d);
    if (isDirectorError(err)) {
      rt.events.emit({ type: err.code === 'AUTHENTICATION_ERROR' ? 'auth_failed' : 'auth_denied', severity: 'medium', actor: `ip:${req.ip}`, details: { route: url, method: req.method, reason: err.details?.reason ?? null, requestId: req.id } });
    }
    return err as Error;
  };
  app.addHook('onRequest', (req, reply, done) => {
    void reply.header('x-request-id', req.id);
    const url = req.routeOptions.url;
    if (url?.startsWith('/v1/docs')) return done();
    // Unmatched requests (404, 405) count too, by address, so probing for routes is not free.
    const cls = classify(req.method, url ?? req.url);
    if (!url || req.routeOptions.config.public) return done(admit(req, reply, cls, null));
    const header = req.headers['x-director-workspace'];
    const ws = typeof header === 'string' ? header : undefined;
    const cached = auth.cachedPrincipal(req.headers.authorization, ws);
    if (cached) return done(admit(req, reply, cls, cached));
    auth.authenticate(req.headers.authorization, ws).then(
      (p) => done(admit(req, reply, cls, p)),
      (err: unknown) => done(refused(req, reply, url, err)),
    );
  });

  // Scope before validation: a caller without the scope learns nothing about the body's
  // schema, and a refused body is not recorded as their policy violation.
  app.addHook('preValidation', (req, _reply, done) => {
    const scope = req.routeOptions.config.scope;
    if (scope && req.principal) {
      try {
        auth.requireScope(req.principal, scope);
      } catch (err) {
        rt.events.emit({ type: 'scope_denied', severity: 'medium', workspace: req.principal.workspace, actor: actorOf(req.principal), details: { scope, route: req.routeOptions.url, method: req.method, requestId: req.id } });
        return done(err as Error);
      }
    }
    done();
  });

  // Idempotency-Key on creating POSTs: replay, 409 while running, 422 on a different body.
  app.addHook('preHandler', async (req, reply) => {
    if (!req.routeOptions.config.idempotent || req.headers[IDEMPOTENCY_HEADER.toLowerCase()] === undefined || !req.principal) return;
    const key = parseIdempotencyKey(req.headers[IDEMPOTENCY_HEADER.toLowerCase()]);
    const path = req.url.split('?')[0] ?? req.url;
    const begun = idempotency.begin(req.principal.workspace, key, fingerprint(req.method, path, req.body), req.method, path);
    if (begun.kind === 'replay') {
      return reply.code(begun.statusCode).header(REPLAY_HEADER, 'true').send(begun.body);
    }
    (req as FastifyRequest & { idempotencyKey?: string }).idempotencyKey = key;
  });
  app.addHook('onSend', (req, reply, payload, done) => {
    const key = (req as FastifyRequest & { idempotencyKey?: string }).idempotencyKey;
    if (!key || !req.principal || reply.getHeader(REPLAY_HEADER)) return done(null, payload);
    try {
      if (reply.statusCode >= 500) idempotency.abandon(req.principal.workspace, key);
      else idempotency.complete(req.principal.workspace, key, reply.statusCode, typeof payload === 'string' ? (JSON.parse(payload) as unknown) : payload);
      done(null, payload);
    } catch (err) {
      done(err as Error);
    }
  });

  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0] ?? req.url;
    const allowed = [...new Set(routes.filter((r) => r.re.test(path)).map((r) => r.method))].filter((m) => (METHODS as readonly string[]).includes(m));
    if (allowed.length) {
      return reply.code(405).header('allow', allowed.join(', ')).send(fail('METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${path}`, { allowed }, req.id));
    }
    return reply.code(404).send(fail('NOT_FOUND', `no route ${req.method} ${path}`, { method: req.method, path }, req.id));
  });

  app.setErrorHandler((err: unknown, req, reply) => {
    if (isDirectorError(err)) {
      const retryAfter = err.code === 'RATE_LIMIT_EXCEEDED' ? Number(err.details?.retryAfter ?? 60) : undefined;
      if (retryAfter !== undefined) void reply.header('retry-after', String(retryAfter));
      if (err.status >= 500) req.log.error({ err }, 'request failed');
      return reply.code(err.status).send(fail(err.code, err.message, err.details, req.id, retryAfter));
    }
    const e = err as { validation?: Parameters<typeof validationToError>[0]; validationContext?: string; statusCode?: number; code?: string; message?: string };
    if (e.validation) {
      const v = validationToError(e.validation, e.validationContext ?? 'body');
      return reply.code(400).send(fail(v.code, v.message, v.details, req.id));
    }
    const status = e.statusCode ?? 500;
    if (status === 413) return reply.code(413).send(fail('PAYLOAD_TOO_LARGE', `request body exceeds the limit`, { field: 'body' }, req.id));
    if (status === 415) return reply.code(415).send(fail('UNSUPPORTED_MEDIA_TYPE', e.message ?? 'unsupported media type', { field: 'content-type' }, req.id));
    if (status >= 400 && status < 500) {
      const malformed = e.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || e.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || err instanceof SyntaxError;
      return reply.code(400).send(fail('VALIDATION_ERROR', malformed ? 'malformed JSON body' : (e.message ?? 'bad request'), { field: 'body', issue: malformed ? 'not valid JSON' : e.code }, req.id));
    }
    req.log.error({ err }, 'request failed');
    return reply.code(500).send(fail('INTERNAL_ERROR', 'internal error', undefined, req.id));
  });

  installAudit(app, { runtime: rt });
  await app.register(wsPlugin, { runtime: rt, auth });
  await app.register(systemRoutes, { runtime: rt, probes: deps.probes ?? [] });
  await app.register(
    async (v1) => {
      await v1.register(authRoutes, { auth, runtime: rt });
      await v1.register(sandboxRoutes, { runtime: rt });
      await v1.register(securityRoutes, { runtime: rt });
      await v1.register(webhookRoutes, { runtime: rt });
      await v1.register(auditRoutes, { runtime: rt });
      if (rt.networks) await v1.register(networkRoutes, { networks: rt.networks.manager });
      await v1.register(monitoringRoutes, { runtime: rt, errors: http.errors, totals: http.totals });
    },
    { prefix: '/v1' },
  );
  return app;
}
