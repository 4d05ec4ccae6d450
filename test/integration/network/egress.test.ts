/**
 * Egress and ingress enforcement with real packets: sandboxes on Director networks talk to
 * TEST-NET hosts in a fake-internet namespace; every case asserts whether bytes arrived there.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { runNft } from '../../../netfilter/nft.ts';
import { startFakeInternet, type FakeInternet } from '../../helpers/fake-internet.ts';
import { tcpProbe, token, udpProbe, dnsProbe } from '../../helpers/net-client.ts';
import { BASE, caller, eventually, sleep, testRuntime, type TestRuntime } from '../../helpers/runtime.ts';

const test = suite('egress');
let rt: TestRuntime;
let fi: FakeInternet;
const WEB = '203.0.113.10';
const WEB2 = '203.0.113.20';
const METADATA = '169.254.169.254';

test.before(async () => {
  fi = await startFakeInternet({ webHosts: [WEB, WEB2, METADATA] });
  rt = testRuntime({ networking: 'on', nftCheckIntervalMs: 300 });
  await rt.start();
});
test.after(async () => {
  await rt?.cleanup();
  await fi?.close();
});

const nets = () => rt.networks!.manager;
const arrived = (t: string) => fi.received((o) => (o.kind === 'tcp' || o.kind === 'udp') && o.data.includes(t)).length > 0;

async function sandboxOn(networkMode: string) {
  return rt.sandboxes.create({ image: BASE, securityPolicy: { allowNetwork: true }, networkMode }, caller);
}

async function network(policy?: unknown, name = `n-${token()}`) {
  const n = await nets().create(caller, { name, enableDNS: false });
  if (policy) await nets().applyPolicy(caller, n.id, policy);
  return n;
}

/** Connects and proves whether the payload reached the fake host. */
async function reaches(id: string, host: string, port: number): Promise<boolean> {
  await fi.assertRoute(host);
  const t = token();
  const r = await tcpProbe(rt, id, host, port, t, 1.5);
  await sleep(100);
  const got = arrived(t);
  assert.is(r.ok, got, `probe said ${JSON.stringify(r)} but arrival=${got}`);
  return got;
}

test('an isolated sandbox has egress denied by default', async () => {
  const sb = await sandboxOn('isolated');
  assert.ok(sb.networkId);
  assert.is(await reaches(sb.id, WEB, 80), false);
});

test('a network without a policy reaches the internet (control for the cases below)', async () => {
  const n = await network();
  const sb = await sandboxOn(n.id);
  assert.is(await reaches(sb.id, WEB, 80), true);
});

test('allowing one host:port allows exactly that and nothing else', async () => {
  const n = await network({ name: 'one', outbound: [{ action: 'allow', protocol: 'tcp', destination: `${WEB}/32`, port: 80 }] });
  const sb = await sandboxOn(n.id);
  assert.is(await reaches(sb.id, WEB, 80), true);
  assert.is(await reaches(sb.id, WEB, 443), false);
  assert.is(await reaches(sb.id, WEB2, 80), false);
});

test('the first matching rule decides: a deny ahead of a broader allow takes its part', async () => {
  const n = await network({
    name: 'deny-first',
    outbound: [
      { action: 'deny', protocol: 'tcp', destination: `${WEB2}/32` },
      { action: 'allow', protocol: 'tcp', destination: '203.0.113.0/24' },
    ],
  });
  const sb = await sandboxOn(n.id);
  assert.is(await reaches(sb.id, WEB, 8080), true);
  assert.is(await reaches(sb.id, WEB2, 8080), false);
});

test('UDP passes only where allowed', async () => {
  const n = await network({ name: 'udp', outbound: [{ action: 'allow', protocol: 'udp', destination: `${WEB}/32`, port: 5353 }] });
  const sb = await sandboxOn(n.id);
  const a = token();
  const b = token();
  await fi.assertRoute(WEB);
  assert.is((await udpProbe(rt, sb.id, WEB, 5353, a, 1)).ok, true);
  assert.is((await udpProbe(rt, sb.id, WEB, 9999, b, 1)).ok, false);
  await sleep(100);
  assert.ok(arrived(a));
  assert.not.ok(arrived(b));
});

