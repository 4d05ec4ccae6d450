import { timingSafeEqual } from 'node:crypto';
import type { FastifyPluginAsync } from 'fastify';
import type { Registry } from 'prom-client';
import type { Config } from '../../runtime/config.ts';
import type { Health, ReadinessProbe } from '../../runtime/health.ts';
import { ok } from '../envelope.ts';
import { sendFail } from '../context.ts';

const LOOPBACK = /^(127\.|::1$|::ffff:127\.)/;

const sameSecret = (a: string, b: string) => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

/** Health probes, Prometheus metrics, the OpenAPI document and `/llms.txt`. */
export const systemRoutes: FastifyPluginAsync<{
  health: Health;
  registry: Registry;
  config: Pick<Config, 'runtimeName' | 'metricsToken'>;
  probes: ReadinessProbe[];
}> = async (app, { health, registry, config, probes }) => {
  const pub = { config: { public: true }, schema: { hide: true } };

  app.get('/health', pub, async (req, reply) => reply.send(ok({ status: 'ok', instance: config.runtimeName }, req.id)));
  app.get('/health/live', pub, async (req, reply) => reply.send(ok({ status: 'alive' }, req.id)));
  app.get('/health/ready', pub, async (req, reply) => {
    const r = await health.readiness([health.nftProbe, ...probes]);
    if (!r.ready) return sendFail(reply, 'SERVICE_UNAVAILABLE', 'not ready', { checks: r.checks });
    return reply.send(ok({ status: 'ready', checks: r.checks }, req.id));
  });

  // Prometheus: open to loopback; other clients need DIRECTOR_METRICS_TOKEN.
  app.get('/metrics', pub, async (req, reply) => {
    const token = config.metricsToken;
    const presented = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '')?.[1] ?? '';
    if (!LOOPBACK.test(req.ip) && !(token && sameSecret(presented, token))) {
      return sendFail(reply, 'AUTHENTICATION_ERROR', 'metrics need a bearer token from non-loopback clients', { reason: 'metrics_token' });
    }
    return reply.type(registry.contentType).send(await registry.metrics());
  });

  app.get('/v1/openapi.json', pub, async (_req, reply) => reply.send(app.swagger()));

  app.get('/llms.txt', pub, async (req, reply) => {
    const base = `${req.protocol}://${req.host}`;
    return reply.type('text/plain; charset=utf-8').send(`# Director

> A sandbox and network isolation runtime. It runs untrusted (agent-written) code in hardened
> containers on a real Docker engine, behind per-network nftables egress policies with
> name-based allowlists, and reports every denial as a security event.

## Authentication
- POST ${base}/v1/auth/login {"username","password"} -> {token, refreshToken, expiresAt}
- Send "Authorization: Bearer <token>" (a JWT, or an API key "dk_...") on every /v1 call.
- POST ${base}/v1/api-keys {"name","scopes":["sandboxes:write","sandboxes:exec",...]} creates a scoped key (shown once).

## Key endpoints
- POST ${base}/v1/sandboxes {"image","command","resourceLimits","securityPolicy","networkMode"} -> a running sandbox
- POST ${base}/v1/sandboxes/{id}/execute {"command":["python3","-c","print(1)"],"timeout":30000} (Accept: text/event-stream to stream)
- PUT/GET ${base}/v1/sandboxes/{id}/files?path=/workspace/x
- POST ${base}/v1/networks, POST ${base}/v1/networks/{id}/policies (rules in order, first match wins), POST ${base}/v1/networks/{id}/isolate
- POST ${base}/v1/networks/{id}/policy/test {"direction":"outbound","protocol":"tcp","address" or "host","port"} -> allow/deny and the rule or guard that decides, from the kernel
- GET ${base}/health/ready, GET ${base}/metrics (Prometheus)

## Reference
- OpenAPI: ${base}/v1/openapi.json ; human docs: ${base}/v1/docs
- Envelope: {"success":true,"data":...,"metadata":{"timestamp","requestId","version"}}; errors carry {"code","message","details"}.
`);
  });
};
