import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { openDb } from '../../../core/db.ts';
import { ChatEventLog, type ChatEvent } from '../../../orchestration/chat/events.ts';
import { followSession } from '../../../orchestration/chat/follow.ts';

function setup() {
  let now = 1000;
  const log = new ChatEventLog(openDb('/tmp/x', ':memory:'), { nowMs: () => now });
  const add = (sessionId: string, turnId: string, type: ChatEvent['type'], data: Record<string, unknown> = {}) =>
    log.append({ workspace: 'w', sessionId, turnId, agentId: 'agt_a', type, data });
  return { log, add, tick: (ms: number) => (now += ms) };
}

async function collect(gen: AsyncGenerator<ChatEvent>): Promise<ChatEvent[]> {
  const out: ChatEvent[] = [];
  for await (const e of gen) out.push(e);
  return out;
}

test('events get increasing seqs across sessions; a session replays after a cursor', () => {
  const { log, add } = setup();
  const a = add('ses_1', 't1', 'content', { text: 'a' });
  add('ses_2', 't2', 'content', { text: 'x' });
  const b = add('ses_1', 't1', 'done');
  assert.ok(b.seq > a.seq);
  assert.equal(
    log.after('ses_1', 0, 10).map((e) => e.type),
    ['content', 'done'],
  );
  assert.equal(
    log.after('ses_1', a.seq, 10).map((e) => e.seq),
    [b.seq],
  );
  assert.is(log.head(), b.seq);
  assert.is(log.turnStart('t1'), a.seq - 1);
});

test('a batch publishes its events once committed, in order; a batch that throws stores and publishes none', () => {
  const { log, add } = setup();
  const seen: string[] = [];
  log.subscribe((e) => seen.push(`${e.type}:${e.seq}`));
  log.batch(() => {
    const end = add('ses_1', 't1', 'tool_end');
    assert.equal(seen, [], 'nothing published before the commit');
    add('ses_1', 't1', 'done');
    assert.is(end.seq + 1, log.head());
  });
  assert.equal(seen, ['tool_end:1', 'done:2']);
  assert.throws(() =>
    log.batch(() => {
      add('ses_1', 't2', 'tool_end');
      throw new Error('record refused');
    }),
  );
  assert.equal(seen, ['tool_end:1', 'done:2'], 'the failed batch published nothing');
  assert.equal(
    log.after('ses_1', 0, 10).map((e) => e.turnId),
    ['t1', 't1'],
    'and stored nothing',
  );
});

test('following a running turn: what was kept, then live events until its done', async () => {
  const { add, log } = setup();
  const first = add('ses_1', 't1', 'content', { text: 'He' });
  const gen = collect(followSession(log, 'ses_1', 0, 't1'));
  await new Promise((r) => setTimeout(r, 10));
  add('ses_2', 't9', 'content', { text: 'other session' });
  add('ses_1', 't1', 'content', { text: 'llo' });
  add('ses_1', 't1', 'done', { response: 'Hello' });
  add('ses_1', 't2', 'content', { text: 'after the end' });
  const got = await gen;
  assert.equal(
    got.map((e) => [e.seq >= first.seq, e.type, e.data.text ?? e.data.response]),
    [
      [true, 'content', 'He'],
      [true, 'content', 'llo'],
      [true, 'done', 'Hello'],
    ],
  );
});

test('resuming after a seq gives exactly what came later, and ends with the turn', async () => {
  const { add, log } = setup();
  add('ses_1', 't1', 'content', { text: '1' });
  const seen = add('ses_1', 't1', 'content', { text: '2' });
  add('ses_1', 't1', 'content', { text: '3' });
  add('ses_1', 't1', 'error', { code: 'PROVIDER_ERROR' });
  const got = await collect(followSession(log, 'ses_1', seen.seq, 't1'));
  assert.equal(
    got.map((e) => e.data.text ?? e.type),
    ['3', 'error'],
  );
});

test('with no turn running, a resume replays what was kept and ends', async () => {
  const { add, log } = setup();
  add('ses_1', 't1', 'content', { text: '1' });
  add('ses_1', 't1', 'done');
  assert.is((await collect(followSession(log, 'ses_1', 0, null))).length, 2);
});

test('an event kept and also heard live (a replay longer than a page) is given once', async () => {
  const { add, log } = setup();
  for (let i = 0; i < 600; i++) add('ses_1', 't1', 'content', { text: String(i) });
  const gen = followSession(log, 'ses_1', 0, 't1');
  const got: ChatEvent[] = [(await gen.next()).value as ChatEvent];
  // Appended after the first page was read: the second page and the live queue both have it.
  add('ses_1', 't1', 'content', { text: 'late' });
  setTimeout(() => add('ses_1', 't1', 'done'), 50);
  for await (const e of gen) got.push(e);
  assert.is(got.filter((e) => e.data.text === 'late').length, 1);
  assert.is(got.length, 602);
});

test('a turn filter gives only that turn (the POST stream of a turn that superseded another)', async () => {
  const { add, log } = setup();
  const from = log.head();
  add('ses_1', 'old', 'tool_end', { status: 'denied' });
  add('ses_1', 'new', 'content', { text: 'hi' });
  add('ses_1', 'old', 'done');
  add('ses_1', 'new', 'done');
  const got = await collect(followSession(log, 'ses_1', from, 'new', { turnId: 'new' }));
  assert.equal(
    got.map((e) => `${e.turnId}:${e.type}`),
    ['new:content', 'new:done'],
  );
});

test('an aborted follower ends without waiting for the turn', async () => {
  const { log } = setup();
  const ac = new AbortController();
  const p = collect(followSession(log, 'ses_1', 0, 't1', { signal: ac.signal }));
  setTimeout(() => ac.abort(), 20);
  assert.equal(await p, []);
});

test('retention drops old events; seqs are never reused', () => {
  const { add, log, tick } = setup();
  add('ses_1', 't1', 'content');
  const kept = tick(10_000);
  const last = add('ses_1', 't1', 'done');
  assert.is(log.purgeOlderThan(kept - 1), 1);
  assert.is(log.after('ses_1', 0, 10).length, 1);
  log.deleteOfSession('ses_1');
  assert.ok(add('ses_1', 't2', 'content').seq > last.seq);
});

test.run();
