import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Watchdog } from '../../../orchestration/chat/watchdog.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('fires once after the wait without a touch; touches keep it quiet', async () => {
  let fired = 0;
  const w = new Watchdog(80, () => fired++);
  w.start();
  for (let i = 0; i < 5; i++) {
    await sleep(30);
    w.touch();
  }
  assert.is(fired, 0);
  await sleep(200);
  assert.is(fired, 1);
  w.touch();
  await sleep(150);
  assert.is(fired, 1, 'once only');
  w.stop();
});

test('holds stop the count until all are released', async () => {
  let fired = 0;
  const w = new Watchdog(60, () => fired++);
  w.start();
  const a = w.hold();
  const b = w.hold();
  await sleep(150);
  a();
  a();
  await sleep(150);
  assert.is(fired, 0, 'one hold is still on');
  b();
  await sleep(150);
  assert.is(fired, 1);
  w.stop();
});

test('a stopped watchdog never fires', async () => {
  let fired = 0;
  const w = new Watchdog(30, () => fired++);
  w.start();
  w.stop();
  await sleep(100);
  assert.is(fired, 0);
});

test.run();
