import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AgentEventBuffer } from '../../../orchestration/agents/events.ts';

const ev = (n: number) => ({ type: 'tool_end', timestamp: 't', sessionId: 'ses_1', turnId: 'trn_1', data: { n } });

test('events get sequential ids from 1 per agent and page after a cursor', () => {
  const b = new AgentEventBuffer(10);
  for (let i = 0; i < 5; i++) b.push('agt_a', ev(i));
  b.push('agt_b', ev(99));
  const all = b.after('agt_a', 0, 100);
  assert.equal(
    all.events.map((e) => e.seq),
    [1, 2, 3, 4, 5],
  );
  assert.equal([all.cursor, all.oldest, all.missed], [5, 1, 0]);
  const page = b.after('agt_a', 2, 2);
  assert.equal(
    page.events.map((e) => e.seq),
    [3, 4],
  );
  assert.is(page.cursor, 4);
  assert.equal(b.after('agt_a', 5, 10).events, []);
  assert.is(b.after('agt_a', 5, 10).cursor, 5, 'nothing new: the cursor stays');
  assert.equal(
    b.after('agt_b', 0, 10).events.map((e) => e.seq),
    [1],
  );
});

test('the ring keeps the newest events and says how many a slow poller missed', () => {
  const b = new AgentEventBuffer(200);
  for (let i = 0; i < 250; i++) b.push('agt_a', ev(i));
  const p = b.after('agt_a', 10, 500);
  assert.is(p.events.length, 200);
  assert.is(p.oldest, 51);
  assert.is(p.events[0]!.seq, 51);
  assert.is(p.missed, 40);
  assert.is(p.cursor, 250);
});

test('an unknown or forgotten agent has an empty ring', () => {
  const b = new AgentEventBuffer();
  b.push('agt_a', ev(1));
  b.forget('agt_a');
  assert.equal(b.after('agt_a', 0, 10), { events: [], cursor: 0, oldest: 0, missed: 0 });
});

test.run();
