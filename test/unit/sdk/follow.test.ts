import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { NotFoundError } from '../../../sdk/errors.ts';
import { follow, type FollowedEvent } from '../../../sdk/follow.ts';
import { streamedResponse } from '../../helpers/http-body.ts';

/** A body that sends `text` and then either ends or breaks (a dropped connection). */
const body = (text: string, drop: boolean) => streamedResponse(text, drop);

const frame = (id: number, type: string, data: unknown) => `id: ${id}\nevent: ${type}\ndata: ${JSON.stringify(data)}\n\n`;

test('a dropped stream is resumed after the last event yielded, without gaps or repeats, until `end`', async () => {
  const opened: (number | undefined)[] = [];
  const got: FollowedEvent[] = [];
  for await (const e of follow(
    {
      open: async (after) => {
        opened.push(after);
        if (after === undefined) return body(frame(1, 'run', { s: 'running' }) + frame(2, 'step', { n: 1 }), true);
        return body(frame(3, 'step', { n: 2 }) + frame(4, 'run', { s: 'completed' }) + 'event: end\ndata: {}\n\n', false);
      },
      isLast: () => false,
    },
    { reconnect: { initialDelayMs: 1 } },
  )) {
    got.push(e);
    if (got.length > 10) break;
  }
  assert.equal(opened, [undefined, 2]);
  assert.equal(
    got.map((e) => [e.id, e.type]),
    [
      [1, 'run'],
      [2, 'step'],
      [3, 'step'],
      [4, 'run'],
    ],
  );
});

test('stops after the last event; starts after `after`; answers of the API are not retried', async () => {
  const opened: (number | undefined)[] = [];
  const got: number[] = [];
  for await (const e of follow(
    {
      open: async (after) => {
        opened.push(after);
        return body(frame(8, 'content', { text: 'a' }) + frame(9, 'done', {}) + frame(10, 'content', {}), false);
      },
      isLast: (e) => e.type === 'done',
    },
    { after: 7 },
  ))
    got.push(e.id);
  assert.equal([opened, got], [[7], [8, 9]]);

  let calls = 0;
  const refused = follow({
    open: async () => {
      calls++;
      throw new NotFoundError({ code: 'NOT_FOUND', message: 'no such workflow', status: 404 });
    },
    isLast: () => false,
  });
  await refused.next().then(
    () => assert.unreachable('should throw'),
    (err: unknown) => assert.instance(err, NotFoundError),
  );
  assert.is(calls, 1);
});

test('an error event without an id (the source failed) is thrown with its code; give up after maxAttempts drops', async () => {
  const failing = follow({
    open: async () => body('event: error\ndata: {"code":"INTERNAL_ERROR","message":"boom"}\n\n', false),
    isLast: () => false,
  });
  await failing.next().then(
    () => assert.unreachable('should throw'),
    (err: unknown) => assert.is((err as { code: string }).code, 'INTERNAL_ERROR'),
  );
  let calls = 0;
  const dropping = follow(
    {
      open: async () => {
        calls++;
        return body('', true);
      },
      isLast: () => false,
    },
    { reconnect: { initialDelayMs: 1, maxAttempts: 2 } },
  );
  await dropping.next().then(
    () => assert.unreachable('should throw'),
    () => undefined,
  );
  assert.is(calls, 3, 'the first try and two reconnects');
});

test.run();
