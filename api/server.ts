/**
 * The composition root of the whole server: the one place that puts the layers together. The
 * runtime builds its own services (`createRuntime`, runtime/runtime.ts); this file adds what
 * sits above it and hands everything to the HTTP app. `api/main.ts`, the test helpers and the
 * benchmarks all start Director through {@link createDirector}.
 *
 * A new layer plugs in here, between the runtime and the app: `orchestration/` (sessions,
 * workflows, chat) is built over `runtime`'s services, started after it and closed before it,
 * and its services are given to `buildApp` for its routes.
 */
import type { FastifyInstance } from 'fastify';
import type { Config } from '../runtime/config.ts';
import type { ReadinessProbe } from '../runtime/health.ts';
import { createRuntime, type Runtime, type RuntimeOptions } from '../runtime/runtime.ts';
import { createOrchestration, runtimeServices, type Orchestration, type OrchestrationDeps } from '../orchestration/orchestration.ts';
import { buildApp, type AppDeps } from './app.ts';
import { AuthService } from './auth/service.ts';

export interface DirectorOptions extends RuntimeOptions {
  /** Validated configuration (`loadConfig`): a bad value has already stopped startup. */
  config: Config;
  /** Fastify's logger options (pino); false (the default) logs no requests. */
  httpLogger?: boolean | Record<string, unknown>;
  /** Extra readiness checks for `/health/ready`. */
  probes?: ReadinessProbe[];
  /** WebSocket tunables and extra hub channels. */
  ws?: AppDeps['ws'];
  /** The built web console served at /console; default console/dist (scripts/build-console.ts). */
  consoleDir?: string;
  /** Wraps what workflow checkpoint steps and rollbacks go through (a test holding one at a chosen moment). */
  workflowCheckpoints?: OrchestrationDeps['workflowCheckpoints'];
}

export interface Director extends AsyncDisposable {
  config: Config;
  runtime: Runtime;
  /** Sessions, departments, context, environments, checkpoints, workflows, agents and chat. */
  orchestration: Orchestration;
  auth: AuthService;
  app: FastifyInstance;
  /** Starts the runtime (reconcile, firewall, supervisor, security jobs, webhook deliveries, warm pool), then the orchestration layer. */
  start(opts?: { waitForPool?: boolean }): Promise<void>;
  /** Serves HTTP (default: the configured host and port); returns the base URL. */
  listen(address?: { host: string; port: number }): Promise<string>;
  /** Stops taking requests and drains them, then stops the orchestration layer and the runtime. Sandboxes keep running. */
  close(): Promise<void>;
}

/** Builds Director (nothing runs until `start()` and `listen()`). */
export async function createDirector(opts: DirectorOptions): Promise<Director> {
  const { config } = opts;
  const runtime = createRuntime(opts);
  try {
    const orchestration = createOrchestration({
      ...runtimeServices(runtime),
      ...(opts.workflowCheckpoints ? { workflowCheckpoints: opts.workflowCheckpoints } : {}),
    });
    const auth = new AuthService(runtime.db, {
      tokenTtlMs: config.jwtTtlMs,
      ...(config.jwtSecret ? { jwtSecret: config.jwtSecret } : {}),
    });
    const app = await buildApp({
      runtime,
      orchestration,
      auth,
      ...(opts.probes ? { probes: opts.probes } : {}),
      ...(opts.ws ? { ws: opts.ws } : {}),
      ...(opts.consoleDir ? { consoleDir: opts.consoleDir } : {}),
      logger: opts.httpLogger ?? false,
    });
    let closed: Promise<void> | null = null;
    const close = () =>
      (closed ??= (async () => {
        // The warm pool is drained while requests finish: removing its containers takes seconds,
        // and a shutdown cut short by its grace period must not leave them behind.
        const draining = runtime.pool.drain();
        await app.close();
        await orchestration.close();
        await draining;
        await runtime.close();
      })());
    return {
      config,
      runtime,
      orchestration,
      auth,
      app,
      async start(o) {
        await runtime.start(o);
        await orchestration.start();
      },
      async listen(address = { host: config.host, port: config.port }) {
        await app.listen(address);
        const port = (app.server.address() as { port: number }).port;
        return `http://${address.host.includes(':') ? `[${address.host}]` : address.host}:${port}`;
      },
      close,
      [Symbol.asyncDispose]: close,
    };
  } catch (err) {
    await runtime.close();
    throw err;
  }
}