test('cloud metadata is blocked even under an allow-all policy', async () => {
  // Control: the fake metadata host answers a plain Director network without a policy? No:
  // metadata is always denied, with or without a policy. The control is the host itself.
  await fi.assertRoute(METADATA);
  const ctl = await fi.tcpExchange(METADATA, 80, `${token()}\n`);
  assert.match(ctl, /^ok /);
  const n = await network({ name: 'allow-all', outbound: [{ action: 'allow', protocol: 'all', destination: '0.0.0.0/0' }] });
  const sb = await sandboxOn(n.id);
  assert.is(await reaches(sb.id, WEB, 80), true);
  assert.is(await reaches(sb.id, METADATA, 80), false);
  const mapped = await tcpProbe(rt, sb.id, `::ffff:${METADATA}`, 80, token(), 1.5);
  assert.is(mapped.ok, false);
});

test('IPv4-mapped IPv6 and IPv6 literals get the same treatment', async () => {
  const n = await network({ name: 'v4only', outbound: [{ action: 'allow', protocol: 'tcp', destination: `${WEB}/32` }] });
  const sb = await sandboxOn(n.id);
  const t = token();
  const r = await tcpProbe(rt, sb.id, `::ffff:${WEB2}`, 80, t, 1.5);
  assert.is(r.ok, false);
  assert.not.ok(arrived(t));
  const v6 = await tcpProbe(rt, sb.id, '2001:db8:1::10', 80, token(), 1.5);
  assert.is(v6.ok, false);
});

test('a policy change on a running sandbox applies to new connections at once', async () => {
  const n = await network({ name: 'before', outbound: [] });
  const sb = await sandboxOn(n.id);
  assert.is(await reaches(sb.id, WEB, 5000), false);
  await nets().applyPolicy(caller, n.id, {
    name: 'after',
    outbound: [{ action: 'allow', protocol: 'tcp', destination: `${WEB}/32`, port: 5000 }],
  });
  assert.is(await reaches(sb.id, WEB, 5000), true);
  await nets().allowAccess(caller, n.id, { destinations: [{ host: WEB2, port: 443, protocol: 'tcp' }] });
  assert.is(await reaches(sb.id, WEB2, 443), true);
  assert.is(await reaches(sb.id, WEB2, 80), false);
});

