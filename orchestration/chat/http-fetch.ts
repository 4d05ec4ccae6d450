import { Agent as HttpAgent, request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';

/** A `fetch` for the AI SDK's providers, and its connections. */
export interface ProviderFetch {
  fetch: typeof globalThis.fetch;
  /** Closes the kept-alive connections (shutdown). */
  close(): void;
}

const NULL_BODY = new Set([101, 103, 204, 205, 304]);

/** What undici's fetch rejects with when it cannot connect, so the SDK classes it the same way (retryable APICallError). */
const fetchFailed = (cause: unknown) => new TypeError('fetch failed', { cause });

/**
 * The `fetch` the chat providers call the model with: `node:http`/`node:https` with kept-alive
 * connections, answering a WHATWG `Response` whose body streams as the bytes arrive.
 *
 * Why not the global (undici) fetch: on this path it costs about a millisecond more per model
 * call (its request/response machinery and body streams), measured by `npm run bench chat`, and
 * a chat turn makes one model call per tool round. Only what the SDK's providers send goes this
 * way: a `string` or bytes body (their JSON), `http:`/`https:` URLs; anything else (a `Request`,
 * a stream body) is handed to the global fetch unchanged.
 *
 * Differences from the global fetch, on purpose: redirects are not followed (a 3xx reaches the
 * SDK as the HTTP error it is; a provider endpoint that redirects is misconfigured, and following
 * would carry the key elsewhere); no `accept-encoding` is offered (an encoded body is still
 * decoded). An aborted signal rejects with, or errors the body with, the signal's reason, as the
 * global fetch does; a connection failure rejects with `TypeError('fetch failed')` with the cause.
 */
export function createProviderFetch(): ProviderFetch {
  // LIFO: the connection used last is the one most likely still open on the provider's side.
  const http = new HttpAgent({ keepAlive: true, scheduling: 'lifo' });
  const https = new HttpsAgent({ keepAlive: true, scheduling: 'lifo' });

  const nodeFetch = (input: string | URL | Request, init: RequestInit = {}): Promise<Response> => {
    const body = init.body;
    if (input instanceof Request || (body != null && typeof body !== 'string' && !(body instanceof Uint8Array))) {
      return globalThis.fetch(input, init);
    }
    const url = input instanceof URL ? input : new URL(input);
    const secure = url.protocol === 'https:';
    if (!secure && url.protocol !== 'http:') return globalThis.fetch(input, init);
    const signal = init.signal ?? null;
    if (signal?.aborted) return Promise.reject(signal.reason as Error);

    const headers = headersOf(init.headers);
    if (body != null) headers['content-length'] = typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength;

    return new Promise<Response>((resolve, reject) => {
      let answered = false;
      const req = (secure ? httpsRequest : httpRequest)(
        url,
        { method: init.method ?? 'GET', headers, agent: secure ? https : http },
        (res) => {
          answered = true;
          resolve(toResponse(res, signal));
        },
      );
      const onAbort = () => req.destroy(signal!.reason as Error);
      signal?.addEventListener('abort', onAbort, { once: true });
      req.once('close', () => signal?.removeEventListener('abort', onAbort));
      req.once('error', (err) => {
        if (answered) return;
        reject(signal?.aborted ? (signal.reason as Error) : fetchFailed(err));
      });
      req.end(body ?? undefined);
    });
  };

  return {
    fetch: nodeFetch,
    close: () => {
      http.destroy();
      https.destroy();
    },
  };
}

function headersOf(h: RequestInit['headers']): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  if (!h) return out;
  if (h instanceof Headers || Array.isArray(h)) {
    for (const [k, v] of h instanceof Headers ? h.entries() : h) out[k.toLowerCase()] = v;
    return out;
  }
  for (const [k, v] of Object.entries(h as Record<string, string | undefined>)) if (v !== undefined) out[k.toLowerCase()] = v;
  return out;
}

/** The response as a WHATWG Response whose body is read as it arrives (paused while nobody reads it). */
function toResponse(res: IncomingMessage, signal: AbortSignal | null): Response {
  const status = res.statusCode ?? 0;
  const headers = new Headers();
  const raw = res.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) headers.append(raw[i]!, raw[i + 1]!);
  if (NULL_BODY.has(status)) {
    res.resume();
    return new Response(null, { status, statusText: res.statusMessage ?? '', headers });
  }
  const encoding = (res.headers['content-encoding'] ?? '').trim().toLowerCase();
  const decoder =
    encoding === 'gzip' || encoding === 'x-gzip'
      ? createGunzip()
      : encoding === 'deflate'
        ? createInflate()
        : encoding === 'br'
          ? createBrotliDecompress()
          : null;
  const source = decoder ? res.pipe(decoder) : res;
  if (decoder) res.once('error', (err) => decoder.destroy(err));
  let ended = false;
  const stream = new ReadableStream<Uint8Array>(
    {
      start(c) {
        source.on('data', (chunk: Buffer) => {
          c.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
          if ((c.desiredSize ?? 1) <= 0) source.pause();
        });
        source.once('end', () => {
          ended = true;
          c.close();
        });
        const fail = (err: unknown) => {
          if (ended) return;
          ended = true;
          c.error(signal?.aborted ? signal.reason : err instanceof Error ? err : new TypeError('terminated'));
        };
        source.once('error', fail);
        // A connection that closes before the body ended (the provider went away).
        res.once('close', () => {
          if (!res.complete) fail(new TypeError('terminated', { cause: signal?.reason }));
        });
      },
      pull() {
        source.resume();
      },
      cancel() {
        ended = true;
        res.destroy();
      },
      // Up to 64 KiB waits for the reader before the socket is paused (not every chunk).
    },
    new ByteLengthQueuingStrategy({ highWaterMark: 65_536 }),
  );
  return new Response(stream, { status, statusText: res.statusMessage ?? '', headers });
}
