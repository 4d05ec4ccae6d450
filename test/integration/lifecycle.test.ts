/**
 * The sandbox lifecycle of a real runtime has many listeners: one more subscriber (as the
 * orchestration layer will add) receives every step, and the runtime's own listeners (the
 * executor's launcher and pids bookkeeping, the supervisor's deadline) keep working beside it;
 * a listener that throws breaks neither the operation nor the others.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { SandboxRecord } from '../../runtime/store/sandboxes.ts';
import { BUSYBOX, caller, eventually, testRuntime, type TestRuntime } from '../helpers/runtime.ts';

const test = suite('lifecycle');
let rt: TestRuntime;
const seen: { event: string; id: string }[] = [];
const offs: (() => void)[] = [];

test.before(async () => {
  rt = testRuntime();
  await rt.start();
  // Subscribed after createRuntime registered the executor and the supervisor.
  for (const event of ['started', 'deadlineArmed', 'ended'] as const)
    offs.push(rt.lifecycle.on(event, (r: SandboxRecord) => void seen.push({ event, id: r.id })));
});
test.after(async () => {
  for (const off of offs) off();
  await rt?.cleanup();
});

const stepsOf = (id: string) => seen.filter((s) => s.id === id).map((s) => s.event);

test('a second listener sees start and end, and the executor still forgets the sandbox when it ends', async () => {
  const sb = await rt.sandboxes.create({ image: BUSYBOX }, caller);
  const r = await rt.executor.run(caller, sb.id, { command: ['true'] });
  assert.is(r.exitCode, 0);
  const tracked = rt.executor.tracked;
  assert.ok(tracked >= 1, 'the executor keeps a pids count for a sandbox that executed');
  await rt.sandboxes.stop(caller, sb.id);
  assert.equal(stepsOf(sb.id), ['started', 'deadlineArmed', 'ended']);
  assert.is(rt.executor.tracked, tracked - 1, "the executor's own `ended` listener still ran");
  await rt.sandboxes.delete(caller, sb.id);
  assert.equal(stepsOf(sb.id), ['started', 'deadlineArmed', 'ended', 'ended']);
});

test("a second deadline listener does not replace the supervisor's: the sandbox is still killed at maxDuration", async () => {
  const sb = await rt.sandboxes.create({ image: BUSYBOX, resourceLimits: { maxDuration: 1500 } }, caller);
  assert.ok(stepsOf(sb.id).includes('deadlineArmed'));
  const done = await eventually(() => {
    const r = rt.sandboxes.get(caller, sb.id);
    return r.status === 'stopped' ? r : null;
  }, 10_000);
  assert.is(done.reason, 'max_duration');
  assert.equal(stepsOf(sb.id), ['started', 'deadlineArmed', 'ended']);
});

test('a listener that throws fails neither the create nor the listeners after it', async () => {
  const after: string[] = [];
  const offBoom = rt.lifecycle.on('started', () => {
    throw new Error('a broken subscriber');
  });
  const offAfter = rt.lifecycle.on('started', (r) => void after.push(r.id));
  try {
    const sb = await rt.sandboxes.create({ image: BUSYBOX }, caller);
    assert.is(sb.status, 'running');
    assert.equal(after, [sb.id]);
    // The executor's `started` listener (registered first) armed the launcher: executes work.
    const r = await rt.executor.run(caller, sb.id, { command: ['echo', 'ok'] });
    assert.is(r.stdout, 'ok\n');
    await rt.sandboxes.delete(caller, sb.id);
  } finally {
    offBoom();
    offAfter();
  }
});

test.run();
