import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DirectorClient } from '../../../sdk/client.ts';
import { DirectorApiError } from '../../../sdk/errors.ts';
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

test.run();
