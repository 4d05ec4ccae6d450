/**
 * The Director Protocol's Network API flow over real HTTP: create → apply policy → read the policy in force
 * back from the kernel → isolate → allow-access → delete (refused while a sandbox uses the
 * network, unless forced).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { allocateSubnet } from '../../../runtime/network/subnets.ts';
import { call, startApi, type TestApi } from '../../helpers/api.ts';
import { BUSYBOX } from '../../helpers/runtime.ts';

const test = suite('api-network-flow');
let api: TestApi;

interface RuleView {
  index: number;
  action: string;
  protocol: string;
  source?: string;
  destination?: string;
  port?: number;
  counter: { packets: number; bytes: number } | null;
}
interface InForce {
  isolated: boolean;
  mode: string | null;
  outbound: RuleView[];
  inbound: RuleView[];
  counters: { allowed: unknown; denied: unknown };
}
interface NetworkView {
  id: string;
  name: string;
  subnet: string;
  gateway: string;
  enableDNS: boolean;
  internal: boolean;
  isolated: boolean;
  bridge: string;
  status: string;
  policy: { name: string; outbound: Array<Record<string, unknown>>; inbound: Array<Record<string, unknown>> } | null;
  policyInForce?: InForce | null;
  sandboxes?: string[];
}

const SEED_POLICY = {
  name: 'restrictive-policy',
  description: 'Block all outbound traffic',
  inbound: [{ action: 'allow', protocol: 'all', source: '127.0.0.1/32' }],
  outbound: [{ action: 'deny', protocol: 'all' }],
  logging: true,
  metrics: true,
};

let netId = '';
let sandboxId = '';

test.before(async () => {
  api = await startApi({ networking: 'on' });
});
test.after(async () => {
  await api?.close();
});

const get = async (id: string) => call<{ data: NetworkView }>(api.url, 'GET', `/v1/networks/${id}`, { token: api.adminToken });

test('creating a network with the Director Protocol body (explicit subnet and gateway) answers 201 with what was asked', async () => {
  // A free /24 in Director's own range, never one of Docker's (172.17+/16 would overlap the default bridges).
  const taken = (await api.rt.engine.listNetworks({})).map((n) => n.subnet).filter((s): s is string => Boolean(s));
  const subnet = allocateSubnet('10.231.192.0/18', 24, taken);
  assert.ok(subnet, 'no free /24 for the test');
  const gateway = subnet.replace(/\.0\/24$/, '.1');
  const res = await call<{ data: NetworkView }>(api.url, 'POST', '/v1/networks', {
    token: api.adminToken,
    body: { name: 'sandbox-network', subnet, gateway, enableDNS: true, internal: true },
  });
  assert.is(res.status, 201, res.text);
  const n = res.body.data;
  assert.match(n.id, /^net_/);
  assert.equal(
    [n.name, n.subnet, n.gateway, n.enableDNS, n.internal, n.isolated, n.status],
    ['sandbox-network', subnet, gateway, true, true, false, 'ready'],
  );
  assert.match(n.bridge, /^dir-[0-9a-f]{8}$/);
  assert.ok((await api.rt.engine.listNetworks({ 'director.network': n.id })).length === 1, 'no engine network carries the id');
  netId = n.id;

  const dup = await call(api.url, 'POST', '/v1/networks', { token: api.adminToken, body: { name: 'sandbox-network' } });
  assert.is(dup.status, 409, dup.text);
  assert.is(dup.body.error?.code, 'CONFLICT');
});

test('a subnet overlapping another engine network is refused naming the field', async () => {
  const mine = (await get(netId)).body.data.subnet;
  const res = await call(api.url, 'POST', '/v1/networks', { token: api.adminToken, body: { name: 'overlap', subnet: mine } });
  assert.is(res.status, 400, res.text);
  assert.is(res.body.error?.code, 'VALIDATION_ERROR');
  assert.is(res.body.error?.details.field, 'subnet');
});

test('a network created without a subnet gets one from the pool', async () => {
  const res = await call<{ data: NetworkView }>(api.url, 'POST', '/v1/networks', {
    token: api.adminToken,
    body: { name: 'pooled', enableDNS: false },
  });
  assert.is(res.status, 201, res.text);
  assert.match(res.body.data.subnet, /^10\.231\.\d+\.0\/24$/);
  const del = await call(api.url, 'DELETE', `/v1/networks/${res.body.data.id}`, { token: api.adminToken });
  assert.is(del.status, 200, del.text);
  assert.is((await get(res.body.data.id)).status, 404);
});

test('applying the Director Protocol policy returns it, and GET reads the same rules back from the kernel with counters', async () => {
  const res = await call<{ data: NetworkView }>(api.url, 'POST', `/v1/networks/${netId}/policies`, {
    token: api.adminToken,
    body: SEED_POLICY,
  });
  assert.is(res.status, 200, res.text);
  assert.is(res.body.data.policy?.name, 'restrictive-policy');
  assert.ok(res.body.data.policyInForce, 'the apply response carries the policy in force');

  const got = await get(netId);
  assert.is(got.status, 200, got.text);
  const inForce = got.body.data.policyInForce;
  assert.ok(inForce, 'no policy read back from the kernel');
  assert.is(inForce.mode, 'enforce');
  assert.is(inForce.isolated, false);
  assert.is(inForce.outbound.length, 1);
  assert.is(inForce.outbound[0]!.action, 'deny');
  assert.is(inForce.outbound[0]!.protocol, 'all');
  assert.is(inForce.inbound.length, 1);
  assert.is(inForce.inbound[0]!.action, 'allow');
  assert.is(inForce.inbound[0]!.source, '127.0.0.1/32');
  // metrics: true → per-rule counters exist in the kernel.
  for (const r of [...inForce.outbound, ...inForce.inbound]) {
    assert.ok(r.counter && typeof r.counter.packets === 'number' && typeof r.counter.bytes === 'number', `rule ${r.index} has no counter`);
  }
  assert.equal(got.body.data.sandboxes, []);
});

test('an invalid policy is refused naming the field, and the policy in force is unchanged', async () => {
  const res = await call(api.url, 'POST', `/v1/networks/${netId}/policies`, {
    token: api.adminToken,
    body: { name: 'bad', outbound: [{ action: 'allow', protocol: 'icmp', destination: '10.0.0.0/8', port: 80 }] },
  });
  assert.is(res.status, 400, res.text);
  assert.is(res.body.error?.code, 'VALIDATION_ERROR');
  assert.is(res.body.error?.details.field, 'outbound[0].port');
  const wildcard = await call(api.url, 'POST', `/v1/networks/${netId}/policies`, {
    token: api.adminToken,
    body: { name: 'bad', outbound: [{ action: 'allow', protocol: 'tcp', destination: '*' }] },
  });
  assert.is(wildcard.status, 400, wildcard.text);
  assert.is(wildcard.body.error?.details.field, 'outbound[0].destination');
  const got = await get(netId);
  assert.is(got.body.data.policy?.name, 'restrictive-policy');
  assert.is(got.body.data.policyInForce?.outbound[0]?.action, 'deny');
});

test('a sandbox joins the network and is listed on it', async () => {
  const res = await call<{ data: { id: string; networkId: string | null; networkMode: string; ipAddress: string | null } }>(
    api.url,
    'POST',
    '/v1/sandboxes',
    {
      token: api.adminToken,
      body: { image: BUSYBOX, securityPolicy: { allowNetwork: true }, networkMode: netId },
    },
  );
  assert.is(res.status, 201, res.text);
  sandboxId = res.body.data.id;
  assert.is(res.body.data.networkId, netId);
  const got = await get(netId);
  assert.equal(got.body.data.sandboxes, [sandboxId]);
});

test('isolate shows in the kernel read-back, and release lifts it', async () => {
  const res = await call<{ data: NetworkView }>(api.url, 'POST', `/v1/networks/${netId}/isolate`, { token: api.adminToken });
  assert.is(res.status, 200, res.text);
  assert.is(res.body.data.isolated, true);
  const got = await get(netId);
  assert.is(got.body.data.isolated, true);
  assert.is(got.body.data.policyInForce?.isolated, true, 'isolation is not in the kernel');
  const ev = api.rt.events.list({ networkId: netId, type: 'network_isolated', limit: 10 });
  assert.is(ev.length, 1);
  assert.is(ev[0]!.severity, 'high');
});

test('allow-access adds the destination to the policy in force, isolation stays', async () => {
  const res = await call<{ data: NetworkView }>(api.url, 'POST', `/v1/networks/${netId}/allow-access`, {
    token: api.adminToken,
    body: { destinations: [{ host: 'api.example.com', port: 443, protocol: 'tcp', description: 'Allow API access' }] },
  });
  assert.is(res.status, 200, res.text);
  // Ahead of the seed policy's deny-all (the default restated), where the first match lets it through.
  assert.equal(res.body.data.policy?.outbound, [
    { action: 'allow', protocol: 'tcp', destination: 'api.example.com', port: 443, description: 'Allow API access' },
    { action: 'deny', protocol: 'all' },
  ]);
  const got = await get(netId);
  const inForce = got.body.data.policyInForce;
  assert.ok(inForce);
  assert.is(inForce.isolated, true);
  const rule = inForce.outbound.find((r) => r.destination === 'api.example.com');
  assert.ok(rule, `allow rule not read back: ${JSON.stringify(inForce.outbound)}`);
  assert.equal([rule.action, rule.protocol, rule.port], ['allow', 'tcp', 443]);

  const bad = await call(api.url, 'POST', `/v1/networks/${netId}/allow-access`, {
    token: api.adminToken,
    body: { destinations: [{ host: '*' }] },
  });
  assert.is(bad.status, 400, bad.text);
  assert.is(bad.body.error?.details.field, 'destinations[0].host');

  const released = await call<{ data: NetworkView }>(api.url, 'POST', `/v1/networks/${netId}/release`, { token: api.adminToken });
  assert.is(released.status, 200, released.text);
  assert.is((await get(netId)).body.data.policyInForce?.isolated, false);
});

test('the network is listed', async () => {
  const res = await call<{ data: { items: NetworkView[]; total: number } }>(api.url, 'GET', '/v1/networks?limit=20', {
    token: api.adminToken,
  });
  assert.is(res.status, 200, res.text);
  assert.ok(res.body.data.items.some((n) => n.id === netId));
  // A sandbox's private network is not a user network and is not listed.
  assert.ok(res.body.data.items.every((n) => !n.name.startsWith('isolated-')));
});

test('delete is refused with 409 while a sandbox uses the network; force=true deletes both', async () => {
  const refused = await call(api.url, 'DELETE', `/v1/networks/${netId}`, { token: api.adminToken });
  assert.is(refused.status, 409, refused.text);
  assert.is(refused.body.error?.code, 'CONFLICT');
  assert.equal(refused.body.error?.details.sandboxes, [sandboxId]);
  assert.is((await get(netId)).status, 200, 'the refused delete removed the network');

  const forced = await call(api.url, 'DELETE', `/v1/networks/${netId}?force=true`, { token: api.adminToken });
  assert.is(forced.status, 200, forced.text);
  assert.equal(forced.body.data, { id: netId, deleted: true });
  assert.is((await get(netId)).status, 404);
  assert.is((await call(api.url, 'GET', `/v1/sandboxes/${sandboxId}`, { token: api.adminToken })).status, 404);
  assert.is((await api.rt.engine.listNetworks({ 'director.network': netId })).length, 0, 'the engine network is left');
  const left = await api.rt.engine.listContainers({ 'director.runtime': api.rt.config.runtimeName });
  assert.is(left.filter((c) => c.labels['director.sandbox'] === sandboxId).length, 0, 'the sandbox container is left');
  assert.is(api.rt.events.list({ networkId: netId, type: 'network_deleted', limit: 10 })[0]?.details.forced, true);
});

test.run();
