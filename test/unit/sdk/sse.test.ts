import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseSse, type SseEvent } from '../../../sdk/sse.ts';

/** A body that delivers `parts` as separate chunks, the way a network splits them. */
const body = (parts: (string | Uint8Array)[]) =>
  new ReadableStream<Uint8Array>({
    start(c) {
      for (const p of parts) c.enqueue(typeof p === 'string' ? new TextEncoder().encode(p) : p);
      c.close();
    },
  });

async function all(parts: (string | Uint8Array)[]): Promise<SseEvent[]> {
  const out: SseEvent[] = [];
  for await (const e of parseSse(body(parts))) out.push(e);
  return out;
}

test('parses the execute stream: named events with ids, JSON data', async () => {
  const events = await all(['id: 1\nevent: stdout\ndata: {"data":"hi\\n"}\n\n', 'id: 2\nevent: exit\ndata: {"exitCode":0}\n\n']);
  assert.equal(events, [
    { event: 'stdout', data: '{"data":"hi\\n"}', id: '1' },
    { event: 'exit', data: '{"exitCode":0}', id: '2' },
  ]);
});

test('events split anywhere across chunks, even inside a multi-byte character or a CRLF', async () => {
  const text = 'id: 7\r\nevent: stdout\r\ndata: {"data":"é€"}\r\n\r\n';
  const bytes = new TextEncoder().encode(text);
  for (let cut = 1; cut < bytes.length; cut++) {
    const events = await all([bytes.slice(0, cut), bytes.slice(cut)]);
    assert.equal(events, [{ event: 'stdout', data: '{"data":"é€"}', id: '7' }], `cut at ${cut}`);
  }
});

test('joins data lines, skips comments, defaults the event name, keeps the last id', async () => {
  const events = await all([': keep-alive\n', 'data: a\ndata: b\n\n', 'id: 9\n\n', 'event: x\ndata\n\n', 'data:no-space\n\n']);
  assert.equal(events, [
    { event: 'message', data: 'a\nb', id: undefined },
    { event: 'x', data: '', id: '9' },
    { event: 'message', data: 'no-space', id: '9' },
  ]);
});

test('a last event without its blank line still arrives when the stream ends', async () => {
  assert.equal(await all(['event: exit\ndata: {}']), [{ event: 'exit', data: '{}', id: undefined }]);
});

test('a consumer that stops early cancels the body', async () => {
  let cancelled = false;
  const stream = new ReadableStream<Uint8Array>({
    pull(c) {
      c.enqueue(new TextEncoder().encode('data: x\n\n'));
    },
    cancel() {
      cancelled = true;
    },
  });
  for await (const e of parseSse(stream)) {
    assert.is(e.data, 'x');
    break;
  }
  assert.ok(cancelled);
});

test.run();
