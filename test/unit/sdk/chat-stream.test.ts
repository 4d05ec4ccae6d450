import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DirectorClient } from '../../../sdk/client.ts';
import { ConnectionError, DirectorApiError } from '../../../sdk/errors.ts';
import type { ChatEvent } from '../../../sdk/types.ts';
import { streamedResponse } from '../../helpers/http-body.ts';

const frame = (id: number, type: string, data: Record<string, unknown>) =>
  `id: ${id}\nevent: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;

/** An event-stream answer that sends `text`, then ends or breaks (a dropped connection). */
const stream = (text: string, drop: boolean, headers: Record<string, string> = {}) =>
  streamedResponse(text, drop, { headers: { 'content-type': 'text/event-stream', ...headers } });

/** A client whose server is `answer`; every request it sends is recorded. */
function clientOf(answer: (req: Request) => Response) {
  const seen: { method: string; path: string; lastEventId: string | null }[] = [];
  const client = new DirectorClient({
    baseURL: 'http://127.0.0.1:1/v1',
    token: 'dk_test',
    fetch: async (req) => {
      seen.push({ method: req.method, path: new URL(req.url).pathname, lastEventId: req.headers.get('last-event-id') });
      return answer(req);
    },
  });
  return { client, seen };
}

const drain = async (events: AsyncGenerator<ChatEvent>, max = 20) => {
  const got: ChatEvent[] = [];
  for await (const e of events) {
    got.push(e);
    if (got.length >= max) break;
  }
  return got;
};

test('a dropped chat stream resumes on the session the server named, after the last event', async () => {
  const { client, seen } = clientOf((req) =>
    req.method === 'POST'
      ? stream(frame(5, 'content', { text: 'hel' }), true, { 'x-director-session-id': 'ses_AAAAAAAAAAAAAAAA', 'x-director-turn-id': 't1' })
      : stream(frame(6, 'content', { text: 'lo' }) + frame(7, 'done', { sessionId: 'ses_AAAAAAAAAAAAAAAA', turnId: 't1' }), false),
  );
  const got = await drain(client.chat.stream({ agent: 'coder', message: 'hi' }, { reconnect: { initialDelayMs: 1 } }));
  assert.equal(
    seen.map((r) => [r.method, r.path, r.lastEventId]),
    [
      ['POST', '/v1/chat', null],
      ['GET', '/v1/chat/ses_AAAAAAAAAAAAAAAA/events', '5'],
    ],
  );
  assert.equal(
    got.map((e) => [e.id, e.type]),
    [
      [5, 'content'],
      [6, 'content'],
      [7, 'done'],
    ],
  );
});

test('a dropped chat stream whose answer named no session fails once, and never asks for /v1/chat//events', async () => {
  const { client, seen } = clientOf((req) =>
    req.method === 'POST' ? stream(frame(1, 'content', { text: 'a' }), true) : new Response('{}', { status: 404 }),
  );
  const events = client.chat.stream({ agent: 'coder', message: 'hi' }, { reconnect: { initialDelayMs: 1, maxAttempts: 2 } });
  const first = await events.next();
  assert.is(first.value?.type, 'content');
  await events.next().then(
    () => assert.unreachable('should throw'),
    (err: unknown) => {
      assert.instance(err, DirectorApiError);
      assert.match((err as Error).message, /cannot be resumed/);
    },
  );
  assert.equal(
    seen.map((r) => r.path),
    ['/v1/chat'],
    'no request for a session that was never named',
  );
});

test('without the header, the session the request named is resumed', async () => {
  const { client, seen } = clientOf((req) =>
    req.method === 'POST'
      ? stream(frame(3, 'content', { text: 'a' }), true)
      : stream(frame(4, 'error', { sessionId: 'ses_BBBBBBBBBBBBBBBB', turnId: 't', code: 'X', message: 'm' }), false),
  );
  const got = await drain(
    client.chat.stream({ agent: 'coder', message: 'hi', sessionId: 'ses_BBBBBBBBBBBBBBBB' }, { reconnect: { initialDelayMs: 1 } }),
  );
  assert.equal(
    seen.map((r) => r.path),
    ['/v1/chat', '/v1/chat/ses_BBBBBBBBBBBBBBBB/events'],
  );
  assert.equal(
    got.map((e) => e.type),
    ['content', 'error'],
  );
});

test("a stream dropped before its first event resumes after the turn's start, not at the session's kept events", async () => {
  const { client, seen } = clientOf((req) =>
    req.method === 'POST'
      ? stream('', true, { 'x-director-session-id': 'ses_CCCCCCCCCCCCCCCC', 'x-director-turn-id': 't2', 'x-director-turn-after': '41' })
      : stream(frame(42, 'content', { text: 'new' }) + frame(43, 'done', { sessionId: 'ses_CCCCCCCCCCCCCCCC', turnId: 't2' }), false),
  );
  const got = await drain(client.chat.stream({ agent: 'coder', message: 'hi' }, { reconnect: { initialDelayMs: 1 } }));
  assert.equal(
    seen.map((r) => [r.method, r.path, r.lastEventId]),
    [
      ['POST', '/v1/chat', null],
      ['GET', '/v1/chat/ses_CCCCCCCCCCCCCCCC/events', '41'],
    ],
  );
  assert.equal(
    got.map((e) => [e.id, e.type]),
    [
      [42, 'content'],
      [43, 'done'],
    ],
  );
});

test('a message whose POST got no answer is never sent again: the stream fails with the connection error', async () => {
  // The request reached the server (which may have started the turn), then the connection broke before any answer.
  const { client, seen } = clientOf((req) => {
    if (req.method === 'POST') throw new TypeError('fetch failed', { cause: { code: 'ECONNRESET' } });
    return stream(frame(1, 'done', { sessionId: 'ses_DDDDDDDDDDDDDDDD', turnId: 't' }), false);
  });
  const events = client.chat.stream(
    { agent: 'coder', message: 'hi', sessionId: 'ses_DDDDDDDDDDDDDDDD' },
    { reconnect: { initialDelayMs: 1, maxAttempts: 3 } },
  );
  await events.next().then(
    () => assert.unreachable('should throw'),
    (err: unknown) => {
      assert.instance(err, ConnectionError);
      assert.match((err as Error).message, /ECONNRESET/);
    },
  );
  assert.equal(
    seen.map((r) => [r.method, r.path]),
    [['POST', '/v1/chat']],
    'one POST, and nothing else',
  );
});

test('a reconnect after the answer started resumes the stream only, however many drops: one POST', async () => {
  let gets = 0;
  const { client, seen } = clientOf((req) => {
    if (req.method === 'POST')
      return stream(frame(10, 'content', { text: 'a' }), true, { 'x-director-session-id': 'ses_EEEEEEEEEEEEEEEE' });
    gets++;
    // The first resume fails to connect, the second drops after one event, the third ends the turn.
    if (gets === 1) throw new TypeError('fetch failed');
    if (gets === 2) return stream(frame(11, 'content', { text: 'b' }), true);
    return stream(frame(12, 'done', { sessionId: 'ses_EEEEEEEEEEEEEEEE', turnId: 't' }), false);
  });
  const got = await drain(client.chat.stream({ agent: 'coder', message: 'hi' }, { reconnect: { initialDelayMs: 1 } }));
  assert.equal(
    got.map((e) => e.id),
    [10, 11, 12],
  );
  assert.equal(
    seen.map((r) => [r.method, r.lastEventId]),
    [
      ['POST', null],
      ['GET', '10'],
      ['GET', '10'],
      ['GET', '11'],
    ],
  );
});

test.run();
