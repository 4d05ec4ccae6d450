import { DirectorApiError } from '../errors.ts';
import { follow, type FollowedEvent, type FollowOptions } from '../follow.ts';
import { unwrap, type Transport } from '../transport.ts';
import type { Approval, ChatEvent, ChatRequest, ChatResponse, ListApprovalsQuery, Page } from '../types.ts';
import { callOptions, idPath, openEventStream, type RequestOptions } from './request.ts';

/** A dropped stream whose answer named no session (`X-Director-Session-Id`): not retried, nothing would change. */
const unresumable = () =>
  new DirectorApiError({
    code: 'PROTOCOL_ERROR',
    message: 'the chat stream dropped and cannot be resumed: the answer named no session (X-Director-Session-Id)',
  });

const isTurnEnd = (e: FollowedEvent) => e.type === 'done' || e.type === 'error';

/** The data of a chat frame without the `type` the server repeats in it. */
const withoutType = (e: FollowedEvent): ChatEvent => {
  const { type: _t, ...data } = e.data;
  return { id: e.id, type: e.type, data } as ChatEvent;
};

/** `client.chat.approvals`: tool calls waiting for a person, and the decisions. */
export class Approvals {
  readonly #t: Transport;

  constructor(t: Transport) {
    this.#t = t;
  }

  /** Newest first; `{status: 'pending'}` for what waits. */
  async list(query: ListApprovalsQuery = {}): Promise<Page<Approval>> {
    return unwrap(await this.#t.api.GET('/v1/approvals', { params: { query } }));
  }

  async get(id: string): Promise<Approval> {
    return unwrap(await this.#t.api.GET('/v1/approvals/{id}', idPath(id)));
  }

  /**
   * Lets the call run (only that call: the approval is bound to its tool, call id and input).
   * `inputHash` (from the `tool_approval` event) makes the decision apply only to that input;
   * `autoApprove` also approves this agent's later calls of the tool, for the session or for good.
   */
  async approve(id: string, opts: { inputHash?: string; autoApprove?: 'session' | 'permanent' } = {}): Promise<Approval> {
    return unwrap(
      await this.#t.api.POST('/v1/approvals/{id}/approve', {
        params: { path: { id }, ...(opts.autoApprove ? { query: { auto_approve: opts.autoApprove } } : {}) },
        // The body is optional (the document says so): none unless the decision is bound to an input.
        ...(opts.inputHash ? { body: { inputHash: opts.inputHash } } : {}),
      }),
    );
  }

  /** The call does not run; the model is told so (with `reason`). */
  async deny(id: string, opts: { reason?: string; inputHash?: string } = {}): Promise<Approval> {
    return unwrap(
      await this.#t.api.POST('/v1/approvals/{id}/deny', {
        ...idPath(id),
        body: { ...(opts.reason ? { reason: opts.reason } : {}), ...(opts.inputHash ? { inputHash: opts.inputHash } : {}) },
      }),
    );
  }
}

/**
 * `client.chat`: one turn of an agent at a time per session. {@link send} waits for the whole
 * turn (approvals included); {@link stream} yields its events as they happen:
 *
 * ```ts
 * for await (const e of client.chat.stream({ agent: 'coder', message: 'run the tests' })) {
 *   if (e.type === 'content') process.stdout.write(e.data.text);
 *   if (e.type === 'tool_approval') await client.chat.approvals.approve(e.data.approvalId, { inputHash: e.data.inputHash });
 * }
 * ```
 */
export class Chat {
  readonly approvals: Approvals;
  readonly #t: Transport;

  constructor(t: Transport) {
    this.#t = t;
    this.approvals = new Approvals(t);
  }

  /** Sends a message and waits for the whole turn: `{sessionId, response, usage, cost}`. */
  async send(request: ChatRequest, opts: RequestOptions = {}): Promise<ChatResponse> {
    return unwrap(await this.#t.api.POST('/v1/chat', { body: request, ...callOptions(opts) }));
  }

  /**
   * Sends a message and yields the turn's events (`content`, `thinking`, `tool_start`,
   * `tool_approval`, `tool_end`, `usage`) until its `done` or `error`. A dropped connection is
   * resumed on the session's stream after the last event yielded; the turn never depends on it.
   * The message is POSTed once: when that request gets no answer at all (the connection failed
   * before the response's headers), its error is thrown and nothing is sent again, since the
   * server may have started the turn (`resume` follows a session's stream).
   */
  stream(request: ChatRequest, opts: Omit<FollowOptions, 'after'> = {}): AsyncGenerator<ChatEvent> {
    // The session the server runs the turn in, as its answer named it; null until the POST answered.
    let sessionId: string | null = null;
    // The event id this turn's events come after (X-Director-Turn-After): where a stream dropped
    // before its first event resumes, so an earlier turn's kept events (and its `done`) are not replayed.
    let turnAfter: number | undefined;
    let posted = false;
    // The POST's failure when it got no answer: the server may have taken the message and started
    // the turn, so it is not sent again, and with no answer there is no turn known to resume.
    let unanswered: unknown = null;
    const events = follow(
      {
        open: async (after, signal) => {
          if (!posted) {
            // Sent once, whatever becomes of it: a reconnect only ever resumes the event stream.
            posted = true;
            let res: Response;
            try {
              res = await this.#t.request('POST', '/v1/chat', {
                headers: { accept: 'text/event-stream', 'content-type': 'application/json' },
                body: JSON.stringify(request),
                ...(signal ? { signal } : {}),
              });
            } catch (err) {
              unanswered = err;
              throw err;
            }
            sessionId = res.headers.get('x-director-session-id') || request.sessionId || null;
            const start = Number(res.headers.get('x-director-turn-after') ?? Number.NaN);
            if (Number.isSafeInteger(start) && start >= 0) turnAfter = start;
            return res;
          }
          // Without the session the turn runs in there is nothing to resume: `/v1/chat//events` is no stream.
          if (!sessionId) throw unresumable();
          return this.#resume(sessionId, after ?? turnAfter, signal);
        },
        isLast: isTurnEnd,
        reopenable: (err) => err !== unanswered,
      },
      opts,
    );
    return mapEvents(events);
  }

  /** A session's chat events after `after` (what was kept, then live until the turn in progress ends). */
  resume(sessionId: string, opts: FollowOptions = {}): AsyncGenerator<ChatEvent> {
    return mapEvents(follow({ open: (after, signal) => this.#resume(sessionId, after, signal), isLast: isTurnEnd }, opts));
  }

  #resume(sessionId: string, after: number | undefined, signal: AbortSignal | undefined): Promise<Response> {
    return openEventStream(this.#t, `/v1/chat/${encodeURIComponent(sessionId)}/events`, after, signal);
  }
}

async function* mapEvents(events: AsyncGenerator<FollowedEvent>): AsyncGenerator<ChatEvent> {
  for await (const e of events) yield withoutType(e);
}
