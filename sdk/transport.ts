/**
 * How the SDK reaches the API: one `fetch` that adds the credentials and the workspace header,
 * refreshes an access token shortly before it expires (or once after a 401, when a refresh token
 * is known), and turns unreachable servers into {@link ConnectionError}s. The typed client
 * (openapi-fetch over the generated `paths`) and the raw requests (files, SSE, NDJSON) both go
 * through it. Uses only web platform APIs (fetch, WebSocket), so it runs in Node and browsers.
 */
import createClient, { type Client } from 'openapi-fetch';
import { connectionError, errorFromResponse, errorOf } from './errors.ts';
import type { paths } from './generated/openapi.ts';
import type { Tokens } from './types.ts';

/** The subset of the WebSocket API the SDK uses (the global `WebSocket` of Node 22+ and browsers has it). */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  send(data: string | ArrayBuffer | Uint8Array): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}
export type WebSocketFactory = (url: string) => WebSocketLike;

export interface ClientOptions {
  /** Where the API is: `http://127.0.0.1:8080` (a trailing `/v1`, as the Director Protocol writes it, is accepted). */
  baseURL: string;
  /** An access token (JWT from login) or an API key (`dk_...`). */
  token?: string;
  /** When `token` expires (ISO 8601); with `refreshToken` the SDK refreshes shortly before. */
  tokenExpiresAt?: string;
  /** A refresh token: the SDK exchanges it for new tokens when the access token expires. */
  refreshToken?: string;
  /** Workspace (id or name) to act in, for users who belong to several (`X-Director-Workspace`). */
  workspace?: string;
  /** Called with every new pair of tokens (after a refresh), e.g. to store them: refresh tokens are single-use. */
  onTokens?: (tokens: Tokens) => void | Promise<void>;
  /** Custom fetch (default: the global one). */
  fetch?: (input: Request) => Promise<Response>;
  /** Custom WebSocket factory (default: the global `WebSocket`). */
  webSocket?: WebSocketFactory;
}

/** A request outside the typed client. Query arrays repeat the parameter (`type=a&type=b`). */
export interface RawRequest {
  query?: Record<string, string | number | boolean | readonly (string | number)[] | undefined>;
  headers?: Record<string, string>;
  body?: RequestInit['body'];
  signal?: AbortSignal;
}

/** Refresh this long before the access token's expiry, so a request never starts with a token about to lapse. */
const REFRESH_MARGIN_MS = 30_000;

export class Transport {
  /** Origin plus any path prefix, without `/v1` (the generated paths start with it). */
  readonly baseUrl: string;
  /** The typed client over every route of the served document; answers are the full envelope. */
  readonly api: Client<paths>;
  readonly #fetch: (input: Request) => Promise<Response>;
  readonly #ws: WebSocketFactory;
  readonly #onTokens: ClientOptions['onTokens'];
  #token: string | undefined;
  #expiresMs: number | undefined;
  #refreshToken: string | undefined;
  #workspace: string | undefined;
  #refreshing: Promise<boolean> | null = null;

  constructor(opts: ClientOptions) {
    const url = new URL(opts.baseURL);
    url.pathname = url.pathname.replace(/\/+$/, '').replace(/\/v1$/, '');
    this.baseUrl = url.toString().replace(/\/+$/, '');
    this.#token = opts.token;
    this.#expiresMs = opts.tokenExpiresAt ? Date.parse(opts.tokenExpiresAt) : undefined;
    this.#refreshToken = opts.refreshToken;
    this.#workspace = opts.workspace;
    this.#onTokens = opts.onTokens;
    this.#fetch = opts.fetch ?? ((req) => globalThis.fetch(req));
    this.#ws = opts.webSocket ?? ((u) => new globalThis.WebSocket(u) as unknown as WebSocketLike);
    this.api = createClient<paths>({ baseUrl: this.baseUrl, fetch: (req) => this.fetch(req) });
  }

  get token(): string | undefined {
    return this.#token;
  }

  get workspace(): string | undefined {
    return this.#workspace;
  }

  /** Whether an expired or refused access token can be replaced without the user. */
  get canRefresh(): boolean {
    return this.#refreshToken !== undefined;
  }

  /** Starts using `tokens` (after a login). */
  useTokens(tokens: Tokens): void {
    this.#token = tokens.token;
    this.#refreshToken = tokens.refreshToken;
    this.#expiresMs = Date.parse(tokens.expiresAt);
  }

