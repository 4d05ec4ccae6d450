/**
 * The warm pool on Director networks: the first request for a pooled image on a network starts a
 * pool there; later requests for that network are fitted from it and are then exactly a cold
 * sandbox on that network: the network's policy decides what they reach (real packets to a
 * fake-internet host), the deny log and DNS know them by their address, the hardening floor is
 * the same, and no other workspace is ever served from it. Deleting the network ends its pool.
 */
import Docker from 'dockerode';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { SandboxRecord } from '../../runtime/store/sandboxes.ts';
import { startFakeInternet, type FakeInternet } from '../helpers/fake-internet.ts';
import { tcpProbe, token } from '../helpers/net-client.ts';
import { BASE, caller, eventually, sleep, testRuntime, type TestRuntime } from '../helpers/runtime.ts';

const test = suite('pool-network');
const docker = new Docker();
let rt: TestRuntime;
let fi: FakeInternet;
const WEB = '203.0.113.10';
const WEB2 = '203.0.113.20';
const POOL = 2;

test.before(async () => {
  fi = await startFakeInternet({ webHosts: [WEB, WEB2] });
  rt = testRuntime({ networking: 'on', poolSize: POOL, poolImages: BASE, defaultImage: BASE, maxSandboxes: 30 });
  await rt.start({ waitForPool: true });
});
test.after(async () => {
  await rt?.cleanup();
  await fi?.close();
});

const nets = () => rt.networks!.manager;
const arrived = (t: string) => fi.received((o) => (o.kind === 'tcp' || o.kind === 'udp') && o.data.includes(t)).length > 0;
const fit = async (result: string) => (await rt.metrics.poolFit.get()).values.find((v) => v.labels.result === result)?.value ?? 0;
const warmOn = (networkId: string) =>
  new Set(
    rt.sandboxes.deps.store
      .inStates(['running'])
      .filter((r) => r.pooled && r.networkId === networkId)
      .map((r) => r.containerId),
  );

const onNet = (networkId: string, extra: Record<string, unknown> = {}) => ({
  image: BASE,
  securityPolicy: { allowNetwork: true },
  networkMode: networkId,
  ...extra,
});

async function reaches(id: string, host: string, port: number, as = caller): Promise<boolean> {
  await fi.assertRoute(host);
  const t = token();
  const r = await tcpProbe(rt, id, host, port, t, 1.5, as);
  await sleep(100);
  const got = arrived(t);
  assert.is(r.ok, got, `probe said ${JSON.stringify(r)} but arrival=${got}`);
  return got;
}

async function floorOf(rec: SandboxRecord) {
  const { HostConfig: h, Config: c, NetworkSettings: n } = await docker.getContainer(rec.containerId!).inspect();
  return {
    CapDrop: h.CapDrop,
    SecurityOpt: h.SecurityOpt,
    ReadonlyRootfs: h.ReadonlyRootfs,
    Privileged: h.Privileged,
    NetworkMode: h.NetworkMode,
    Dns: h.Dns,
    Memory: h.Memory,
    PidsLimit: h.PidsLimit,
    networks: Object.keys(n.Networks ?? {}),
    User: c.User,
    Hostname: c.Hostname,
  };
}

let net: { id: string };
const POLICY = { name: 'one-port', outbound: [{ action: 'allow', protocol: 'tcp', destination: `${WEB}/32`, port: 80 }] };

