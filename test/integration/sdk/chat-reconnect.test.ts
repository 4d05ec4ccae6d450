/**
 * The SDK's chat stream against a real server (real engine, a local fake provider speaking
 * OpenAI's wire format) when the connection breaks: the user's message is POSTed once, ever;
 * a stream that dropped after the answer began resumes on the session's event stream
 * (`Last-Event-ID`) and misses or repeats nothing; a POST that got no answer is not sent again.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ConnectionError, DirectorClient, type ChatEvent } from '../../../sdk/index.ts';
import { startChatApi, type ChatApi } from '../../helpers/chat.ts';

const test = suite('sdk-chat-reconnect');
let c: ChatApi;

test.before(async () => {
  c = await startChatApi('openai', { llmTimeoutMs: 10_000 });
});
test.after(async () => {
  await c?.close();
});

interface Seen {
  method: string;
  path: string;
  lastEventId: string | null;
}

/** A client whose fetch goes to the server through `breaker`, which may break the answer of a POST /v1/chat; every request is recorded. */
function clientWith(breaker: (res: Response) => Promise<Response>) {
  const seen: Seen[] = [];
  const client = new DirectorClient({
    baseURL: `${c.api.url}/v1`,
    token: c.api.adminToken,
    fetch: async (req) => {
      const path = new URL(req.url).pathname;
      seen.push({ method: req.method, path, lastEventId: req.headers.get('last-event-id') });
      const res = await fetch(req);
      return req.method === 'POST' && path === '/v1/chat' ? breaker(res) : res;
    },
  });
  return { client, seen };
}

/** The user messages a session holds. */
async function userMessages(sessionId: string): Promise<unknown[]> {
  const r = await c.get<{ items: { role: string; content: unknown }[] }>(`/v1/sessions/${sessionId}/messages`);
  assert.is(r.status, 200, r.text);
  return r.body.data.items.filter((m) => m.role === 'user').map((m) => m.content);
}

test('a stream that drops mid-turn resumes on the session stream: every event once, in order, and one POST', async () => {
  const { sessionId, agentId } = await c.agent();
  // Deltas spaced out, so the turn is still running when the connection breaks.
  c.llm.script([{ text: ['one ', 'two ', 'three ', 'four'], chunkDelayMs: 60 }]);
  const before = c.llm.requests.length;
  const { client, seen } = clientWith(async (res) => {
    // The answer's bytes pass until the first `content` frame has, then the connection breaks.
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    let text = '';
    return new Response(
      new ReadableStream<Uint8Array>({
        async pull(ctl) {
          if (text.includes('event: content')) {
            await reader.cancel();
            return ctl.error(new TypeError('terminated'));
          }
          const { done, value } = await reader.read();
          if (done) return ctl.close();
          text += new TextDecoder().decode(value);
          ctl.enqueue(value);
        },
      }),
      { status: res.status, headers: res.headers },
    );
  });
  const got: ChatEvent[] = [];
  for await (const e of client.chat.stream({ agent: agentId, message: 'count to four' }, { reconnect: { initialDelayMs: 10 } }))
    got.push(e);
  const ids = got.map((e) => e.id);
  assert.equal(
    ids,
    [...new Set(ids)].sort((a, b) => a - b),
    'ids increase, none repeated',
  );
  assert.is(got.at(-1)?.type, 'done');
  assert.is(
    got
      .filter((e) => e.type === 'content')
      .map((e) => (e.data as { text: string }).text)
      .join(''),
    'one two three four',
  );
  assert.equal(seen.filter((r) => r.method === 'POST').length, 1, 'the message was POSTed once');
  const resumes = seen.filter((r) => r.method === 'GET');
  assert.ok(resumes.length >= 1, 'the stream was resumed');
  assert.equal(resumes[0]!.path, `/v1/chat/${sessionId}/events`);
  assert.ok(resumes[0]!.lastEventId !== null && Number(resumes[0]!.lastEventId) >= got[0]!.id, 'resumed after what it had');
  assert.equal(await userMessages(sessionId), ['count to four']);
  assert.is(c.llm.requests.length - before, 1, 'one model call');
});

test('a POST whose answer never arrived is not sent again: the connection error, one turn, one user message', async () => {
  const { sessionId, agentId } = await c.agent();
  c.llm.script([{ text: ['only ', 'once'] }]);
  const before = c.llm.requests.length;
  const { client, seen } = clientWith(async (res) => {
    // The server took the message (its answer began), but the client never sees the answer.
    await res.body?.cancel();
    throw new TypeError('fetch failed', { cause: { code: 'ECONNRESET' } });
  });
  const events = client.chat.stream(
    { agent: agentId, message: 'say it once', sessionId },
    { reconnect: { initialDelayMs: 10, maxAttempts: 3 } },
  );
  await events.next().then(
    () => assert.unreachable('the stream should fail'),
    (err: unknown) => assert.instance(err, ConnectionError),
  );
  assert.equal(
    seen.map((r) => [r.method, r.path]),
    [['POST', '/v1/chat']],
    'one POST and no other request',
  );
  // The turn the one POST started (running, or ended with what was kept) is followed to its end.
  const { client: plain } = clientWith(async (res) => res);
  const replay: ChatEvent[] = [];
  for await (const e of plain.chat.resume(sessionId)) replay.push(e);
  assert.equal(replay.filter((e) => e.type === 'done').length, 1, 'one turn');
  assert.equal(await userMessages(sessionId), ['say it once']);
  assert.is(c.llm.requests.length - before, 1, 'one model call');
});

test.run();