  /** Sends `req` with credentials; refreshes the access token first when it is about to expire, and once after a 401. */
  async fetch(req: Request): Promise<Response> {
    if (this.#refreshToken && this.#expiresMs !== undefined && this.#expiresMs - Date.now() < REFRESH_MARGIN_MS) {
      await this.refresh(this.#token);
    }
    const used = this.#token;
    // A copy for the one retry after a refresh (bodies here are JSON or bytes, never unbounded streams).
    const retry = this.#refreshToken ? req.clone() : null;
    const res = await this.#send(req);
    if (res.status !== 401 || !retry || !(await this.refresh(used))) return res;
    await res.body?.cancel();
    return this.#send(retry);
  }

  /**
   * A request outside the typed client (bytes, streams): `path` starts with `/v1`. Returns the
   * response when it is a success and throws the error it carries otherwise.
   */
  async request(method: string, path: string, init: RawRequest = {}): Promise<Response> {
    const url = new URL(this.baseUrl + path);
    for (const [k, v] of Object.entries(init.query ?? {})) {
      for (const one of Array.isArray(v) ? v : v === undefined ? [] : [v]) url.searchParams.append(k, String(one));
    }
    const req = new Request(url, {
      method,
      headers: init.headers ?? {},
      ...(init.body === undefined ? {} : { body: init.body }),
      ...(init.signal ? { signal: init.signal } : {}),
    });
    const res = await this.fetch(req);
    if (!res.ok) throw await errorOf(res);
    return res;
  }

  /** The `ws:`/`wss:` URL of an API path. */
  wsUrl(path: string, query: Record<string, string | number | undefined> = {}): string {
    const url = new URL(this.baseUrl + path);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, String(v));
    return url.toString();
  }

  /** Opens a WebSocket (not yet authenticated: sockets send `{type: 'auth'}` first, as browsers must). */
  openSocket(url: string): WebSocketLike {
    return this.#ws(url);
  }

  /** The first message a socket sends: the current access token and workspace. */
  authMessage(): string {
    if (!this.#token) throw new Error('no credentials: pass a token or an API key, or log in first');
    return JSON.stringify({ type: 'auth', token: this.#token, ...(this.#workspace ? { workspace: this.#workspace } : {}) });
  }

  /**
   * Exchanges the refresh token for new tokens, once for all concurrent callers. `seen` is the
   * access token the caller used: when another caller already replaced it, nothing is refreshed.
   * Returns whether the caller should retry with the current token.
   */
  async refresh(seen: string | undefined): Promise<boolean> {
    if (seen !== this.#token) return true;
    if (!this.#refreshToken) return false;
    this.#refreshing ??= this.#doRefresh().finally(() => (this.#refreshing = null));
    return this.#refreshing;
  }

  async #doRefresh(): Promise<boolean> {
    const req = new Request(`${this.baseUrl}/v1/auth/refresh`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ refreshToken: this.#refreshToken }),
    });
    const res = await this.#raw(req);
    if (!res.ok) {
      await res.body?.cancel();
      // The refresh token is spent or revoked: only a new login helps.
      this.#refreshToken = undefined;
      return false;
    }
    const tokens = ((await res.json()) as { data: Tokens }).data;
    this.useTokens(tokens);
    await this.#onTokens?.(tokens);
    return true;
  }

  async #send(req: Request): Promise<Response> {
    if (this.#token && !req.headers.has('authorization')) req.headers.set('authorization', `Bearer ${this.#token}`);
    if (this.#workspace && !req.headers.has('x-director-workspace')) req.headers.set('x-director-workspace', this.#workspace);
    return this.#raw(req);
  }

  async #raw(req: Request): Promise<Response> {
    try {
      return await this.#fetch(req);
    } catch (err) {
      if ((err as { name?: string }).name === 'AbortError') throw err;
      throw connectionError(this.baseUrl, err);
    }
  }
}

/**
 * The `data` of an openapi-fetch answer, or the typed error its envelope carries (openapi-fetch
 * has already parsed the body). Used as `unwrap(await t.api.GET('/v1/sandboxes/{id}', {...}))`.
 */
export function unwrap<D>(r: { data?: { data: D }; error?: unknown; response: Response }): D {
  if (r.response.ok && r.data !== undefined) return r.data.data;
  throw errorFromResponse(r.response.status, r.error, r.response.headers);
}
