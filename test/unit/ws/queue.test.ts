import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SendQueue, type QueueSink, type SendQueueLimits } from '../../../api/ws/queue.ts';

/** A socket stand-in: writes stay "buffered" until flushed, like a peer that does not read. */
function fakeSink() {
  const pending: { data: string; done: () => void }[] = [];
  const written: string[] = [];
  let blocked = false;
  const sink: QueueSink = {
    write(frame, done) {
      const data = frame.toString();
      written.push(data);
      if (blocked) pending.push({ data, done });
      else queueMicrotask(done);
    },
    buffered: () => pending.reduce((n, p) => n + Buffer.byteLength(p.data), 0),
  };
  return {
    sink,
    written,
    block: () => (blocked = true),
    /** The peer reads everything: buffered writes complete. */
    flush() {
      blocked = false;
      for (const p of pending.splice(0)) p.done();
    },
  };
}

function queue(limits: Partial<SendQueueLimits>) {
  const s = fakeSink();
  let overflows = 0;
  const q = new SendQueue(s.sink, limits, () => overflows++);
  return { ...s, q, overflows: () => overflows };
}

test('sends at once while the socket keeps up', async () => {
  const { q, written } = queue({});
  for (let i = 0; i < 5000; i++) assert.ok(q.push(`m${i}`));
  await Promise.resolve();
  assert.is(written.length, 5000);
  assert.is(q.length, 0);
  assert.is(q.state, 'open');
});

test('holds messages above the high-water mark and sends them in order once the socket drains', async () => {
  const s = queue({ highWaterBytes: 1024, maxMessages: 100, maxBytes: 1024 * 1024 });
  s.block();
  const msg = (i: number) => `${i}:${'x'.repeat(200)}`;
  for (let i = 0; i < 20; i++) assert.ok(s.q.push(msg(i)));
  assert.is(s.written.length, 6, 'stops handing messages over at the high-water mark');
  assert.is(s.q.length, 14);
  s.flush();
  await new Promise((r) => setImmediate(r));
  assert.equal(
    s.written,
    Array.from({ length: 20 }, (_, i) => msg(i)),
  );
  assert.is(s.q.length, 0);
});

test('overflows once on the message limit: drops what waits, refuses more, reports once', () => {
  const s = queue({ highWaterBytes: 1024, maxMessages: 10, maxBytes: 1024 * 1024 });
  s.block();
  let accepted = 0;
  for (let i = 0; i < 100; i++) if (s.q.push('y'.repeat(300))) accepted++;
  assert.is(s.overflows(), 1);
  assert.is(s.q.state, 'overflowed');
  assert.is(s.q.length, 0);
  assert.is(s.q.bytes, 0);
  assert.is(accepted, 4 + 10, 'four went to the socket, ten waited');
  assert.not.ok(s.q.push('late'));
});

test('overflows on the byte limit, counting what the socket buffers', () => {
  const s = queue({ highWaterBytes: 4096, maxMessages: 1000, maxBytes: 8192 });
  s.block();
  let accepted = 0;
  for (let i = 0; i < 100 && s.q.state === 'open'; i++) if (s.q.push('z'.repeat(1000))) accepted++;
  assert.is(s.overflows(), 1);
  assert.is(accepted, 8);
});

test('a single oversized message still goes out when nothing waits', () => {
  const s = queue({ highWaterBytes: 1024, maxMessages: 10, maxBytes: 2048 });
  assert.ok(s.q.push('big'.repeat(2000)));
  assert.is(s.overflows(), 0);
});

test('waitForRoom resolves once the backlog falls below a quarter of the limits', async () => {
  const s = queue({ highWaterBytes: 1024, maxMessages: 40, maxBytes: 1024 * 1024 });
  s.block();
  for (let i = 0; i < 30; i++) s.q.push('w'.repeat(100));
  assert.not.ok(s.q.hasRoom());
  let woke = false;
  const waiting = s.q.waitForRoom().then(() => (woke = true));
  await Promise.resolve();
  assert.not.ok(woke);
  s.flush();
  await waiting;
  assert.ok(s.q.hasRoom());
});

test('close drops the backlog and releases waiters', async () => {
  const s = queue({ highWaterBytes: 1024, maxMessages: 40, maxBytes: 1024 * 1024 });
  s.block();
  for (let i = 0; i < 30; i++) s.q.push('w'.repeat(100));
  const waiting = s.q.waitForRoom();
  s.q.close();
  await waiting;
  assert.is(s.q.state, 'closed');
  assert.is(s.q.length, 0);
  assert.not.ok(s.q.push('after'));
  assert.is(s.overflows(), 0);
});

test.run();
