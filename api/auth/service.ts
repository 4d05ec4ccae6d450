import { systemClock, type Clock } from '../../core/clock.ts';
import { notFound } from '../../core/errors.ts';
import type { Db } from '../../core/db.ts';
import { ApiKeys, checkScopes, type ApiKeyInfo, type CreatedApiKey, type OwnerFilter } from './apikeys.ts';
import { checkRole, checkUsername, Directory, type MemberInfo, type WorkspaceInfo } from './directory.ts';
import { authFailure, forbidden, missingScope, notMember } from './failures.ts';
import {
  checkPasswordPolicy,
  DUMMY_PASSWORD_HASH,
  generatePassword,
  hashPassword,
  PASSWORD_MAX_CHARS,
  verifyPassword,
} from './passwords.ts';
import { RefreshTokens } from './refresh.ts';
import { AccessTokens, resolveSigningSecret } from './tokens.ts';
import { ROLE_SCOPES, type Principal, type Role, type Scope } from './types.ts';
import { AuthEpoch } from './epoch.ts';

export interface AuthServiceOptions {
  /** Access-token lifetime in ms; default 15 min. */
  tokenTtlMs?: number;
  /** Refresh-token lifetime in ms (renewed at each rotation); default 7 days. */
  refreshTtlMs?: number;
  /** `DIRECTOR_JWT_SECRET`, at least 32 bytes; default: a random secret kept in the store. */
  jwtSecret?: string;
  clock?: Clock;
}

/** A session: returned by login and refresh. Both tokens are secrets; show them once. */
export interface SessionTokens {
  token: string;
  tokenType: 'Bearer';
  /** Access-token expiry, ms since the epoch. */
  expiresAtMs: number;
  refreshToken: string;
  refreshExpiresAtMs: number;
  /** Workspace id the access token acts in. */
  workspace: string;
}

export interface BootstrapResult {
  created: boolean;
  username: 'admin';
  /** Only when created without `DIRECTOR_ADMIN_PASSWORD`: print it once, it is not stored. */
  generatedPassword?: string;
}

/** How long an authenticated principal is reused at most (see AuthService #principals). */
export const PRINCIPAL_CACHE_MS = 1000;
const PRINCIPAL_CACHE_MAX = 10_000;

export const BOOTSTRAP_WORKSPACE = 'default';
export const BOOTSTRAP_USERNAME = 'admin';

/**
 * Authentication and authorization for the API. Everything the routes need: login, refresh,
 * logout, turning an `Authorization` header into a {@link Principal}, scope checks, API keys
 * and the admin helpers. State lives in the store; the instance holds no sessions.
 */
export class AuthService {
  readonly directory: Directory;
  readonly apiKeys: ApiKeys;
  readonly accessTokens: AccessTokens;
  readonly refreshTokens: RefreshTokens;
  readonly #db: Db;
  readonly #clock: Clock;
  readonly #epoch = new AuthEpoch();
  /**
   * Principals recently authenticated, by credential (and requested workspace). An entry holds
   * while the auth epoch has not moved (every revocation, role change or disabling in this
   * process moves it) and for at most {@link PRINCIPAL_CACHE_MS} (a change written by another
   * process sharing the store takes effect within that), never past the credential's expiry.
   * Saves the store lookups (revocation, user, membership) on every request.
   */
  readonly #principals = new Map<string, { principal: Principal; epoch: number; untilMs: number }>();

