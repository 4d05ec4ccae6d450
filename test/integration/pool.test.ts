/** The warm pool: create hands back an already running sandbox; each is used once. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { LABEL } from '../../runtime/sandbox/hardening.ts';
import { BUSYBOX, caller, eventually, testRuntime, type TestRuntime } from '../helpers/runtime.ts';

const test = suite('pool');
let rt: TestRuntime;

test.before(async () => {
  rt = testRuntime({ poolSize: 2, poolImages: BUSYBOX, maxSandboxes: 6 });
  await rt.start({ waitForPool: true });
});
test.after(async () => {
  await rt.cleanup();
});

/** Warm sandboxes not yet handed out whose container really runs. */
const pooled = () => rt.sandboxes.deps.store.inStates(['running']).filter((r) => r.pooled);
const pooledCount = async () => {
  const running = new Set(
    (await rt.engine.listContainers({ [LABEL.runtime]: rt.config.runtimeName })).filter((c) => c.status === 'running').map((c) => c.id),
  );
  return pooled().filter((r) => r.containerId && running.has(r.containerId)).length;
};

test('the pool starts full and a matching create is served from it without a container start', async () => {
  assert.is(await pooledCount(), 2);
  const t0 = performance.now();
  const sb = await rt.sandboxes.create({ image: BUSYBOX, name: 'warm', labels: { team: 'a' } }, caller);
  const ms = performance.now() - t0;
  assert.is(sb.status, 'running');
  assert.is(sb.name, 'warm');
  assert.equal(sb.labels, { team: 'a' });
  assert.is(sb.workspace, caller.workspace);
  assert.ok(sb.deadlineMs !== null && sb.deadlineMs > Date.now());
  assert.ok(ms < 250, `a pooled create took ${ms.toFixed(0)} ms: it cannot have come from the pool`);
  const out = await rt.executor.run(caller, sb.id, { command: ['echo', 'pooled'] });
  assert.is(out.stdout, 'pooled\n');
  assert.is(rt.sandboxes.get(caller, sb.id).id, sb.id);
});

test('a pooled sandbox is handed out once and the pool refills to its size, never beyond', async () => {
  const a = await rt.sandboxes.create({ image: BUSYBOX }, caller);
  const b = await rt.sandboxes.create({ image: BUSYBOX }, caller);
  assert.is.not(a.id, b.id);
  await eventually(async () => (await pooledCount()) === 2, 20_000);
  await new Promise((r) => setTimeout(r, 500));
  assert.is(await pooledCount(), 2);
  const hits = (await rt.metrics.poolHits.get()).values[0]?.value ?? 0;
  assert.ok(hits >= 2);
});

test('requests that differ from the pooled profile in what a claim cannot fit are created cold', async () => {
  const before = (await rt.metrics.poolMisses.get()).values[0]?.value ?? 0;
  // The tmpfs size is fixed when the container is made (limits and environment are fitted: pool-fit.test.ts).
  const sb = await rt.sandboxes.create({ image: BUSYBOX, resourceLimits: { disk: 7 } }, caller);
  assert.is(sb.pooled, false);
  const afterHits = (await rt.metrics.createSeconds.get()).values.filter(
    (v) => v.labels.source === 'cold' && v.metricName?.endsWith('_count'),
  );
  assert.ok(afterHits.length > 0);
  assert.is((await rt.metrics.poolMisses.get()).values[0]?.value ?? 0, before);
});

test('the pool never exceeds the host limit', async () => {
  // 6 max: 2 pooled + the sandboxes above; filling must stop at the limit rather than fail creates.
  await eventually(() => rt.sandboxes.deps.store.countActive() <= 6, 5000);
  assert.ok(rt.sandboxes.deps.store.countActive() <= 6);
});

test('pooled sandboxes are not visible to any workspace until claimed', () => {
  const listed = rt.sandboxes.list(caller, { limit: 100, offset: 0 }).items;
  assert.ok(listed.every((r) => !r.pooled));
  assert.is(rt.sandboxes.list({ workspace: '_pool' }, { limit: 100, offset: 0 }).total, 0);
});

test('a graceful close removes the pool but keeps claimed sandboxes', async () => {
  const claimed = rt.sandboxes.list(caller, { limit: 100, offset: 0, status: 'running' }).items.map((r) => r.containerId);
  const warm = pooled().map((r) => r.containerId);
  assert.ok(warm.length > 0);
  await rt.close();
  for (const id of warm) assert.is(await rt.engine.inspectContainer(id!), null, 'a warm sandbox survived close');
  for (const id of claimed) assert.is((await rt.engine.inspectContainer(id!))?.running, true);
});

test.run();
