import { ApiError, send, unwrap, type RequestOptions } from './http.ts';
import type { LoginSession, Me } from './types.ts';

/**
 * Who is logged in, and the tokens that prove it.
 *
 * Where the console keeps its tokens: **only in this object, in the page's memory.** Never in
 * cookies (so no request another site makes carries them), localStorage, sessionStorage or
 * IndexedDB (nothing persists them, nothing on another origin reads them), and never in a URL:
 * REST calls send `Authorization: Bearer`, WebSockets send the token in their first `auth`
 * message. Reloading the page or opening a second tab asks for the password again. The access
 * token is refreshed (single-use refresh tokens, `POST /v1/auth/refresh`) a minute before it
 * expires (at three quarters of its life for tokens shorter than four minutes); listeners hear `token` so open sockets can re-authenticate, and `logout` when the
 * session ends (refused refresh, logout, or a 401 that a refresh cannot mend).
 */
export class Session extends EventTarget {
  #tokens: { token: string; refreshToken: string; expiresAtMs: number } | null = null;
  #refreshing: Promise<boolean> | null = null;
  #timer: ReturnType<typeof setTimeout> | null = null;
  me: Me | null = null;

  get token(): string | null {
    return this.#tokens?.token ?? null;
  }

  get loggedIn(): boolean {
    return this.#tokens !== null && this.me !== null;
  }

  async login(username: string, password: string, workspace?: string): Promise<Me> {
    const body = workspace ? { username, password, workspace } : { username, password };
    this.#accept(await unwrap<LoginSession>(await send('POST', '/v1/auth/login', null, { body })));
    this.me = await this.request<Me>('GET', '/v1/auth/me');
    this.dispatchEvent(new Event('login'));
    return this.me;
  }

  async logout(): Promise<void> {
    const token = this.token;
    this.#clear();
    if (token) await send('POST', '/v1/auth/logout', token).catch(() => undefined);
  }

  /** Ends the session here without telling the server (it already refused us). */
  expire(): void {
    this.#clear();
  }

  /** An API call with the current token; on 401 it refreshes once and retries, else ends the session. */
  async request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const res = await this.fetch(method, path, opts);
    return unwrap<T>(res);
  }

  /** Like {@link request} but hands back the raw response (exports, streams). */
  async fetch(method: string, path: string, opts: RequestOptions = {}): Promise<Response> {
    let res = await send(method, path, this.token, opts);
    if (res.status === 401 && this.#tokens) {
      if (await this.refresh()) res = await send(method, path, this.token, opts);
      else throw new ApiError(401, 'AUTHENTICATION_ERROR', 'your session has ended: log in again');
    }
    return res;
  }

  /** Exchanges the refresh token for new tokens (one exchange at a time); false ends the session. */
  refresh(): Promise<boolean> {
    this.#refreshing ??= this.#refresh().finally(() => (this.#refreshing = null));
    return this.#refreshing;
  }

  async #refresh(): Promise<boolean> {
    const current = this.#tokens;
    if (!current) return false;
    try {
      const res = await send('POST', '/v1/auth/refresh', null, { body: { refreshToken: current.refreshToken } });
      this.#accept(await unwrap<LoginSession>(res));
      this.dispatchEvent(new Event('token'));
      return true;
    } catch {
      this.#clear();
      return false;
    }
  }

  #accept(s: LoginSession): void {
    const expiresAtMs = Date.parse(s.expiresAt);
    this.#tokens = { token: s.token, refreshToken: s.refreshToken, expiresAtMs };
    if (this.#timer) clearTimeout(this.#timer);
    // A minute before expiry, and not before three quarters of the lifetime: sockets re-authenticate
    // in time, and short tokens do not spend the auth rate limit (refreshes count against it).
    const lifetime = expiresAtMs - Date.now();
    const inMs = Math.max(5_000, lifetime - 60_000, lifetime * 0.75);
    this.#timer = setTimeout(() => void this.refresh(), inMs);
  }

  #clear(): void {
    const had = this.#tokens !== null;
    this.#tokens = null;
    this.me = null;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    if (had) this.dispatchEvent(new Event('logout'));
  }
}

/** Whether the logged-in principal holds `scope` (`admin` holds them all). */
export const can = (me: Me | null, scope: string): boolean => !!me && (me.scopes.includes(scope) || me.scopes.includes('admin'));
