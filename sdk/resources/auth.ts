import { unwrap, type Transport } from '../transport.ts';
import type { ApiKey, CreateApiKeyRequest, LoginRequest, Me, Tokens } from '../types.ts';

/** `client.auth`: sessions, identity and API keys. */
export class Auth {
  readonly #t: Transport;

  constructor(t: Transport) {
    this.#t = t;
  }

  /** Logs in with a password; the client uses the new tokens from then on (and refreshes them). */
  async login(body: LoginRequest): Promise<Tokens> {
    const tokens = unwrap(await this.#t.api.POST('/v1/auth/login', { body }));
    this.#t.useTokens(tokens);
    return tokens;
  }

  /** Revokes the current access token and its refresh tokens. */
  async logout(): Promise<void> {
    unwrap(await this.#t.api.POST('/v1/auth/logout'));
  }

  /** Who the credentials belong to: user, workspace, role and scopes. */
  async me(): Promise<Me> {
    return unwrap(await this.#t.api.GET('/v1/auth/me')) as unknown as Me;
  }

  readonly apiKeys = {
    /** The key itself (`key`) is in this answer only. */
    create: async (body: CreateApiKeyRequest): Promise<ApiKey> => unwrap(await this.#t.api.POST('/v1/api-keys', { body })),
    list: async (): Promise<ApiKey[]> => unwrap(await this.#t.api.GET('/v1/api-keys')),
    revoke: async (id: string): Promise<ApiKey> => unwrap(await this.#t.api.DELETE('/v1/api-keys/{id}', { params: { path: { id } } })),
    rotate: async (id: string): Promise<ApiKey> => unwrap(await this.#t.api.POST('/v1/api-keys/{id}/rotate', { params: { path: { id } } })),
  };

  /** Creates a workspace; the caller becomes its admin (needs `admin`). */
  async createWorkspace(name: string): Promise<{ id: string; name: string; createdAt: string }> {
    return unwrap(await this.#t.api.POST('/v1/workspaces', { body: { name } })) as unknown as {
      id: string;
      name: string;
      createdAt: string;
    };
  }
}
