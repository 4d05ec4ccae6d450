import { unwrap, type Transport } from '../transport.ts';
import { idPath } from './request.ts';
import type { AgentEventsPage, AgentInfo, CreateAgentRequest, ListAgentsQuery, Page } from '../types.ts';

/** `client.agents`: LLM-driven agents of a department, whose tools run in the session's sandboxes. */
export class Agents {
  readonly #t: Transport;

  constructor(t: Transport) {
    this.#t = t;
  }

  async create(request: CreateAgentRequest): Promise<AgentInfo> {
    return unwrap(await this.#t.api.POST('/v1/agents', { body: request }));
  }

  async get(id: string): Promise<AgentInfo> {
    return unwrap(await this.#t.api.GET('/v1/agents/{id}', idPath(id)));
  }

  async list(query: ListAgentsQuery = {}): Promise<Page<AgentInfo>> {
    return unwrap(await this.#t.api.GET('/v1/agents', { params: { query } }));
  }

  /** Deletes it: its turn in progress is cancelled; its messages stay in the session. */
  async delete(id: string): Promise<void> {
    unwrap(await this.#t.api.DELETE('/v1/agents/{id}', idPath(id)));
  }

  /** Its recent events (a ring buffer): poll with `after` = the last `seq` seen. */
  async events(id: string, query: { after?: number; limit?: number } = {}): Promise<AgentEventsPage> {
    return unwrap(await this.#t.api.GET('/v1/agents/{id}/events', { params: { path: { id }, query } }));
  }
}