test('isolate cuts an open connection and everything new', async () => {
  const n = await network();
  const sb = await sandboxOn(n.id);
  const first = token();
  const second = token();
  await fi.assertRoute(WEB);
  // One connection: send, wait for the reply, sleep while the network is isolated, send again.
  const script = `
import socket, sys, time
s = socket.create_connection(("${WEB}", 80), timeout=3)
s.sendall(b"${first}\\n"); print("r1", s.recv(100)); sys.stdout.flush()
time.sleep(2.5)
try:
    s.sendall(b"${second}\\n"); s.settimeout(2); print("r2", s.recv(100))
except Exception as e:
    print("r2 failed", type(e).__name__)
`;
  let stdout = '';
  let isolated = false;
  for await (const c of rt.executor.stream(caller, sb.id, { command: ['python3', '-u', '-c', script], timeout: 15_000 })) {
    if (c.type !== 'stdout') continue;
    stdout += c.data;
    // The first exchange completed on an open connection: isolate while it stays open.
    if (!isolated && stdout.includes('r1')) {
      isolated = true;
      await nets().isolate(caller, n.id);
    }
  }
  assert.match(stdout, /r1 b'ok/);
  assert.not.match(stdout, /r2 b'ok/);
  // The fake host reports a connection's bytes only when it closes, and isolation drops the
  // FIN too, so the proof is the round trip: the reply to the second line never came back.
  assert.is(await reaches(sb.id, WEB, 80), false);
});

test('DNS to a foreign resolver is dropped, whatever the policy allows', async () => {
  const n = await network({ name: 'dns-open', outbound: [{ action: 'allow', protocol: 'all', destination: '198.51.100.0/24' }] });
  const sb = await sandboxOn(n.id);
  await fi.assertRoute('198.51.100.88');
  await fi.setDns('leak.example.test', [WEB]);
  const r = await dnsProbe(rt, sb.id, 'leak.example.test', '198.51.100.88', 1.5);
  assert.is(r.ok, false);
  await sleep(100);
  assert.is(fi.received({ kind: 'dns', server: '198.51.100.88' }).length, 0, 'the query reached the foreign resolver');
  // DNS over TLS is dropped too.
  assert.is(await reaches(sb.id, '198.51.100.88', 853).catch(() => false), false);
});

test('sandbox → host gateway and host services are blocked', async () => {
  const n = await network({ name: 'allow-all-2', outbound: [{ action: 'allow', protocol: 'all', destination: '0.0.0.0/0' }] });
  const sb = await sandboxOn(n.id);
  const { createServer } = await import('node:net');
  const seen: string[] = [];
  const server = createServer((s) =>
    s.on('data', (d: Buffer) => {
      seen.push(d.toString());
      s.end('ok\n');
    }),
  );
  await new Promise<void>((r) => server.listen(0, '0.0.0.0', r));
  const port = (server.address() as { port: number }).port;
  try {
    const t = token();
    const r = await tcpProbe(rt, sb.id, n.gateway, port, t, 1.5);
    assert.is(r.ok, false, `reached a host service on the gateway: ${JSON.stringify(r)}`);
    assert.not.ok(seen.some((s) => s.includes(t)));
  } finally {
    server.close();
  }
});

test('sandbox → sandbox across networks is blocked; within a network peers talk even under deny-all', async () => {
  const a = await network({ name: 'peers', outbound: [] });
  const b = await network();
  const sa = await sandboxOn(a.id);
  const sa2 = await sandboxOn(a.id);
  const sb = await sandboxOn(b.id);
  const serve = `import socket
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", 7000)); s.listen()
while True:
    c,_=s.accept(); d=c.recv(100); c.sendall(b"ok "+d); c.close()`;
  void rt.executor.run(caller, sa.id, { command: ['python3', '-c', serve], timeout: 30_000 }).catch(() => undefined);
  await sleep(500);
  const same = await tcpProbe(rt, sa2.id, sa.ipAddress!, 7000, token(), 1.5);
  assert.is(same.ok, true, JSON.stringify(same));
  const cross = await tcpProbe(rt, sb.id, sa.ipAddress!, 7000, token(), 1.5);
  assert.is(cross.ok, false, JSON.stringify(cross));
});

test('counters and events match what was sent', async () => {
  const n = await network({ name: 'count', outbound: [{ action: 'allow', protocol: 'tcp', destination: `${WEB}/32`, port: 80 }] });
  const sb = await sandboxOn(n.id);
  const before = rt.events.list({ networkId: n.id, type: 'egress_denied', limit: 1000 }).length;
  for (let i = 0; i < 3; i++) assert.is(await reaches(sb.id, WEB, 443), false);
  assert.is(await reaches(sb.id, WEB, 80), true);
  const ev = await eventually(() => {
    const list = rt.events.list({ networkId: n.id, type: 'egress_denied', limit: 1000 }).slice(before);
    return list.length > 0 ? list : null;
  }, 5000);
  const e = ev[0]!;
  assert.is(e.sandboxId, sb.id);
  assert.is(e.details.destination, WEB);
  assert.is(e.details.port, 443);
  assert.is(e.details.protocol, 'tcp');
  assert.is(e.details.rule, 'guard:default');
  const view = await nets().inForce(caller, n.id);
  // Each refused connect() retransmits its SYN, so at least one denied packet per attempt.
  assert.ok((view?.counters.denied?.packets ?? 0) >= 3, `denied counter ${JSON.stringify(view?.counters)}`);
  assert.ok((view?.counters.allowed?.packets ?? 0) >= 1);
  const metrics = await rt.metrics.registry.getSingleMetricAsString('director_network_packets_total');
  assert.match(metrics, new RegExp(`network="${n.name}",verdict="denied"`));
});

test("removing Director's table from outside is detected, repaired, and reported", async () => {
  const n = await network({ name: 'tamper', outbound: [] });
  const sb = await sandboxOn(n.id);
  await runNft(['delete', 'table', 'inet', rt.config.nftTable]);
  const ev = await eventually(() => rt.events.list({ type: 'policy_tampered', limit: 10 })[0], 5000, 50);
  assert.is(ev.severity, 'critical');
  await eventually(() => rt.events.list({ type: 'policy_restored', limit: 10 })[0], 5000, 50);
  assert.is(await reaches(sb.id, WEB, 80), false, 'egress open after the table was restored');
});

test('a policy change is in force when applyPolicy returns; the replaced rules are deleted soon after, or with the network', async () => {
  const n = await network({ name: 'v1', outbound: [{ action: 'allow', protocol: 'tcp', destination: `${WEB}/32`, port: 80 }] });
  const sb = await sandboxOn(n.id);
  assert.is(await reaches(sb.id, WEB, 80), true);
  const v2 = await nets().applyPolicy(caller, n.id, {
    name: 'v2',
    outbound: [{ action: 'allow', protocol: 'tcp', destination: `${WEB2}/32`, port: 80 }],
  });
  assert.is(await reaches(sb.id, WEB, 80), false, 'the old allow is out of force');
  assert.is(await reaches(sb.id, WEB2, 80), true, 'the new allow is in force');
  const view = async () => (await rt.networks!.firewall.view(v2))!;
  const { generation } = await eventually(async () => ((await view()).generations.length === 1 ? view() : undefined), 5000, 50);
  const listing = await runNft(['list', 'table', 'inet', rt.config.nftTable]);
  const g = String(generation);
  assert.equal(
    [...listing.matchAll(new RegExp(`chain net_${n.short}_(out|in|host)_g(\\d+)`, 'g'))].map((m) => m[2]),
    [g, g, g],
    'only the generation in force is left',
  );
  // A change then a delete before the replaced generation is retired: nothing is left either.
  await rt.sandboxes.delete(caller, sb.id);
  await nets().applyPolicy(caller, n.id, { name: 'v3', outbound: [] });
  await nets().delete(caller, n.id);
  assert.not.match(await runNft(['list', 'table', 'inet', rt.config.nftTable]), n.short);
});

test('deleting networks leaves no chain, set, map element or bridge behind', async () => {
  const n = await network({ name: 'gone', outbound: [{ action: 'allow', protocol: 'tcp', destination: 'api.example.test', port: 443 }] });
  const sb = await sandboxOn(n.id);
  try {
    await nets().delete(caller, n.id);
    assert.unreachable('delete must be refused while a sandbox uses the network');
  } catch (err) {
    assert.is((err as { code?: string }).code, 'CONFLICT');
  }
  await rt.sandboxes.delete(caller, sb.id);
  await nets().delete(caller, n.id);
  const listing = await runNft(['list', 'table', 'inet', rt.config.nftTable]);
  assert.not.match(listing, n.short);
  assert.not.match(listing, n.bridge);
  const links = await runNft(['list', 'tables'])
    .then(() => import('node:child_process'))
    .then((cp) => cp.execFileSync('ip', ['-o', 'link']).toString());
  assert.not.match(links, n.bridge);
});

test.run();
