/**
 * Name-based allowlists through the Director resolver: the only resolver a sandbox can reach,
 * answering only allowed names, filling the nft sets before it answers.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { startFakeInternet, type FakeInternet } from '../../helpers/fake-internet.ts';
import { dnsProbe, tcpProbe, token } from '../../helpers/net-client.ts';
import { BASE, caller, eventually, sleep, testRuntime, type TestRuntime } from '../../helpers/runtime.ts';

const test = suite('dns');
let rt: TestRuntime;
let fi: FakeInternet;
const WEB = '203.0.113.10';
const WEB2 = '203.0.113.20';
const UPSTREAM = '198.51.100.53';
let sandboxId = '';
let networkId = '';

test.before(async () => {
  fi = await startFakeInternet();
  await fi.setDns('api.example.test', [WEB]);
  await fi.setDns('evil.example.test', [WEB2]);
  await fi.setDns('rebind.example.test', ['169.254.169.254']);
  rt = testRuntime({ networking: 'on', dnsUpstream: UPSTREAM });
  await rt.start();
  const n = await rt.networks!.manager.create(caller, { name: 'names', enableDNS: true });
  await rt.networks!.manager.applyPolicy(caller, n.id, {
    name: 'by-name',
    outbound: [
      { action: 'allow', protocol: 'tcp', destination: 'api.example.test', port: 80 },
      { action: 'allow', protocol: 'tcp', destination: 'rebind.example.test', port: 80 },
    ],
  });
  networkId = n.id;
  const sb = await rt.sandboxes.create({ image: BASE, securityPolicy: { allowNetwork: true }, networkMode: n.id }, caller);
  sandboxId = sb.id;
});
test.after(async () => {
  await rt?.cleanup();
  await fi?.close();
});

const upstreamSaw = (name: string) => fi.received((o) => o.kind === 'dns' && o.name.toLowerCase().includes(name)).length > 0;
const arrived = (t: string) => fi.received((o) => o.kind === 'tcp' && o.data.includes(t)).length > 0;

test('an allowed name resolves through the Director resolver and its address becomes reachable', async () => {
  await fi.assertRoute(WEB);
  const before = await tcpProbe(rt, sandboxId, WEB, 80, token(), 1.5);
  assert.is(before.ok, false, 'the address must be closed until the name is resolved');
  const r = await dnsProbe(rt, sandboxId, 'api.example.test', 'system');
  assert.equal(r.addrs, [WEB], JSON.stringify(r));
  assert.ok(upstreamSaw('api.example.test'));
  const t = token();
  const after = await tcpProbe(rt, sandboxId, WEB, 80, t, 2);
  assert.is(after.ok, true, JSON.stringify(after));
  await sleep(100);
  assert.ok(arrived(t));
  // Only the allowed port of the allowed name's address: nothing else opened.
  assert.is((await tcpProbe(rt, sandboxId, WEB, 443, token(), 1.5)).ok, false);
  const view = await rt.networks!.manager.inForce(caller, networkId);
  const elements = Object.values(view?.sets ?? {}).flatMap((s) => s.elements.map((e) => e.addr));
  assert.ok(elements.includes(WEB), `name set ${JSON.stringify(view?.sets)}`);
});

test('a name the policy does not allow is refused, never forwarded, and reported', async () => {
  const r = await dnsProbe(rt, sandboxId, 'evil.example.test', 'system');
  assert.is(r.ok, false);
  await sleep(200);
  assert.not.ok(upstreamSaw('evil.example.test'), 'a refused name reached the upstream');
  const ev = await eventually(() =>
    rt.events.list({ type: 'dns_denied', networkId, limit: 50 }).find((e) => e.details.name === 'evil.example.test'),
  );
  assert.is(ev.sandboxId, sandboxId);
  assert.is(ev.details.reason, 'not_allowed');
  assert.is((await tcpProbe(rt, sandboxId, WEB2, 80, token(), 1.5)).ok, false);
});

test('a tunnelling query under a refused name never leaves the host', async () => {
  const label = 'a3f9c0d1e2b4a5f6071829304a5b6c7d8e9f0a1b2c3d4e5f60718293a4b5c6d7';
  const name = `${label.slice(0, 60)}.evil.example.test`;
  const r = await dnsProbe(rt, sandboxId, name, 'system');
  assert.is(r.ok, false);
  await sleep(200);
  assert.not.ok(upstreamSaw(label.slice(0, 20)), 'the tunnelling query reached the upstream');
  const ev = await eventually(() =>
    rt.events.list({ type: 'dns_denied', networkId, limit: 100 }).find((e) => String(e.details.name).startsWith(label.slice(0, 20))),
  );
  assert.is(ev.details.suspectedTunnel, true);
  assert.is(ev.severity, 'high');
});

test('an allowed name resolving into an always-denied range is refused (rebinding guard)', async () => {
  const r = await dnsProbe(rt, sandboxId, 'rebind.example.test', 'system');
  assert.is(r.ok, false, JSON.stringify(r));
  const ev = await eventually(() =>
    rt.events.list({ type: 'dns_denied', networkId, limit: 100 }).find((e) => e.details.name === 'rebind.example.test'),
  );
  assert.is(ev.details.reason, 'rebinding');
});

test('queries straight to another resolver (a "public" one) are dropped', async () => {
  await fi.assertRoute('198.51.100.88');
  const r = await dnsProbe(rt, sandboxId, 'api.example.test', '198.51.100.88', 1.5);
  assert.is(r.ok, false);
  const direct = await dnsProbe(rt, sandboxId, 'api.example.test', UPSTREAM, 1.5);
  assert.is(direct.ok, false, 'the upstream itself must be reachable only through Director');
});

test.run();
