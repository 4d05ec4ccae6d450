import Fastify, { type FastifyInstance } from 'fastify';
import type { Runtime } from '../runtime/runtime.ts';
import { newId } from '../runtime/ids.ts';
import { isDirectorError } from '../runtime/errors.ts';
import { fail, ok } from './envelope.ts';
import { readiness, type ReadinessProbe } from './health.ts';

export interface AppDeps {
  runtime: Runtime;
  probes?: ReadinessProbe[];
  /** Fastify logger options (pino); false in tests. */
  logger?: boolean | Record<string, unknown>;
}

/**
 * Builds the HTTP app. Health and Prometheus metrics for now; the `/v1` API areas register
 * as encapsulated plugins on top of this (see api/routes/).
 */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const rt = deps.runtime;
  const app = Fastify({
    logger: deps.logger ?? false,
    genReqId: () => newId('req'),
    requestIdHeader: false,
    bodyLimit: 1_048_576,
    return503OnClosing: true,
  });

  app.addHook('onSend', async (req, reply) => {
    reply.header('x-request-id', req.id);
  });

  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send(fail('NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`, { method: req.method }, req.id));
  });

  app.setErrorHandler((err, req, reply) => {
    if (isDirectorError(err)) return reply.code(err.status).send(fail(err.code, err.message, err.details, req.id));
    const status = (err as { statusCode?: number }).statusCode ?? 500;
    if (status >= 500) {
      req.log.error({ err }, 'request failed');
      return reply.code(500).send(fail('INTERNAL_ERROR', 'internal error', undefined, req.id));
    }
    const code = status === 413 ? 'PAYLOAD_TOO_LARGE' : status === 404 ? 'NOT_FOUND' : status === 429 ? 'RATE_LIMIT_EXCEEDED' : 'VALIDATION_ERROR';
    return reply.code(status).send(fail(code, (err as Error).message, { field: 'body' }, req.id));
  });

  app.get('/health', (req, reply) => reply.send(ok({ status: 'ok', version: rt.config.runtimeName }, req.id)));
  app.get('/health/live', (req, reply) => reply.send(ok({ status: 'alive' }, req.id)));
  app.get('/health/ready', async (req, reply) => {
    const r = await readiness(rt, deps.probes);
    if (!r.ready) return reply.code(503).send(fail('SERVICE_UNAVAILABLE', 'not ready', { checks: r.checks }, req.id));
    return ok({ status: 'ready', checks: r.checks }, req.id);
  });
  app.get('/metrics', async (_req, reply) => {
    const body = await rt.metrics.registry.metrics();
    return reply.type(rt.metrics.registry.contentType).send(body);
  });
  return app;
}
