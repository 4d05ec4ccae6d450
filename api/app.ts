import { STATUS_CODES } from 'node:http';
import Fastify, { errorCodes, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { Runtime } from '../runtime/runtime.ts';
import type { Orchestration } from '../orchestration/orchestration.ts';
import { sessionRoutes } from './routes/sessions.ts';
import { departmentRoutes } from './routes/departments.ts';
import { contextRoutes } from './routes/context.ts';
import { workflowRoutes } from './routes/workflows.ts';
import { agentRoutes } from './routes/agents.ts';
import { chatRoutes } from './routes/chat.ts';
import { approvalRoutes } from './routes/approvals.ts';
import { vaultRoutes } from './routes/vault.ts';
import { llmProviderRoutes } from './routes/llm-providers.ts';
import { chatChannel } from './ws/chat-channel.ts';
import { newId } from '../core/ids.ts';
import { ERROR_STATUS, isDirectorError } from '../core/errors.ts';
import { engineError } from '../runtime/sandbox/engine-call.ts';
import type { AuthService } from './auth/service.ts';
import { actorOf, type Principal, type Scope } from './auth/types.ts';
import { missingScope } from './auth/failures.ts';
import { fail } from './envelope.ts';
import { installValidators, validationToError } from './validation.ts';
import { RateLimiter, classify, setRateLimitHeaders, rateLimitError, type RateClass } from './ratelimit.ts';
import { IdempotencyStore, IDEMPOTENCY_HEADER, REPLAY_HEADER, fingerprint, parseIdempotencyKey } from './idempotency.ts';
import { appendRouteHook, noBodyIsEmpty, routeConfigOf, sendFail } from './context.ts';
import { OptionalBodies } from './openapi.ts';
import { sandboxRoutes } from './routes/sandboxes.ts';
import { securityRoutes } from './routes/security.ts';
import { networkRoutes } from './routes/networks.ts';
import { webhookRoutes } from './routes/webhooks.ts';
import { authRoutes } from './routes/auth.ts';
import { systemRoutes } from './routes/system.ts';
import { wsPlugin, type WsPluginOptions } from './ws/plugin.ts';
import { auditRoutes } from './routes/audit.ts';
import { installAudit } from './audit/hook.ts';
import { AuditLog } from './audit/log.ts';
import { monitoringRoutes } from './routes/monitoring.ts';
import { environmentRoutes } from './routes/environments.ts';
import { createHttpMetrics } from './http-metrics.ts';
import { consoleRoutes } from './routes/console.ts';
import type { ReadinessProbe } from '../runtime/health.ts';
import type { WsOptions } from './ws/options.ts';
import { checkpointRoutes } from './routes/checkpoints.ts';

export interface AppDeps {
  runtime: Runtime;
  /** The orchestration layer (sessions, departments, context ...); its routes are served when given. */
  orchestration?: Orchestration;
  auth: AuthService;
  probes?: ReadinessProbe[];
  /** WebSocket tunables and extra hub channels beyond the operator's settings. */
  ws?: WsOptions & Pick<WsPluginOptions, 'channels'>;
  /** The built web console served at /console; default console/dist (scripts/build-console.ts). */
  consoleDir?: string;
  /** Fastify logger options (pino); false in tests. */
  logger?: boolean | Record<string, unknown>;
}

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
const IDEMPOTENCY_HEADER_LC = IDEMPOTENCY_HEADER.toLowerCase();

/**
 * Builds the HTTP app over services built elsewhere (the runtime's, auth): the Director Protocol
 * under `/v1` (envelope, error codes, auth, tenancy, rate limits, idempotency), health,
 * Prometheus metrics, OpenAPI and discovery. Every area is an encapsulated plugin
 * (api/routes/) given the services it uses; this file holds only what crosses them. The whole
 * server is put together in api/server.ts.
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
    // Raised by Node's HTTP parser before Fastify sees a request (a malformed request line,
    // headers over the limit, a request not received in time): still the envelope, with a
    // request id, and the connection closed as Node would.
    clientErrorHandler: (err: Error & { code?: string }, socket) => {
      if (err.code === 'ECONNRESET' || socket.destroyed) return;
      const [code, message, field] =
        err.code === 'HPE_HEADER_OVERFLOW'
          ? (['HEADERS_TOO_LARGE', 'request headers exceed the limit', 'headers'] as const)
          : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
            ? (['REQUEST_TIMEOUT', 'the request was not received in time', 'request'] as const)
            : (['VALIDATION_ERROR', 'malformed HTTP request', 'request'] as const);
      const status = ERROR_STATUS[code];
      const id = newId('req');
      const body = JSON.stringify(fail(code, message, { field }, id));
      if (socket.writable) {
        socket.write(
          `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nX-Request-Id: ${id}\r\nConnection: close\r\n\r\n${body}`,
        );
      }
      socket.destroy(err);
    },
    // Raised while routing, before any hook runs: answer in the envelope like every other 4xx.
    frameworkErrors: (err, req, reply) => {
      const issue =
        err.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 'a path segment is longer than 200 characters' : 'not a valid percent-encoded URL';
      void sendFail((reply as FastifyReply).header('x-request-id', req.id), 'VALIDATION_ERROR', `Invalid path: ${issue}`, {
        field: 'path',
        issue,
      });
    },
  });
  installValidators(app);
  // An empty body sent as JSON is no body, so clients that set `Content-Type: application/json`
  // on every request are served on routes that take none (DELETE, stop, isolate); a route that
  // needs a body still refuses it through its schema (400 naming `body`).
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    if (body === '') done(null, undefined);
    else void parseJson(req, body as string, done);
  });
  app.decorateRequest('principal', null);
  app.decorateRequest('routeConfig', null);
  app.decorateRequest('errorCode', null);
  const http = createHttpMetrics(rt.metrics.registry);

  const limiter = new RateLimiter({
    limits: {
      auth: cfg.rateLimitAuth,
      refresh: cfg.rateLimitRefresh,
      session: cfg.rateLimitSession,
      sandbox: cfg.rateLimitSandbox,
      general: cfg.rateLimitGeneral,
    },
  });
  const idempotency = new IdempotencyStore(rt.db);
  idempotency.releaseRunning();
  const purge = setInterval(() => idempotency.purgeExpired(), 3_600_000);
  purge.unref();
  app.addHook('onClose', async () => clearInterval(purge));

  // Idempotency-Key on creating POSTs (route-level hooks, added to those routes only):
  // replay, 409 while running, 422 on a different body.
  const idempotencyBegin = async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (req.headers[IDEMPOTENCY_HEADER_LC] === undefined || !req.principal) return;
    const key = parseIdempotencyKey(req.headers[IDEMPOTENCY_HEADER_LC]);
    const path = req.url.split('?')[0] ?? req.url;
    const begun = idempotency.begin(req.principal.workspace, key, fingerprint(req.method, path, req.body), req.method, path);
    if (begun.kind === 'replay') {
      const code = (begun.body as { error?: { code?: unknown } } | null)?.error?.code;
      if (typeof code === 'string') req.errorCode = code;
      return reply.code(begun.statusCode).header(REPLAY_HEADER, 'true').send(begun.body);
    }
    (req as FastifyRequest & { idempotencyKey?: string }).idempotencyKey = key;
  };
  const idempotencyEnd = (
    req: FastifyRequest,
    reply: FastifyReply,
    payload: unknown,
    done: (err: Error | null, payload?: unknown) => void,
  ): void => {
    const key = (req as FastifyRequest & { idempotencyKey?: string }).idempotencyKey;
    if (!key || !req.principal || reply.getHeader(REPLAY_HEADER)) return done(null, payload);
    try {
      if (reply.statusCode >= 500) idempotency.abandon(req.principal.workspace, key);
      else
        idempotency.complete(
          req.principal.workspace,
          key,
          reply.statusCode,
          typeof payload === 'string' ? (JSON.parse(payload) as unknown) : payload,
        );
      done(null, payload);
    } catch (err) {
      done(err as Error);
    }
  };

  // Per route, once, when it is declared: its pattern (for 405 Method Not Allowed), its rate
  // class, and the hooks only some routes need (idempotency on creating POSTs), so that a
  // request pays for no hook that has nothing to do for it.
  const routes: { method: string; re: RegExp }[] = [];
  const optionalBodies = new OptionalBodies();
  app.addHook('onRoute', (r) => {
    const re = new RegExp(`^${r.url.replace(/:[^/]+/g, '[^/]+').replace(/\*/g, '.*')}/?$`);
    const methods = ([] as string[]).concat(r.method);
    for (const m of methods) routes.push({ method: m, re });
    // One rate class per route context; a route declared for several methods is classified per request.
    r.config = { ...r.config, ...(methods.length === 1 ? { rateClass: classify(methods[0]!, r.url) } : {}) };
    if (r.config.optionalBody) {
      appendRouteHook(r, 'preValidation', noBodyIsEmpty);
      optionalBodies.add(r.method, r.url);
    }
    if (r.config.idempotent) {
      appendRouteHook(r, 'preHandler', idempotencyBegin);
      appendRouteHook(r, 'onSend', idempotencyEnd);
    }
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Director API',
        version: '1.0.0',
        description:
          'Sandbox and network isolation runtime with a secure execution API (the Director Protocol). Every response uses the envelope `{success, data, metadata}`; errors `{success: false, error: {code, message, details}, metadata}`. Authenticate with `Authorization: Bearer <JWT from /v1/auth/login or an API key>`; select a workspace with `X-Director-Workspace` when a user belongs to several. Rate limits answer with `X-RateLimit-*` headers on every response. Creating POSTs honour `Idempotency-Key`.',
      },
      components: {
        securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'A JWT from /v1/auth/login or an API key (dk_...)' } },
      },
      security: [{ bearer: [] }],
    },
    transformObject: (d) => ('openapiObject' in d ? optionalBodies.apply(d.openapiObject) : d.swaggerObject),
  });
  await app.register(swaggerUi, { routePrefix: '/v1/docs', uiConfig: { deepLinking: false } });

  // The hooks every request runs are written in callback style, and the authentication hook
  // answers synchronously when the principal is cached: an async hook costs a promise and a
  // microtask turn per request, which on a small GET is a measurable share of the whole.

  // Authentication, then the rate limit keyed by who is calling (the client address when
  // anonymous), then the scope the route needs: all in the one `onRequest` hook.
  /**
   * Sets the caller, takes its rate-limit token, then checks the route's scope; returns the
   * refusal, if any. The scope is checked here, before the body is read or validated: a caller
   * without it learns nothing about the body's schema, and a refused body is not recorded as
   * their policy violation.
   */
  const admit = (
    req: FastifyRequest,
    reply: FastifyReply,
    cls: RateClass,
    principal: Principal | null,
    scope: Scope | undefined,
  ): Error | undefined => {
    req.principal = principal;
    const d = limiter.take(cls, principal ? (principal.keyId ?? principal.userId) : `ip:${req.ip}`);
    setRateLimitHeaders(reply, d);
    if (!d.allowed) return rateLimitError(d);
    if (scope && principal && !principal.scopes.has(scope)) {
      rt.events.emit({
        type: 'scope_denied',
        severity: 'medium',
        workspace: principal.workspace,
        actor: actorOf(principal),
        details: { scope, route: routeConfigOf(req).url, method: req.method, requestId: req.id },
      });
      return missingScope(scope);
    }
    return undefined;
  };
  /** A failed authentication: counted against the address's auth budget and recorded; returns the error to answer. */
  const refused = (req: FastifyRequest, reply: FastifyReply, url: string, err: unknown): Error => {
    const d = limiter.take('auth', `ip:${req.ip}`);
    setRateLimitHeaders(reply, d);
    if (!d.allowed) return rateLimitError(d);
    if (isDirectorError(err)) {
      rt.events.emit({
        type: err.code === 'AUTHENTICATION_ERROR' ? 'auth_failed' : 'auth_denied',
        severity: 'medium',
        actor: `ip:${req.ip}`,
        details: { route: url, method: req.method, reason: err.details?.reason ?? null, requestId: req.id },
      });
    }
    return err as Error;
  };
  app.addHook('onRequest', (req, reply, done) => {
    void reply.header('x-request-id', req.id);
    const cfg = routeConfigOf(req);
    const url = cfg.url;
    if (url?.startsWith('/v1/docs')) return done();
    // Unmatched requests (404, 405) count too, by address, so probing for routes is not free.
    const cls = cfg.rateClass ?? classify(req.method, url ?? req.url);
    if (!url || cfg.public) return done(admit(req, reply, cls, null, undefined));
    const header = req.headers['x-director-workspace'];
    const ws = typeof header === 'string' ? header : undefined;
    const cached = auth.cachedPrincipal(req.headers.authorization, ws);
    if (cached) return done(admit(req, reply, cls, cached, cfg.scope));
    auth.authenticate(req.headers.authorization, ws).then(
      (p) => done(admit(req, reply, cls, p, cfg.scope)),
      (err: unknown) => done(refused(req, reply, url, err)),
    );
  });

  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0] ?? req.url;
    const allowed = [...new Set(routes.filter((r) => r.re.test(path)).map((r) => r.method))].filter((m) =>
      (METHODS as readonly string[]).includes(m),
    );
    if (allowed.length) {
      return sendFail(reply.header('allow', allowed.join(', ')), 'METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${path}`, {
        allowed,
      });
    }
    return sendFail(reply, 'NOT_FOUND', `no route ${req.method} ${path}`, { method: req.method, path });
  });

  app.setErrorHandler((err: unknown, req, reply) => {
    // An engine failure that no service mapped (404 gone, 409 not running, 503 unreachable).
    const mapped = isDirectorError(err) ? err : engineError(err);
    if (mapped) {
      const retryAfter = mapped.code === 'RATE_LIMIT_EXCEEDED' ? Number(mapped.details?.retryAfter ?? 60) : undefined;
      if (retryAfter !== undefined) void reply.header('retry-after', String(retryAfter));
      if (mapped.status >= 500) req.log.error({ err }, 'request failed');
      return sendFail(reply, mapped.code, mapped.message, mapped.details, retryAfter);
    }
    const e = err as {
      validation?: Parameters<typeof validationToError>[0];
      validationContext?: string;
      statusCode?: number;
      code?: string;
      message?: string;
    };
    // Fastify's own errors only: any other error object can carry a `statusCode` (an engine's
    // HTTP client, a library passing on an upstream status) and must not choose the answer's
    // status or put its message in it.
    if (!raisedByFastify(err)) {
      req.log.error({ err }, 'request failed');
      return sendFail(reply, 'INTERNAL_ERROR', 'internal error');
    }
    if (e.validation) {
      const v = validationToError(e.validation, e.validationContext ?? 'body');
      return sendFail(reply, v.code, v.message, v.details);
    }
    const status = e.statusCode ?? 500;
    if (status === 413) return sendFail(reply, 'PAYLOAD_TOO_LARGE', `request body exceeds the limit`, { field: 'body' });
    if (status === 415) return sendFail(reply, 'UNSUPPORTED_MEDIA_TYPE', e.message ?? 'unsupported media type', { field: 'content-type' });
    if (status >= 400 && status < 500) {
      const malformed = e.code === 'FST_ERR_CTP_INVALID_JSON_BODY';
      return sendFail(reply, 'VALIDATION_ERROR', malformed ? 'malformed JSON body' : (e.message ?? 'bad request'), {
        field: 'body',
        issue: malformed ? 'not valid JSON' : e.code,
      });
    }
    req.log.error({ err }, 'request failed');
    return sendFail(reply, 'INTERNAL_ERROR', 'internal error');
  });

  const audit = new AuditLog(rt.db, { clock: rt.clock });
  const recordAudit = installAudit(app, { log: audit });
  // One hook for both: metrics, then the audit entry.
  app.addHook('onResponse', (req, reply, done) => {
    http.observe(req, reply);
    recordAudit(req, reply);
    done();
  });
  const channels = {
    ...deps.ws?.channels,
    ...(deps.orchestration ? { chat: chatChannel(deps.orchestration.chat.log) } : {}),
  };
  await app.register(wsPlugin, { ...deps.ws, channels, auth, events: rt.events, db: rt.db, shells: rt.shells, settings: cfg });
  await app.register(systemRoutes, { health: rt.health, registry: rt.metrics.registry, config: cfg, probes: deps.probes ?? [] });
  await app.register(consoleRoutes, deps.consoleDir ? { dir: deps.consoleDir } : {});
  await app.register(
    async (v1) => {
      await v1.register(authRoutes, { auth, events: rt.events });
      await v1.register(sandboxRoutes, {
        sandboxes: rt.sandboxes,
        executor: deps.orchestration?.executes ?? rt.executor,
        files: rt.files,
        events: rt.events,
        networks: rt.networks,
        fileMaxBytes: cfg.fileMaxBytes,
        ...(deps.orchestration ? { orchestration: deps.orchestration } : {}),
      });
      if (deps.orchestration) {
        const o = deps.orchestration;
        await v1.register(sessionRoutes, { sessions: o.sessions });
        await v1.register(departmentRoutes, { departments: o.departments });
        await v1.register(contextRoutes, { context: o.context });
        await v1.register(environmentRoutes, { environments: o.environments });
        await v1.register(checkpointRoutes, { checkpoints: o.checkpoints });
        await v1.register(workflowRoutes, { workflows: o.workflows });
        await v1.register(agentRoutes, { agents: o.chat.agents });
        await v1.register(chatRoutes, { chat: o.chat.service });
        await v1.register(approvalRoutes, { approvals: o.chat.approvals });
        await v1.register(vaultRoutes, { vault: o.chat.vault });
        await v1.register(llmProviderRoutes, { providers: o.chat.providers });
      }
      await v1.register(securityRoutes, { security: rt.security, ...(deps.orchestration ? { orchestration: deps.orchestration } : {}) });
      await v1.register(webhookRoutes, { webhooks: rt.webhooks });
      await v1.register(auditRoutes, { audit });
      if (rt.networks) await v1.register(networkRoutes, { networks: rt.networks.manager });
      await v1.register(monitoringRoutes, {
        monitoring: rt.monitoring,
        registry: rt.metrics.registry,
        errors: http.errors,
        totals: http.totals,
      });
    },
    { prefix: '/v1' },
  );
  return app;
}

/** Fastify's own error classes (`FST_ERR_*`: body too large, bad content type, malformed JSON...). */
const FASTIFY_ERRORS: ReadonlyArray<new (...args: never[]) => unknown> = Object.values(errorCodes) as never;

/**
 * True for an error Fastify itself raised while reading or validating the request: one of its
 * error classes, or a schema validation failure (which Fastify marks with `validation`). Only these
 * may choose the answer's status through their `statusCode`.
 */
function raisedByFastify(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  if (FASTIFY_ERRORS.some((C) => err instanceof C)) return true;
  const v = (err as { validation?: unknown; validationContext?: unknown }).validation;
  return Array.isArray(v) && typeof (err as { validationContext?: unknown }).validationContext === 'string';
}
