import { unwrap, type Transport } from '../transport.ts';
import type {
  CreateSessionRequest,
  ListSessionsQuery,
  MessagesQuery,
  Page,
  SessionInfo,
  SessionMessage,
  UpdateSessionRequest,
} from '../types.ts';
import { allPages, callOptions, idPath, type CreateOptions } from './request.ts';

/**
 * `client.sessions`: the Session API. A session owns what is made in it (sandboxes, departments,
 * agents, workflows, checkpoints); it ends when its timeout passes, when it is ended
 * ({@link end}: `completed`) or deleted (everything it owns goes with it).
 */
export class Sessions {
  readonly #t: Transport;

  constructor(t: Transport) {
    this.#t = t;
  }

  async create(request: CreateSessionRequest, opts: CreateOptions = {}): Promise<SessionInfo> {
    const res = await this.#t.api.POST('/v1/sessions', {
      body: request,
      ...callOptions(opts),
    });
    return unwrap(res);
  }

  async get(id: string): Promise<SessionInfo> {
    return unwrap(await this.#t.api.GET('/v1/sessions/{id}', idPath(id)));
  }

  /** One page of sessions, newest first (without `status`: all but terminated ones). */
  async list(query: ListSessionsQuery = {}): Promise<Page<SessionInfo>> {
    return unwrap(await this.#t.api.GET('/v1/sessions', { params: { query } }));
  }

  /** Every session matching `query`, page after page. */
  all(query: Omit<ListSessionsQuery, 'offset'> = {}): AsyncGenerator<SessionInfo> {
    return allPages((q) => this.list(q), query);
  }

  /** Renames, pauses/resumes, or merges `config` key by key (`null` removes an optional key). */
  async update(id: string, request: UpdateSessionRequest): Promise<SessionInfo> {
    return unwrap(await this.#t.api.PUT('/v1/sessions/{id}', { ...idPath(id), body: request }));
  }

  /** Ends it (`completed`): its sandboxes stop and its running work is cancelled; its records stay readable. */
  async end(id: string): Promise<SessionInfo> {
    return this.update(id, { status: 'completed' });
  }

  /** Deletes it and everything it owns (running work cancelled, sandboxes removed); then it answers 404. */
  async delete(id: string): Promise<void> {
    unwrap(await this.#t.api.DELETE('/v1/sessions/{id}', idPath(id)));
  }

  /** One page of the session's chat messages, in order (`after` pages by `seq`). */
  async messages(id: string, query: MessagesQuery = {}): Promise<Page<SessionMessage>> {
    return unwrap(await this.#t.api.GET('/v1/sessions/{id}/messages', { params: { path: { id }, query } }));
  }

  /** Chat telemetry: turns, tokens, cost, tool calls and approvals. */
  async stats(id: string): Promise<Record<string, unknown>> {
    return unwrap(await this.#t.api.GET('/v1/sessions/{id}/stats', idPath(id)));
  }
}
