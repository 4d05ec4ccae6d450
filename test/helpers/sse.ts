/**
 * A server-sent events client over fetch for tests: sends the request, parses `id` / `event` /
 * `data` frames as they arrive, and lets the test stop reading (dropping the connection) when a
 * condition is met.
 */

export interface SseEvent {
  id: number | null;
  event: string;
  data: Record<string, unknown>;
}

export interface SseResult {
  status: number;
  headers: Headers;
  events: SseEvent[];
  /** The body when the answer was not a stream (an error envelope). */
  text: string;
  /** True when the server ended the stream (false when `until` cut it). */
  ended: boolean;
}

export interface SseOptions {
  method?: string;
  token?: string;
  body?: unknown;
  headers?: Record<string, string>;
  /** Stop reading (and drop the connection) once this returns true for an event just received. */
  until?: (e: SseEvent, all: SseEvent[]) => boolean;
  /** Called for each event as it arrives (e.g. to approve a `tool_approval`). */
  onEvent?: (e: SseEvent) => void | Promise<void>;
  timeoutMs?: number;
}

export async function sse(base: string, path: string, opts: SseOptions = {}): Promise<SseResult> {
  const headers: Record<string, string> = { accept: 'text/event-stream', ...(opts.headers ?? {}) };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  const ac = new AbortController();
  const timer = setTimeout(
    () => ac.abort(new Error(`SSE ${path} did not end within ${opts.timeoutMs ?? 60_000} ms`)),
    opts.timeoutMs ?? 60_000,
  );
  try {
    const res = await fetch(`${base}${path}`, {
      method: opts.method ?? (opts.body === undefined ? 'GET' : 'POST'),
      headers,
      ...(opts.body === undefined ? {} : { body: JSON.stringify(opts.body) }),
      signal: ac.signal,
    });
    if (!(res.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
      return { status: res.status, headers: res.headers, events: [], text: await res.text(), ended: true };
    }
    const events: SseEvent[] = [];
    const decoder = new TextDecoder();
    let buf = '';
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return { status: res.status, headers: res.headers, events, text: '', ended: true };
      buf += decoder.decode(value, { stream: true });
      let cut: number;
      while ((cut = buf.indexOf('\n\n')) >= 0) {
        const frame = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        const e = parseFrame(frame);
        if (!e) continue;
        events.push(e);
        await opts.onEvent?.(e);
        if (opts.until?.(e, events)) {
          ac.abort();
          await reader.cancel().catch(() => undefined);
          return { status: res.status, headers: res.headers, events, text: '', ended: false };
        }
      }
    }
  } finally {
    clearTimeout(timer);
  }
}

function parseFrame(frame: string): SseEvent | null {
  let id: number | null = null;
  let event = 'message';
  const data: string[] = [];
  for (const line of frame.split('\n')) {
    if (line.startsWith(':')) continue;
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
    if (field === 'id') id = Number(value);
    else if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
  }
  if (!data.length) return null;
  return { id, event, data: JSON.parse(data.join('\n')) as Record<string, unknown> };
}