  constructor(db: Db, opts: AuthServiceOptions = {}) {
    const clock = opts.clock ?? systemClock;
    this.#db = db;
    this.#clock = clock;
    this.directory = new Directory(db, clock, this.#epoch);
    this.apiKeys = new ApiKeys(db, this.directory, clock, this.#epoch);
    this.accessTokens = new AccessTokens(db, {
      secret: resolveSigningSecret(db, opts.jwtSecret),
      clock,
      epoch: this.#epoch,
      ...(opts.tokenTtlMs !== undefined ? { ttlMs: opts.tokenTtlMs } : {}),
    });
    this.refreshTokens = new RefreshTokens(db, { clock, ...(opts.refreshTtlMs !== undefined ? { ttlMs: opts.refreshTtlMs } : {}) });
  }

  /**
   * First start only (no user exists yet): creates workspace `default` and user `admin` with
   * role admin. The password is `passwordFromEnv` (`DIRECTOR_ADMIN_PASSWORD`), which must meet
   * the policy — checked at every start, so a weak value stops startup even when it is no
   * longer used — or else a generated 24-character one returned once. No default password exists.
   */
  async bootstrapAdmin(passwordFromEnv?: string): Promise<BootstrapResult> {
    if (passwordFromEnv !== undefined) checkPasswordPolicy(passwordFromEnv, 'DIRECTOR_ADMIN_PASSWORD');
    if (this.directory.countUsers() > 0) return { created: false, username: BOOTSTRAP_USERNAME };
    const generated = passwordFromEnv === undefined ? generatePassword(24) : undefined;
    const hash = await hashPassword(passwordFromEnv ?? generated ?? '');
    const created = this.#db.tx(() => {
      if (this.directory.countUsers() > 0) return false;
      const ws = this.directory.findWorkspace(BOOTSTRAP_WORKSPACE) ?? this.directory.createWorkspace(BOOTSTRAP_WORKSPACE);
      const user = this.directory.insertUser(BOOTSTRAP_USERNAME, hash);
      this.directory.addMembership(user.id, ws.id, 'admin');
      return true;
    });
    if (!created) return { created: false, username: BOOTSTRAP_USERNAME };
    return generated
      ? { created: true, username: BOOTSTRAP_USERNAME, generatedPassword: generated }
      : { created: true, username: BOOTSTRAP_USERNAME };
  }

  /**
   * Password login into `workspace` (id or name; default: the first workspace the user joined).
   * Unknown user, wrong password and disabled user all fail alike (401 `invalid_credentials`),
   * and take as long: unknown users are checked against a dummy hash.
   */
  async login(username: string, password: string, workspace?: string): Promise<SessionTokens> {
    const user = typeof username === 'string' && username.length <= 64 ? this.directory.userByName(username) : null;
    // Over-long input is refused before hashing; it cannot be a valid password anyway.
    const plausible = typeof password === 'string' && password.length <= PASSWORD_MAX_CHARS * 2;
    const ok = plausible && (await verifyPassword(password, user?.passwordHash ?? DUMMY_PASSWORD_HASH));
    if (!user || !ok || user.disabled) throw authFailure('invalid_credentials');
    const target = this.#selectWorkspace(user.id, workspace);
    return this.#startSession(user.id, target.workspace, target.role);
  }

  /**
   * Trades a refresh token for a new access token and a new refresh token (the old one is
   * spent). Reusing a spent refresh token revokes every session of that user.
   */
  async refresh(refreshToken: string): Promise<SessionTokens> {
    if (typeof refreshToken !== 'string') throw authFailure('malformed_token');
    const res = this.refreshTokens.consume(refreshToken);
    if (!res.ok) {
      this.#revokeAccess(res.revokedAccessJtis);
      throw authFailure(res.reason);
    }
    const { userId, workspace, family } = res.session;
    const user = this.directory.userById(userId);
    if (!user || user.disabled) throw authFailure('user_disabled');
    const role = this.directory.roleOf(userId, workspace);
    if (!role) throw notMember();
    return this.#startSession(userId, workspace, role, family);
  }

  /** Revokes the caller's access token and ends its session's refresh tokens. No-op for API keys. */
  logout(principal: Principal): void {
    if (principal.kind !== 'user' || !principal.tokenId) return;
    this.#revokeAccess([principal.tokenId, ...this.refreshTokens.revokeSessionOf(principal.tokenId)]);
  }

  /**
   * The principal for these credentials when it is cached and still valid (see #principals),
   * synchronously; null means call {@link authenticate}. Lets the request hook skip a promise.
   */
  cachedPrincipal(authorization: string | undefined, requestedWorkspace?: string): Principal | null {
    // The usual request names no workspace: its whole header is the key, with no parsing.
    if (requestedWorkspace === undefined) return authorization === undefined ? null : this.#cached(cacheKeyOf(authorization, undefined));
    const c = credentialsOf(authorization, requestedWorkspace);
    return typeof c === 'string' ? null : this.#cached(c.cacheKey);
  }