test('the first request on a network is created cold and starts a pool there; the next is fitted from it', async () => {
  net = await nets().create(caller, { name: `pn-${token()}`, enableDNS: true });
  await nets().applyPolicy(caller, net.id, POLICY);
  const emptyBefore = await fit('empty');
  const first = await rt.sandboxes.create(onNet(net.id), caller);
  assert.is(await fit('empty'), emptyBefore + 1, 'the first request found no pool on the network');
  assert.is(first.networkId, net.id);
  await eventually(() => warmOn(net.id).size === POOL, 60_000);
  const warm = warmOn(net.id);
  const fitted = await fit('fitted');
  const sb = await rt.sandboxes.create(
    onNet(net.id, { environment: { MODE: 'warm' }, resourceLimits: { memory: 200, disk: 100 }, workdir: '/workspace' }),
    caller,
  );
  assert.ok(warm.has(sb.containerId), 'not served from the network’s pool');
  assert.is(await fit('fitted'), fitted + 1);
  assert.is(sb.networkId, net.id);
  assert.is(sb.workspace, caller.workspace);
  // The record has the container's real address: the deny log and DNS find the sandbox by it.
  const info = await docker.getContainer(sb.containerId!).inspect();
  const ip = Object.values(info.NetworkSettings.Networks ?? {})[0]?.IPAddress;
  assert.ok(ip);
  assert.is(sb.ipAddress, ip);
  assert.equal({ ...rt.networks!.store.sandboxByAddress(net.id, ip) }, { id: sb.id, workspace: caller.workspace });
  // The network's policy decides, exactly as for the cold sandbox beside it.
  for (const s of [first, sb]) {
    assert.is(await reaches(s.id, WEB, 80), true);
    assert.is(await reaches(s.id, WEB, 443), false);
    assert.is(await reaches(s.id, WEB2, 80), false);
  }
  const out = await rt.executor.run(caller, sb.id, { command: ['sh', '-c', 'echo "$MODE $(pwd)"'] });
  assert.is(out.stdout, 'warm /workspace\n');
  // Same hardening floor and network settings (DNS on the network's gateway) as the cold one, once
  // the engine's record has the fitted memory limit (the kernel had it at once).
  assert.is((await rt.sandboxes.metrics(caller, sb.id)).memory.limitBytes, 200 * 1024 * 1024);
  await eventually(async () => (await floorOf(sb)).Memory === 200 * 1024 * 1024);
  assert.equal(await floorOf(sb), { ...(await floorOf(first)), Memory: 200 * 1024 * 1024 });
  await rt.sandboxes.delete(caller, first.id);
  await rt.sandboxes.delete(caller, sb.id);
});

test('a policy change reaches pooled and fitted sandboxes on the network alike', async () => {
  await eventually(() => warmOn(net.id).size === POOL, 60_000);
  const warm = warmOn(net.id);
  const sb = await rt.sandboxes.create(onNet(net.id), caller);
  assert.ok(warm.has(sb.containerId));
  await nets().applyPolicy(caller, net.id, { name: 'none', outbound: [] });
  assert.is(await reaches(sb.id, WEB, 80), false);
  await nets().applyPolicy(caller, net.id, POLICY);
  assert.is(await reaches(sb.id, WEB, 80), true);
  await rt.sandboxes.delete(caller, sb.id);
});

test('another workspace naming the network is never served from its pool and gets not found', async () => {
  await eventually(() => warmOn(net.id).size === POOL, 60_000);
  const warm = warmOn(net.id);
  const other = { workspace: 'wsp_other', actor: 'intruder' };
  const err = await rt.sandboxes.create(onNet(net.id), other).then(
    () => null,
    (e: unknown) => e as { code?: string },
  );
  assert.is(err?.code, 'NOT_FOUND');
  assert.equal(warmOn(net.id), warm, 'a pooled sandbox of the network was claimed by another workspace');
});

test('20 concurrent creates on the network: all succeed, none shares a container, each on the network', async () => {
  await eventually(() => warmOn(net.id).size === POOL, 60_000);
  const warm = warmOn(net.id);
  const made = await Promise.all(
    Array.from({ length: 20 }, (_, i) => rt.sandboxes.create(onNet(net.id, { environment: { N: String(i) } }), caller)),
  );
  assert.is(new Set(made.map((r) => r.containerId)).size, 20);
  assert.is(new Set(made.map((r) => r.ipAddress)).size, 20, 'two sandboxes share an address');
  const fromPool = made.filter((r) => warm.has(r.containerId)).length;
  assert.ok(fromPool >= 1 && fromPool <= POOL, `${fromPool} served warm from a pool of ${POOL}`);
  for (const r of made) assert.is(r.networkId, net.id);
  await Promise.all(made.map((r) => rt.sandboxes.delete(caller, r.id)));
});

test('deleting the network removes its pool (warm sandboxes never hold the delete back) and no refill follows', async () => {
  await eventually(() => warmOn(net.id).size === POOL, 60_000);
  const containers = [...warmOn(net.id)];
  await nets().delete(caller, net.id);
  assert.is(warmOn(net.id).size, 0);
  for (const c of containers) assert.is(await rt.engine.inspectContainer(c!), null, 'a pooled container outlived its network');
  await sleep(500);
  assert.is(warmOn(net.id).size, 0, 'the pool refilled on a deleted network');
  // The image's own pool (no network) still serves.
  const sb = await rt.sandboxes.create({ image: BASE }, caller);
  assert.is(sb.networkId, null);
  await rt.sandboxes.delete(caller, sb.id);
});

test.run();
