import type { Client } from 'openapi-fetch';
import type { paths } from './generated/openapi.ts';
import { Agents } from './resources/agents.ts';
import { Auth } from './resources/auth.ts';
import { Chat } from './resources/chat.ts';
import { Events } from './resources/events.ts';
import { Networks } from './resources/networks.ts';
import { Sandboxes } from './resources/sandboxes.ts';
import { Audit, Security } from './resources/security.ts';
import { Sessions } from './resources/sessions.ts';
import { Workflows } from './resources/workflows.ts';
import { Transport, type ClientOptions } from './transport.ts';

/**
 * The Director client: one namespace per API area, each a thin layer over the typed client
 * generated from the served OpenAPI document.
 *
 * ```ts
 * const client = new DirectorClient({ baseURL: 'http://127.0.0.1:8080/v1', token });
 * const sandbox = await client.sandboxes.create({ image: 'director/base:latest' });
 * const { stdout } = await sandbox.run(['python3', '-c', 'print(6*7)']);
 * ```
 *
 * Every route of the document is also callable, typed, through {@link api} (answers in the
 * envelope; pass them to `unwrap`). New areas are there as soon as the types are regenerated,
 * and get a namespace here when they need conveniences.
 */
export class DirectorClient {
  readonly transport: Transport;
  /** openapi-fetch over the generated `paths`: `client.api.GET('/v1/sandboxes/{id}', { params: { path: { id } } })`. */
  readonly api: Client<paths>;
  readonly auth: Auth;
  readonly sandboxes: Sandboxes;
  readonly networks: Networks;
  readonly events: Events;
  readonly security: Security;
  readonly audit: Audit;
  readonly sessions: Sessions;
  readonly workflows: Workflows;
  readonly agents: Agents;
  readonly chat: Chat;

  constructor(opts: ClientOptions) {
    this.transport = new Transport(opts);
    this.api = this.transport.api;
    this.auth = new Auth(this.transport);
    this.sandboxes = new Sandboxes(this.transport);
    this.networks = new Networks(this.transport);
    this.events = new Events(this.transport);
    this.security = new Security(this.transport);
    this.audit = new Audit(this.transport);
    this.sessions = new Sessions(this.transport);
    this.workflows = new Workflows(this.transport);
    this.agents = new Agents(this.transport);
    this.chat = new Chat(this.transport);
  }

  /** A client logged in with a password (tokens refreshed as they expire; `onTokens` sees each new pair). */
  static async login(
    opts: Omit<ClientOptions, 'token' | 'refreshToken' | 'tokenExpiresAt'> & { username: string; password: string },
  ): Promise<DirectorClient> {
    const { username, password, ...rest } = opts;
    const client = new DirectorClient(rest);
    await client.auth.login({ username, password, ...(rest.workspace ? { workspace: rest.workspace } : {}) });
    return client;
  }
}
