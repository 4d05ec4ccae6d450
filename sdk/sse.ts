/** A server-sent event as the stream carries it. */
export interface SseEvent {
  /** `message` when the event named none. */
  event: string;
  data: string;
  id: string | undefined;
}

/**
 * Parses a `text/event-stream` body into events (the WHATWG rules the API follows: `field: value`
 * lines, `data` lines joined with newlines, a blank line ends an event, `:` lines are comments;
 * CR, LF and CRLF all end lines).
 */
export async function* parseSse(body: ReadableStream<Uint8Array>): AsyncGenerator<SseEvent> {
  const decoder = new TextDecoder();
  let buffer = '';
  let event = '';
  let data: string[] = [];
  let id: string | undefined;
  const line = function* (text: string): Generator<SseEvent> {
    if (text === '') {
      if (data.length) yield { event: event || 'message', data: data.join('\n'), id };
      event = '';
      data = [];
      return;
    }
    if (text.startsWith(':')) return;
    const colon = text.indexOf(':');
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? '' : text.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
    else if (field === 'id') id = value;
  };
  const reader = body.getReader();
  let finished = false;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
      // A trailing CR may be the first half of a CRLF split across chunks: keep it until more arrives.
      const re = /\r\n|\r(?!$)|\n/g;
      let start = 0;
      for (let m = re.exec(buffer); m; m = re.exec(buffer)) {
        yield* line(buffer.slice(start, m.index));
        start = m.index + m[0].length;
      }
      buffer = buffer.slice(start);
      if (done) {
        finished = true;
        if (buffer) yield* line(buffer.replace(/\r$/, ''));
        yield* line('');
        return;
      }
    }
  } finally {
    // A consumer that stops early cancels the body, which closes the connection.
    if (finished) reader.releaseLock();
    else await reader.cancel().catch(() => undefined);
  }
}