  /**
   * Establishes who is calling from an `Authorization: Bearer ...` header: a JWT (three
   * dot-separated parts) or an API key (`dk_...`). `requestedWorkspace` (the
   * `X-Director-Workspace` header, id or name) selects one of the user's workspaces; without
   * it, the token's own. Revocation, role and disabled state are read from the store, or from
   * the principal cache, which every such change made through this service empties, so
   * demotions take effect at once. Throws 401 (same message, `details.reason` varies) or 403
   * `not a member of this workspace`.
   */
  async authenticate(authorization: string | undefined, requestedWorkspace?: string): Promise<Principal> {
    const c = credentialsOf(authorization, requestedWorkspace);
    if (typeof c === 'string') throw authFailure(c);
    const { token, requested, cacheKey } = c;
    const hit = this.#cached(cacheKey);
    if (hit) return hit;
    const nowMs = this.#clock.nowMs();
    const epoch = this.#epoch.value;
    let principal: Principal;
    let expiresAtMs: number | null;
    if (token.startsWith('dk_')) ({ principal, expiresAtMs } = this.#fromApiKey(token, requested));
    else if (token.split('.').length === 3) ({ principal, expiresAtMs } = await this.#fromJwt(token, requested));
    else throw authFailure('malformed_token');
    if (this.#principals.size >= PRINCIPAL_CACHE_MAX) this.#principals.clear();
    this.#principals.set(cacheKey, {
      principal,
      epoch,
      untilMs: Math.min(nowMs + PRINCIPAL_CACHE_MS, expiresAtMs ?? Number.MAX_SAFE_INTEGER),
    });
    return principal;
  }

  /** Throws 403 naming `scope` unless the principal holds it. */
  requireScope(principal: Principal, scope: Scope): void {
    if (!principal.scopes.has(scope)) throw missingScope(scope);
  }

  // --- API keys, as seen by a caller -------------------------------------------------------

  /** Needs `keys:write`; the key's scopes must be within the caller's own. */
  createApiKey(principal: Principal, input: { name: string; scopes: readonly string[]; expiresAtMs?: number | null }): CreatedApiKey {
    this.requireScope(principal, 'keys:write');
    checkScopes(input.scopes, [...principal.scopes]);
    return this.apiKeys.create({ userId: principal.userId, workspace: principal.workspace, ...input });
  }

  /** Callers with `admin` see every key of the workspace; others, their own. */
  listApiKeys(principal: Principal): ApiKeyInfo[] {
    this.requireScope(principal, 'keys:write');
    return this.apiKeys.list(principal.workspace, this.#ownerFilter(principal));
  }

  revokeApiKey(principal: Principal, id: string): ApiKeyInfo {
    this.requireScope(principal, 'keys:write');
    return this.apiKeys.revoke(principal.workspace, id, this.#ownerFilter(principal));
  }

  rotateApiKey(principal: Principal, id: string): CreatedApiKey {
    this.requireScope(principal, 'keys:write');
    return this.apiKeys.rotate(principal.workspace, id, this.#ownerFilter(principal));
  }

  // --- admin helpers (routes check the `admin` scope first) --------------------------------

  createWorkspace(name: string): WorkspaceInfo {
    return this.directory.createWorkspace(name);
  }

  /** Creates a user with a role in one workspace (id or name). */
  async createUser(input: {
    username: string;
    password: string;
    workspace: string;
    role: Role;
  }): Promise<MemberInfo & { workspace: string }> {
    checkUsername(input.username);
    checkRole(input.role);
    checkPasswordPolicy(input.password);
    const ws = this.#workspaceOr404(input.workspace);
    const hash = await hashPassword(input.password);
    return this.#db.tx(() => {
      const user = this.directory.insertUser(input.username, hash);
      this.directory.addMembership(user.id, ws.id, input.role);
      return { userId: user.id, username: user.username, role: input.role, disabled: false, createdMs: user.createdMs, workspace: ws.id };
    });
  }

  /** Adds a user to a workspace (id or name) or changes their role there. */
  addMembership(userId: string, workspace: string, role: Role): void {
    checkRole(role);
    this.directory.addMembership(userId, this.#workspaceOr404(workspace).id, role);
  }

  listUsers(workspace: string): MemberInfo[] {
    return this.directory.listMembers(this.#workspaceOr404(workspace).id);
  }

  /** Disabling refuses the user's tokens and keys from the next request and ends their sessions. */
  setUserDisabled(userId: string, disabled: boolean): void {
    this.directory.setDisabled(userId, disabled);
    if (disabled) this.#revokeAccess(this.refreshTokens.revokeUser(userId));
  }

  // --- internals ---------------------------------------------------------------------------

  #cached(cacheKey: string): Principal | null {
    const hit = this.#principals.get(cacheKey);
    return hit && hit.epoch === this.#epoch.value && this.#clock.nowMs() < hit.untilMs ? hit.principal : null;
  }

  async #fromJwt(token: string, requested: string | undefined): Promise<{ principal: Principal; expiresAtMs: number }> {
    const claims = await this.accessTokens.verify(token);
    const user = this.directory.userById(claims.userId);
    if (!user) throw authFailure('unknown_user');
    if (user.disabled) throw authFailure('user_disabled');
    const workspace = requested === undefined ? claims.workspace : this.directory.findWorkspace(requested)?.id;
    const role = workspace === undefined ? null : this.directory.roleOf(user.id, workspace);
    if (!workspace || !role) throw notMember();
    return {
      principal: {
        kind: 'user',
        userId: user.id,
        username: user.username,
        keyId: null,
        workspace,
        role,
        scopes: new Set(ROLE_SCOPES[role]),
        tokenId: claims.jti,
      },
      expiresAtMs: claims.expiresAtMs,
    };
  }

  #fromApiKey(token: string, requested: string | undefined): { principal: Principal; expiresAtMs: number | null } {
    const key = this.apiKeys.authenticate(token);
    if (!key) throw authFailure('invalid_api_key');
    const user = this.directory.userById(key.userId);
    if (!user) throw authFailure('unknown_user');
    if (user.disabled) throw authFailure('user_disabled');
    if (requested !== undefined && this.directory.findWorkspace(requested)?.id !== key.workspace) {
      throw forbidden('this API key is bound to another workspace', { reason: 'key_workspace_mismatch' });
    }
    // A key never outlives or outgrows its creator: it holds its scopes only while the
    // creator's current role does, and stops working when they leave the workspace.
    const role = this.directory.roleOf(user.id, key.workspace);
    if (!role) throw authFailure('invalid_api_key');
    const allowed = ROLE_SCOPES[role];
    const scopes = new Set(key.scopes.filter((s) => allowed.includes(s)));
    return {
      principal: {
        kind: 'key',
        userId: user.id,
        username: user.username,
        keyId: key.keyId,
        workspace: key.workspace,
        role,
        scopes,
        tokenId: null,
      },
      expiresAtMs: key.expiresAtMs,
    };
  }

  #selectWorkspace(userId: string, requested: string | undefined): { workspace: string; role: Role } {
    if (requested === undefined || requested === '') {
      const first = this.directory.firstMembership(userId);
      if (!first) throw forbidden('not a member of any workspace', { reason: 'not_member' });
      return first;
    }
    const ws = this.directory.findWorkspace(requested);
    const role = ws ? this.directory.roleOf(userId, ws.id) : null;
    if (!ws || !role) throw notMember();
    return { workspace: ws.id, role };
  }

