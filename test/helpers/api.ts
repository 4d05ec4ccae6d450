/**
 * A real Director HTTP server for a test file, built as the server builds itself
 * (`createDirector`, api/server.ts): its own runtime (see ./runtime.ts), its own auth store with
 * a known admin, listening on an ephemeral loopback port.
 */
import type { FastifyInstance } from 'fastify';
import type { AuthService } from '../../api/auth/service.ts';
import { createDirector, type DirectorOptions } from '../../api/server.ts';
import type { Config } from '../../runtime/config.ts';
import type { Orchestration } from '../../orchestration/orchestration.ts';
import { testSetup, withCleanup, type TestRuntime } from './runtime.ts';

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

/** Starts a server; `opts` reach `createDirector` (another engine, a logger, webhook or WebSocket settings...). */
export async function startApi(overrides: Partial<Config> = {}, opts: Omit<DirectorOptions, 'config'> = {}): Promise<TestApi> {
  const setup = testSetup(overrides);
  const director = await createDirector({ config: setup.config, engine: setup.engine, logger: setup.logger, ...opts });
  const rt = withCleanup(director.runtime, setup);
  const { auth, app, orchestration: orch } = director;
  await director.start();
  await auth.bootstrapAdmin(ADMIN_PASSWORD);
  const url = await director.listen({ host: '127.0.0.1', port: 0 });
  const login = await call(url, 'POST', '/v1/auth/login', { body: { username: 'admin', password: ADMIN_PASSWORD } });
  const adminToken = (login.body.data as { token: string }).token;
  const stop = () => director.close();
  const close = async () => {
    await director.close();
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
