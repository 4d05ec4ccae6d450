/**
 * A real Director HTTP server for a test file: its own runtime (see ./runtime.ts), its own auth
 * store with a known admin, listening on an ephemeral loopback port.
 */
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildApp } from '../../api/app.ts';
import { AuthService } from '../../api/auth/service.ts';
import type { Config } from '../../runtime/config.ts';
import { testRuntime, type TestRuntime } from './runtime.ts';
import { createOrchestration, runtimeServices, type Orchestration } from '../../orchestration/orchestration.ts';

export const ADMIN_PASSWORD = 'test-admin-password-1';

export interface TestApi extends AsyncDisposable {
  url: string;
  rt: TestRuntime;
  orch: Orchestration;
  auth: AuthService;
  app: FastifyInstance;
  /** A fresh admin token in the default workspace. */
  adminToken: string;
  /** Removes everything the server made (containers, networks, nft table, data dir). */
  close(): Promise<void>;
  /** Stops the server as a restart would: sandboxes and the data dir stay (start again with the same `dataDir` and `runtimeName`). */
  stop(): Promise<void>;
}

export interface Res<T = unknown> {
  status: number;
  headers: Headers;
  body: T & {
    success?: boolean;
    data?: unknown;
    error?: { code: string; message: string; details: Record<string, unknown> };
    metadata?: Record<string, unknown>;
  };
  text: string;
}

export interface StartApiOptions {
  /** The runtime's and orchestration's logger (default: silent unless DIRECTOR_TEST_LOG). */
  logger?: Logger;
  /** Fastify's logger options (default: none). */
  httpLogger?: Record<string, unknown>;
}

export async function startApi(overrides: Partial<Config> = {}, opts: StartApiOptions = {}): Promise<TestApi> {
  const rt = testRuntime(overrides, opts.logger ? { logger: opts.logger } : {});
  await rt.start();
  const auth = new AuthService(rt.db, { tokenTtlMs: rt.config.jwtTtlMs });
  await auth.bootstrapAdmin(ADMIN_PASSWORD);
  const orch = createOrchestration(runtimeServices(rt));

  await orch.start();
  const app = await buildApp({ runtime: rt, auth, orchestration: orch, ...(opts.httpLogger ? { logger: opts.httpLogger } : {}) });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address() as { port: number };
  const url = `http://127.0.0.1:${addr.port}`;
  const login = await call(url, 'POST', '/v1/auth/login', { body: { username: 'admin', password: ADMIN_PASSWORD } });
  const adminToken = (login.body.data as { token: string }).token;
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await app.close();
    await orch.close();
    await rt.close();
  };
  const close = async () => {
    await stop();
    await rt.cleanup();
  };
  return { url, rt, orch, auth, app, adminToken, close, stop, [Symbol.asyncDispose]: close };
}

/** One HTTP request with fetch; JSON in and out. `raw` sends the body as given. */
export async function call<T = unknown>(
  base: string,
  method: string,
  path: string,
  opts: { token?: string; body?: unknown; raw?: string | Uint8Array; headers?: Record<string, string> } = {},
): Promise<Res<T>> {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  let body: string | Uint8Array | undefined;
  if (opts.raw !== undefined) body = opts.raw;
  else if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers['content-type'] ??= 'application/json';
  }
  const res = await fetch(`${base}${path}`, { method, headers, ...(body === undefined ? {} : { body }) });
  const text = await res.text();
  let parsed: unknown = {};
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = {};
  }
  return { status: res.status, headers: res.headers, body: parsed as Res<T>['body'], text };
}