  async #startSession(userId: string, workspace: string, role: Role, family?: string): Promise<SessionTokens> {
    const access = await this.accessTokens.issue({ userId, workspace, role });
    const refresh = this.refreshTokens.issue({ userId, workspace, accessJti: access.jti, ...(family ? { family } : {}) });
    return {
      token: access.token,
      tokenType: 'Bearer',
      expiresAtMs: access.expiresAtMs,
      refreshToken: refresh.refreshToken,
      refreshExpiresAtMs: refresh.refreshExpiresAtMs,
      workspace,
    };
  }

  /** Revokes access-token ids until no token issued up to now could still be accepted. */
  #revokeAccess(jtis: readonly string[]): void {
    if (jtis.length === 0) return;
    const untilMs = this.accessTokens.maxAcceptedUntilMs();
    this.#db.tx(() => {
      for (const jti of jtis) this.accessTokens.revoke(jti, untilMs);
    });
  }

  #ownerFilter(principal: Principal): OwnerFilter {
    return principal.scopes.has('admin') ? {} : { userId: principal.userId };
  }

  #workspaceOr404(ref: string): WorkspaceInfo {
    const ws = this.directory.findWorkspace(ref);
    if (!ws) throw notFound('workspace', ref);
    return ws;
  }
}

/** The bearer token, the requested workspace and their principal-cache key; or why the header is unusable. */
function credentialsOf(
  authorization: string | undefined,
  requestedWorkspace: string | undefined,
): { token: string; requested: string | undefined; cacheKey: string } | 'missing_credentials' | 'malformed_header' {
  if (authorization === undefined || authorization.trim() === '') return 'missing_credentials';
  const m = /^Bearer +([^\s]+) *$/i.exec(authorization);
  if (!m) return 'malformed_header';
  const token = m[1]!;
  const requested = requestedWorkspace?.trim() ? requestedWorkspace.trim() : undefined;
  return { token, requested, cacheKey: cacheKeyOf(authorization, requested) };
}

/** The principal cache's key: the header as sent (a second spelling of the same token is a second entry), and the workspace asked for. */
const cacheKeyOf = (authorization: string, requested: string | undefined): string =>
  requested === undefined ? authorization : `${authorization}\n${requested}`;
