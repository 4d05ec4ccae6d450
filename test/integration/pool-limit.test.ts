/**
 * Warm sandboxes are spare capacity: at DIRECTOR_MAX_SANDBOXES they give way to users' creates
 * (removed, never handed out), users still get at most the limit, and the pool refills only
 * into room users leave.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { DirectorError } from '../../core/errors.ts';
import { LABEL } from '../../runtime/sandbox/hardening.ts';
import { BUSYBOX, caller, eventually, sleep, testRuntime, type TestRuntime } from '../helpers/runtime.ts';

const test = suite('pool-limit');
let rt: TestRuntime;
const MAX = 4;

test.before(async () => {
  rt = testRuntime({ poolSize: 2, poolImages: BUSYBOX, maxSandboxes: MAX });
  await rt.start({ waitForPool: true });
});
test.after(async () => {
  await rt.cleanup();
});

const warm = () => rt.sandboxes.deps.store.inStates(['running']).filter((r) => r.pooled);
const containers = async () => (await rt.engine.listContainers({ [LABEL.runtime]: rt.config.runtimeName })).length;
/** A request the pool cannot serve (its command is the container's): always created cold. */
const COLD = { image: BUSYBOX, command: ['sleep', '600'] };

test('at the limit, warm sandboxes give way to users’ cold creates; users never exceed the limit', async () => {
  await eventually(() => warm().length === 2, 30_000);
  const warmIds = new Set(warm().map((r) => r.containerId));
  const made = await Promise.all(Array.from({ length: MAX }, () => rt.sandboxes.create(COLD, caller)));
  assert.is(made.length, MAX, 'a user create was refused while only warm sandboxes held the host');
  for (const r of made) {
    assert.is(r.status, 'running');
    assert.not.ok(warmIds.has(r.containerId), 'a warm sandbox was handed to an unfittable request');
  }
  // Beyond the limit users are refused, warm sandboxes or not.
  try {
    await rt.sandboxes.create(COLD, caller);
    assert.unreachable('a create beyond the limit succeeded');
  } catch (err) {
    assert.instance(err, DirectorError);
    assert.is((err as DirectorError).code, 'SERVICE_UNAVAILABLE');
  }
  // The warm sandboxes that gave way are gone, containers included; no refill takes the users' room.
  await eventually(async () => warm().length === 0 && (await containers()) === MAX, 30_000);
  await sleep(1500);
  assert.is(warm().length, 0, 'the pool refilled beyond the host limit');
  assert.is(await containers(), MAX);
  // Room left by users is the pool's again.
  await Promise.all(made.slice(0, 2).map((r) => rt.sandboxes.delete(caller, r.id)));
  await eventually(() => warm().length === 2, 30_000);
  assert.ok((await containers()) <= MAX);
  for (const r of made.slice(2)) await rt.sandboxes.delete(caller, r.id);
});

test.run();
