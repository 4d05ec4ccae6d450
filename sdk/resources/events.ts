import { EventSubscription, type SubscribeOptions } from '../events.ts';
import { unwrap, type Transport } from '../transport.ts';
import type { EventsPage, EventsQuery, EventSummary, ExportQuery, SecurityEvent } from '../types.ts';

/** `client.events`: the one security event stream, stored (REST) and live (the WebSocket hub). */
export class Events {
  readonly #t: Transport;

  constructor(t: Transport) {
    this.#t = t;
  }

  /** Live messages of hub channels, with auto-reconnect and resume by cursor (see {@link EventSubscription}). */
  subscribe(opts: SubscribeOptions = {}): EventSubscription {
    return new EventSubscription(this.#t, opts);
  }

  /** One page of stored events, oldest first; page on with `after: page.nextCursor`. */
  async list(query: EventsQuery = {}): Promise<EventsPage> {
    return unwrap(await this.#t.api.GET('/v1/security/events', { params: { query } }));
  }

  /** Every stored event matching `query` from its `after` on, page after page. */
  async *all(query: Omit<EventsQuery, 'after'> & { after?: string } = {}): AsyncGenerator<SecurityEvent> {
    let after = query.after;
    for (;;) {
      const page = await this.list({ ...query, ...(after === undefined ? {} : { after }), limit: query.limit ?? 1000 });
      yield* page.items;
      if (!page.hasMore || page.nextCursor === null) return;
      after = page.nextCursor;
    }
  }

  /** Counts over a window (`24h`, `7d` ...): by type, severity and sandbox, top offenders and a trend. */
  async summary(query: { window?: string; buckets?: number } = {}): Promise<EventSummary> {
    return unwrap(await this.#t.api.GET('/v1/security/events/summary', { params: { query } }));
  }

  /** NDJSON export (one event per line, with its OCSF mapping), streamed. */
  async export(query: ExportQuery = {}, opts: { signal?: AbortSignal } = {}): Promise<ReadableStream<Uint8Array>> {
    const res = await this.#t.request('GET', '/v1/security/events/export', {
      query,
      headers: { accept: 'application/x-ndjson' },
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    if (!res.body) throw new Error('the export answered without a body');
    return res.body;
  }
}
