/**
 * What every resource namespace builds its requests from: the path of one record, the per-call
 * options (abort signal, `Idempotency-Key`), and offset paging. One copy each, so a namespace
 * added later says only what is its own.
 */
import type { Transport } from '../transport.ts';
import type { Page } from '../types.ts';

export interface RequestOptions {
  signal?: AbortSignal;
}

export interface CreateOptions extends RequestOptions {
  /** Sent as `Idempotency-Key`: a retried create with the same key returns the first result. */
  idempotencyKey?: string;
}

/** openapi-fetch's `params` for a route of one record (`/v1/.../{id}`). */
export const idPath = (id: string) => ({ params: { path: { id } } });

/** The openapi-fetch options for `opts`: its signal, and its idempotency key as the header. */
export function callOptions(opts: CreateOptions): { headers?: { 'idempotency-key': string }; signal?: AbortSignal } {
  return {
    ...(opts.idempotencyKey ? { headers: { 'idempotency-key': opts.idempotencyKey } } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  };
}

/**
 * Every item of an offset-paged list, page after page of `limit` (default 100), until a short
 * page or `total` says there is no more.
 */
export async function* allPages<T, Q extends { limit?: number; offset?: number }>(
  list: (query: Q) => Promise<Page<T>>,
  query: Omit<Q, 'offset'>,
): AsyncGenerator<T> {
  const limit = query.limit ?? 100;
  for (let offset = 0; ; offset += limit) {
    const page = await list({ ...query, limit, offset } as Q);
    yield* page.items;
    if (page.items.length < limit || offset + limit >= page.total) return;
  }
}

/** Opens a resumable event stream (`GET path`) after event `after` (`Last-Event-ID`; undefined: from the start). */
export function openEventStream(t: Transport, path: string, after: number | undefined, signal: AbortSignal | undefined): Promise<Response> {
  return t.request('GET', path, {
    headers: { accept: 'text/event-stream', ...(after === undefined ? {} : { 'last-event-id': String(after) }) },
    ...(signal ? { signal } : {}),
  });
}
