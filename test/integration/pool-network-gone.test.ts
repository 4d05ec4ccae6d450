/**
 * A pool on a Director network whose network stops being ready without the network layer telling
 * the pool (no `dropNetwork`: a network marked failed at boot because its bridge vanished, or one
 * a delete is already tearing down): the next refill finds it gone, the pool stops there, and its
 * warm sandboxes, which nobody can be given any more, are removed with it. Real engine and nft.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { token } from '../helpers/net-client.ts';
import { BASE, caller, eventually, sleep, testRuntime, type TestRuntime } from '../helpers/runtime.ts';

const test = suite('pool-network-gone');
let rt: TestRuntime;
const POOL = 2;

test.before(async () => {
  rt = testRuntime({ networking: 'on', poolSize: POOL, poolImages: BASE, defaultImage: BASE, maxSandboxes: 20 });
  await rt.start({ waitForPool: true });
});
test.after(async () => {
  await rt?.cleanup();
});

const onNet = (networkId: string) => ({ image: BASE, securityPolicy: { allowNetwork: true }, networkMode: networkId });
const warmOn = (networkId: string) =>
  rt.sandboxes.deps.store
    .inStates(['creating', 'running'])
    .filter((r) => r.pooled && r.networkId === networkId)
    .map((r) => r.containerId!);

test('a refill that finds its network no longer ready ends the pool and removes its warm sandboxes; no refill follows', async () => {
  const nets = rt.networks!;
  const net = await nets.manager.create(caller, { name: `gone-${token()}` });
  const first = await rt.sandboxes.create(onNet(net.id), caller);
  await eventually(() => warmOn(net.id).length === POOL, 60_000);
  const warm = warmOn(net.id);

  // The network leaves the ready state behind the pool's back.
  nets.store.update(net.id, Date.now(), { status: 'deleting' });
  // A claim from the pool schedules the refill that notices.
  const claimed = await rt.sandboxes.create(onNet(net.id), caller);
  assert.ok(warm.includes(claimed.containerId!), 'the request was not served from the network’s pool');

  await eventually(() => warmOn(net.id).length === 0, 15_000).catch(() => undefined);
  assert.equal(warmOn(net.id), [], 'warm sandboxes of a network that is gone are still kept');
  // A record leaves the active states when its removal starts; the engine's removal follows.
  for (const c of warm.filter((c) => c !== claimed.containerId)) {
    await eventually(async () => (await rt.engine.inspectContainer(c)) === null, 15_000).catch(() => undefined);
    assert.is(await rt.engine.inspectContainer(c), null, 'a warm container outlived its network’s pool');
  }
  await sleep(500);
  assert.equal(warmOn(net.id), [], 'the pool refilled on a network that is gone');
  // What was handed out is the caller's and stays.
  assert.ok((await rt.engine.inspectContainer(claimed.containerId!))?.running, 'the claimed sandbox was removed with the pool');

  await rt.sandboxes.delete(caller, claimed.id);
  await rt.sandboxes.delete(caller, first.id);
  nets.store.update(net.id, Date.now(), { status: 'ready' });
  await nets.manager.delete(caller, net.id);
});

test.run();
