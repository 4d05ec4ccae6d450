import { follow, type FollowOptions } from '../follow.ts';
import { unwrap, type Transport } from '../transport.ts';
import type {
  CreateWorkflowRequest,
  ListWorkflowsQuery,
  Page,
  StartWorkflowRequest,
  WorkflowEvent,
  WorkflowInfo,
  WorkflowStatus,
} from '../types.ts';
import { callOptions, idPath, openEventStream, type CreateOptions, type RequestOptions } from './request.ts';

/**
 * `client.workflows`: workflows of steps (`execute`, `verify`, `checkpoint`) run in a sandbox of
 * a session, with retries that roll back to the last checkpoint.
 *
 * ```ts
 * const wf = await client.workflows.create({ sessionId, name: 'test', steps: [
 *   { type: 'execute', command: 'npm test' }, { type: 'verify', criteria: 'tests pass' } ] });
 * await client.workflows.start(wf.id);
 * for await (const e of client.workflows.events(wf.id)) if (e.type === 'step') console.log(e.data.progress);
 * const { run } = await client.workflows.status(wf.id);
 * ```
 */
export class Workflows {
  readonly #t: Transport;

  constructor(t: Transport) {
    this.#t = t;
  }

  /** Creates it (checked whole now: a criterion that cannot be checked is a 400 naming it); nothing runs until {@link start}. */
  async create(request: CreateWorkflowRequest, opts: CreateOptions = {}): Promise<WorkflowInfo> {
    const res = await this.#t.api.POST('/v1/workflows', {
      body: request,
      ...callOptions(opts),
    });
    return unwrap(res);
  }

  async get(id: string): Promise<WorkflowInfo> {
    return unwrap(await this.#t.api.GET('/v1/workflows/{id}', idPath(id)));
  }

  /** One page of workflows, newest first; `status` filters by the latest run's state. */
  async list(query: ListWorkflowsQuery = {}): Promise<Page<WorkflowInfo>> {
    return unwrap(await this.#t.api.GET('/v1/workflows', { params: { query } }));
  }

  /**
   * Starts a run (`running`, or `queued` behind its department's limit). One run at a time per
   * workflow: a start while one is going is refused with 409. With `idempotencyKey` a retried
   * start gets the first answer.
   */
  async start(id: string, request: StartWorkflowRequest = {}, opts: CreateOptions = {}): Promise<WorkflowStatus> {
    const res = await this.#t.api.POST('/v1/workflows/{id}/start', {
      ...idPath(id),
      body: request,
      ...callOptions(opts),
    });
    return unwrap(res);
  }

  /** The latest run: state, current step, every attempt, rollbacks, and the reason when it did not complete. */
  async status(id: string, opts: RequestOptions = {}): Promise<WorkflowStatus> {
    return unwrap(await this.#t.api.GET('/v1/workflows/{id}/status', { ...idPath(id), ...callOptions(opts) }));
  }

  /** Cancels the run going (its command is killed); 409 when none is. */
  async cancel(id: string): Promise<WorkflowStatus> {
    return unwrap(await this.#t.api.POST('/v1/workflows/{id}/cancel', idPath(id)));
  }

  /**
   * The workflow's events (its log, then live) until its latest run has ended. A dropped
   * connection is resumed after the last event yielded (`Last-Event-ID`), so nothing is missed
   * or repeated; `after` starts after a known id. Stopping the iteration never affects the run.
   */
  events(id: string, opts: FollowOptions = {}): AsyncGenerator<WorkflowEvent> {
    const path = `/v1/workflows/${encodeURIComponent(id)}/events`;
    return follow(
      {
        open: (after, signal) => openEventStream(this.#t, path, after, signal),
        isLast: () => false,
      },
      opts,
    ) as AsyncGenerator<WorkflowEvent>;
  }
}
