/** The queue that runs the engine-record updates one at a time, with a turn limit per task. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { SerialQueue } from '../../../runtime/engine/docker/serial-queue.ts';

const test = suite('serial queue');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('runs tasks one at a time, in the order given', async () => {
  const q = new SerialQueue(10_000);
  const log: string[] = [];
  let running = 0;
  let most = 0;
  const task = (name: string, ms: number) => async () => {
    running++;
    most = Math.max(most, running);
    log.push(`start ${name}`);
    await sleep(ms);
    log.push(`end ${name}`);
    running--;
  };
  await Promise.all([q.run(task('a', 20)), q.run(task('b', 5)), q.run(task('c', 1))]);
  assert.is(most, 1);
  assert.equal(log, ['start a', 'end a', 'start b', 'end b', 'start c', 'end c']);
  assert.is(q.size, 0);
});

test('a failing or throwing task does not stop the ones after it, and run never rejects', async () => {
  const q = new SerialQueue(10_000);
  const ran: string[] = [];
  await Promise.all([
    q.run(async () => {
      throw new Error('engine said no');
    }),
    q.run(() => {
      throw new Error('thrown before a promise');
    }),
    q.run(async () => void ran.push('after')),
  ]);
  assert.equal(ran, ['after']);
});

test('a task that hangs holds the queue only for its turn, counted from when its turn came', async () => {
  const q = new SerialQueue(60);
  // The queue's turn timer does not keep a process alive (nor does a task that never settles).
  const keepAlive = setInterval(() => undefined, 1000);
  const t0 = performance.now();
  void q.run(() => sleep(40));
  void q.run(() => new Promise(() => undefined));
  let startedAt = 0;
  await q.run(async () => void (startedAt = performance.now() - t0));
  // The hanging task's turn began after the first (~40 ms) and lasted its 60 ms.
  assert.ok(startedAt >= 95, `next task started at ${startedAt.toFixed(0)} ms`);
  assert.ok(startedAt < 2_000, `next task started at ${startedAt.toFixed(0)} ms`);
  clearInterval(keepAlive);
});

test.run();
