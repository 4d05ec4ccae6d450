/**
 * Network policies mean what operators write (issue 14), over real HTTP and real packets:
 * rules in order with the first match deciding, for addresses and for host names through the
 * Director resolver; shadowed rules refused with the kernel unchanged; the verdict endpoint,
 * computed from the kernel's read-back, agreeing with the packets in every case; Director's
 * guards (level operator) still first, whatever a policy allows.
 *
 * Sandboxes talk to TEST-NET hosts in a fake-internet namespace (`test/helpers/fake-internet.ts`);
 * every case asserts whether bytes arrived there, and asks the verdict endpoint the same question.
 */
import { createServer } from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { runNft } from '../../../netfilter/nft.ts';
import { call, startApi, type Res, type TestApi } from '../../helpers/api.ts';
import { startFakeInternet, type FakeInternet } from '../../helpers/fake-internet.ts';
import { dnsProbe as dnsProbeAs, tcpProbe as tcpProbeAs, token, type ProbeCaller } from '../../helpers/net-client.ts';
import { BASE, sleep } from '../../helpers/runtime.ts';

const test = suite('policy-order');
let api: TestApi;
let fi: FakeInternet;
const X = '203.0.113.10';
const Y = '203.0.113.20';
const METADATA = '169.254.169.254';

interface Verdict {
  verdict: 'allow' | 'deny';
  passes: boolean;
  decidedBy: { level: string; kind: string; tag: string; guard?: string; rule?: string };
  chain: string;
  resolver?: { answers: boolean; reason?: string; decidedBy: { rule?: string } | null };
}
interface Net {
  id: string;
  gateway: string;
  policy: Record<string, unknown> | null;
  policyInForce?: {
    generation: number;
    outbound: { index: number; action: string }[];
    evaluation: { outbound: { level: string; kind: string; tag: string; rule?: string; guard?: string; action: string }[] };
  } | null;
}

/** The admin's workspace: where the networks made over HTTP are, and so their sandboxes. */
let as: ProbeCaller = { workspace: '' };
const tcpProbe = (rt: TestApi['rt'], id: string, host: string, port: number, payload = token(), timeoutS = 2) =>
  tcpProbeAs(rt, id, host, port, payload, timeoutS, as);
const dnsProbe = (rt: TestApi['rt'], id: string, name: string, server: string, timeoutS = 2) =>
  dnsProbeAs(rt, id, name, server, timeoutS, as);

test.before(async () => {
  fi = await startFakeInternet({ webHosts: [X, Y, METADATA] });
  await fi.setDns('api.example.test', [X]);
  await fi.setDns('other.example.test', [Y]);
  await fi.setDns('evil.example.test', [X]);
  await fi.setDns('good.example.test', [Y]);
  api = await startApi({ networking: 'on', dnsUpstream: fi.upstreamDns });
});
test.after(async () => {
  await api?.close();
  await fi?.close();
});

const http = <T>(method: string, path: string, body?: unknown): Promise<Res<{ data: T }>> =>
  call<{ data: T }>(api.url, method, path, { token: api.adminToken, ...(body === undefined ? {} : { body }) });

async function network(policy: unknown, enableDNS = false): Promise<Net> {
  const made = await http<Net>('POST', '/v1/networks', { name: `o-${token()}`, enableDNS });
  assert.is(made.status, 201, made.text);
  const applied = await http<Net>('POST', `/v1/networks/${made.body.data.id}/policies`, policy);
  assert.is(applied.status, 200, applied.text);
  as = { workspace: api.rt.networks!.store.byId(made.body.data.id)!.workspace, actor: 'test' };
  return applied.body.data;
}

async function sandboxOn(net: Net): Promise<{ id: string; ipAddress: string | null }> {
  return api.rt.sandboxes.create({ image: BASE, securityPolicy: { allowNetwork: true }, networkMode: net.id }, as);
}

async function verdictOf(net: Net, q: Record<string, unknown>): Promise<Verdict> {
  const res = await http<Verdict>('POST', `/v1/networks/${net.id}/policy/test`, q);
  assert.is(res.status, 200, res.text);
  return res.body.data;
}

const arrived = (t: string) => fi.received((o) => (o.kind === 'tcp' || o.kind === 'udp') && o.data.includes(t)).length > 0;

/**
 * Connects from the sandbox to `host` (an address, or a name the sandbox resolves through the
 * Director resolver) and proves on the fake host whether the bytes arrived; then asks the verdict
 * endpoint about the same connection and checks it agrees. Returns the packets' answer.
 */
async function reaches(
  net: Net,
  sandboxId: string,
  host: string,
  port: number,
  expect: { decidedBy: string; level: string },
): Promise<boolean> {
  const isName = /[a-z]/.test(host);
  const target = isName ? ((await dnsProbe(api.rt, sandboxId, host, 'system', 2)).addrs?.[0] ?? null) : host;
  if (target) await fi.assertRoute(target);
  const t = token();
  const r = await tcpProbe(api.rt, sandboxId, host, port, t, 1.5);
  await sleep(100);
  const got = arrived(t);
  assert.is(r.ok, got, `probe said ${JSON.stringify(r)} but arrival=${got}`);
  const v = await verdictOf(net, { direction: 'outbound', protocol: 'tcp', port, ...(isName ? { host } : { address: host }) });
  assert.is(v.passes, got, `${host}:${port}: the verdict ${JSON.stringify(v)} disagrees with the packets (arrived=${got})`);
  assert.equal(
    [v.decidedBy.rule ?? v.decidedBy.tag, v.decidedBy.level],
    [expect.decidedBy, expect.level],
    `${host}:${port}: ${JSON.stringify(v)}`,
  );
  return got;
}

test('allow X:port then deny all: X:port is reachable, X on another port and every other host are not', async () => {
  const net = await network({
    name: 'only-api',
    outbound: [
      { action: 'allow', protocol: 'tcp', destination: `${X}/32`, port: 8080 },
      { action: 'deny', protocol: 'all' },
    ],
  });
  const sb = await sandboxOn(net);
  assert.is(await reaches(net, sb.id, X, 8080, { decidedBy: 'outbound[0]', level: 'network' }), true);
  assert.is(await reaches(net, sb.id, X, 80, { decidedBy: 'outbound[1]', level: 'network' }), false);
  assert.is(await reaches(net, sb.id, Y, 8080, { decidedBy: 'outbound[1]', level: 'network' }), false);
  // GET reads the rules back in evaluation order: Director's guards, then the rules as written.
  const got = await http<Net>('GET', `/v1/networks/${net.id}`);
  const steps = got.body.data.policyInForce!.evaluation.outbound;
  assert.equal(
    steps.filter((s) => s.kind !== 'guard').map((s) => `${s.rule ?? s.tag}:${s.action}`),
    ['outbound[0]:allow', 'outbound[1]:deny', 'o.default:deny'],
  );
  assert.ok(
    steps
      .slice(
        0,
        steps.findIndex((s) => s.rule),
      )
      .every((s) => s.level === 'operator' || s.guard === 'established'),
  );
  assert.equal(
    got.body.data.policyInForce!.outbound.map((r) => `${r.index}:${r.action}`),
    ['0:allow', '1:deny'],
  );
});

test('deny X then allow all: X is unreachable, other hosts reachable, the always-denied ranges still not', async () => {
  const net = await network({
    name: 'all-but-x',
    outbound: [
      { action: 'deny', protocol: 'all', destination: `${X}/32` },
      { action: 'allow', protocol: 'all' },
    ],
  });
  const sb = await sandboxOn(net);
  assert.is(await reaches(net, sb.id, X, 80, { decidedBy: 'outbound[0]', level: 'network' }), false);
  assert.is(await reaches(net, sb.id, Y, 80, { decidedBy: 'outbound[1]', level: 'network' }), true);
  assert.is(await reaches(net, sb.id, METADATA, 80, { decidedBy: 'o.range', level: 'operator' }), false);
});

test('by name through the Director resolver: allow api:port then deny all', async () => {
  const net = await network(
    {
      name: 'api-by-name',
      outbound: [
        { action: 'allow', protocol: 'tcp', destination: 'api.example.test', port: 8080 },
        { action: 'deny', protocol: 'all' },
      ],
    },
    true,
  );
  const sb = await sandboxOn(net);
  assert.equal((await dnsProbe(api.rt, sb.id, 'api.example.test', 'system')).addrs, [X]);
  assert.is(await reaches(net, sb.id, 'api.example.test', 8080, { decidedBy: 'outbound[0]', level: 'network' }), true);
  assert.is(await reaches(net, sb.id, 'api.example.test', 80, { decidedBy: 'outbound[1]', level: 'network' }), false);
  // Another name is refused by the resolver (the deny-all is the first rule that can match it)...
  assert.is((await dnsProbe(api.rt, sb.id, 'other.example.test', 'system')).ok, false);
  assert.is(await reaches(net, sb.id, 'other.example.test', 8080, { decidedBy: 'outbound[1]', level: 'network' }), false);
  const refused = await verdictOf(net, { direction: 'outbound', protocol: 'tcp', host: 'other.example.test', port: 8080 });
  assert.equal([refused.resolver?.answers, refused.resolver?.reason], [false, 'denied_by_rule']);
  // ... and the addresses: the one the allowed name answered is open on that port only, others not.
  assert.is(await reaches(net, sb.id, X, 8080, { decidedBy: 'outbound[0]', level: 'network' }), true);
  assert.is(await reaches(net, sb.id, Y, 8080, { decidedBy: 'outbound[1]', level: 'network' }), false);
});

test('by name through the Director resolver: deny evil then allow all', async () => {
  const net = await network(
    {
      name: 'all-but-evil',
      outbound: [
        { action: 'deny', protocol: 'all', destination: 'evil.example.test' },
        { action: 'allow', protocol: 'all' },
      ],
    },
    true,
  );
  const sb = await sandboxOn(net);
  assert.is((await dnsProbe(api.rt, sb.id, 'evil.example.test', 'system')).ok, false, 'the denied name resolved');
  assert.is(await reaches(net, sb.id, 'evil.example.test', 80, { decidedBy: 'outbound[0]', level: 'network' }), false);
  const evil = await verdictOf(net, { direction: 'outbound', protocol: 'tcp', host: 'evil.example.test', port: 80 });
  assert.equal([evil.resolver?.answers, evil.resolver?.reason], [false, 'denied_by_rule']);
  assert.equal((await dnsProbe(api.rt, sb.id, 'good.example.test', 'system')).addrs, [Y]);
  assert.is(await reaches(net, sb.id, 'good.example.test', 80, { decidedBy: 'outbound[1]', level: 'network' }), true);
  const event = api.rt.events
    .list({ networkId: net.id, type: 'dns_denied', limit: 20 })
    .find((e) => e.details.name === 'evil.example.test');
  assert.is(event?.details.reason, 'denied_by_rule');
});

test('a shadowed rule is refused with a 400 naming both rules, and nothing is applied: the kernel is unchanged', async () => {
  const net = await network({ name: 'before', outbound: [{ action: 'allow', protocol: 'tcp', destination: `${X}/32`, port: 80 }] });
  const sb = await sandboxOn(net);
  // The whole table (every network's chains, sets and rules) without what traffic moves: counters and expiry countdowns.
  const listing = async () =>
    (await runNft(['list', 'table', 'inet', api.rt.config.nftTable])).replace(/packets \d+ bytes \d+/g, '').replace(/expires \S+/g, '');
  await api.rt.networks!.firewall.settle();
  const kernelBefore = await listing();
  const generation = (await http<Net>('GET', `/v1/networks/${net.id}`)).body.data.policyInForce!.generation;
  for (const [outbound, rule, by] of [
    [
      [
        { action: 'allow', protocol: 'tcp', destination: '203.0.113.0/24' },
        { action: 'deny', protocol: 'tcp', destination: `${Y}/32`, port: 80 },
      ],
      'outbound[1]',
      'outbound[0]',
    ],
    [
      [
        { action: 'deny', protocol: 'udp' },
        { action: 'allow', protocol: 'tcp', destination: '*.example.test' },
        { action: 'deny', protocol: 'tcp', destination: 'api.example.test', port: 443 },
      ],
      'outbound[2]',
      'outbound[1]',
    ],
  ] as const) {
    const res = await http('POST', `/v1/networks/${net.id}/policies`, { name: 'shadowed', outbound });
    assert.is(res.status, 400, res.text);
    assert.is(res.body.error?.code, 'VALIDATION_ERROR');
    assert.match(res.body.error!.message, `${rule} is shadowed by ${by}`);
    assert.equal([res.body.error?.details.field, res.body.error?.details.shadowedBy], [rule, by]);
  }
  assert.is(await listing(), kernelBefore, 'a refused policy changed the kernel');
  const after = (await http<Net>('GET', `/v1/networks/${net.id}`)).body.data;
  assert.is(after.policy?.name, 'before');
  assert.is(after.policyInForce!.generation, generation);
  assert.is(await reaches(net, sb.id, X, 80, { decidedBy: 'outbound[0]', level: 'network' }), true);
  assert.is(await reaches(net, sb.id, Y, 80, { decidedBy: 'o.default', level: 'network' }), false);
});

test('a narrower level cannot reopen what a wider level denies: allowing everything leaves the operator guards in force', async () => {
  const other = await network({ name: 'other', outbound: [] });
  const peer = await sandboxOn(other);
  const serve = `import socket
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", 7000)); s.listen()
while True:
    c,_=s.accept(); d=c.recv(100); c.sendall(b"ok "+d); c.close()`;
  void api.rt.executor.run(as, peer.id, { command: ['python3', '-c', serve], timeout: 60_000 }).catch(() => undefined);
  const net = await network({ name: 'everything', outbound: [{ action: 'allow', protocol: 'all', destination: '0.0.0.0/0' }] });
  const sb = await sandboxOn(net);
  assert.is(await reaches(net, sb.id, Y, 80, { decidedBy: 'outbound[0]', level: 'network' }), true, 'control: the policy allows');
  assert.is(await reaches(net, sb.id, METADATA, 80, { decidedBy: 'o.range', level: 'operator' }), false);
  // Another Director network's sandbox (serving, reachable from its own network).
  await sleep(300);
  const cross = await tcpProbe(api.rt, sb.id, peer.ipAddress!, 7000, token(), 1.5);
  assert.is(cross.ok, false, JSON.stringify(cross));
  const xnet = await verdictOf(net, { direction: 'outbound', protocol: 'tcp', address: peer.ipAddress, port: 7000 });
  assert.equal([xnet.verdict, xnet.passes, xnet.decidedBy.guard, xnet.decidedBy.level], ['deny', false, 'xnet', 'operator']);
  // The host itself, on its address on this network's bridge.
  const seen: string[] = [];
  const server = createServer((s) => s.on('data', (d: Buffer) => (seen.push(d.toString()), s.end('ok\n'))));
  await new Promise<void>((r) => server.listen(0, '0.0.0.0', r));
  try {
    const port = (server.address() as { port: number }).port;
    const t = token();
    assert.is((await tcpProbe(api.rt, sb.id, net.gateway, port, t, 1.5)).ok, false);
    assert.not.ok(seen.some((s) => s.includes(t)));
    const host = await verdictOf(net, { direction: 'outbound', protocol: 'tcp', address: net.gateway, port });
    assert.equal([host.verdict, host.chain, host.decidedBy.guard, host.decidedBy.level], ['deny', 'host', 'host', 'operator']);
  } finally {
    server.close();
  }
});

test('allow-access on a deny-all policy puts the allow where it takes effect: the destination becomes reachable', async () => {
  const net = await network({ name: 'restrictive-policy', outbound: [{ action: 'deny', protocol: 'all' }] });
  const sb = await sandboxOn(net);
  assert.is(await reaches(net, sb.id, X, 8080, { decidedBy: 'outbound[0]', level: 'network' }), false);
  const res = await http<Net>('POST', `/v1/networks/${net.id}/allow-access`, { destinations: [{ host: X, port: 8080, protocol: 'tcp' }] });
  assert.is(res.status, 200, res.text);
  assert.equal(res.body.data.policy?.outbound, [
    { action: 'allow', protocol: 'tcp', destination: `${X}/32`, port: 8080 },
    { action: 'deny', protocol: 'all' },
  ]);
  assert.is(await reaches(net, sb.id, X, 8080, { decidedBy: 'outbound[0]', level: 'network' }), true);
  assert.is(await reaches(net, sb.id, X, 80, { decidedBy: 'outbound[1]', level: 'network' }), false);
  // Already allowed: nothing to add. Taken by an earlier deny: refused naming it.
  const again = await http<Net>('POST', `/v1/networks/${net.id}/allow-access`, { destinations: [{ host: X, port: 8080 }] });
  assert.is((again.body.data.policy?.outbound as unknown[]).length, 2, again.text);
  const denied = await network({
    name: 'no-x',
    outbound: [
      { action: 'deny', protocol: 'all', destination: `${X}/32` },
      { action: 'allow', protocol: 'udp' },
    ],
  });
  const refused = await http('POST', `/v1/networks/${denied.id}/allow-access`, { destinations: [{ host: X, port: 8080 }] });
  assert.is(refused.status, 400, refused.text);
  assert.equal([refused.body.error?.details.field, refused.body.error?.details.shadowedBy], ['destinations[0]', 'outbound[0]']);
});

test('the verdict endpoint refuses malformed questions naming the field, and answers 404 for a network it cannot see', async () => {
  const net = await network({ name: 'q', outbound: [] });
  for (const [body, field] of [
    [{ direction: 'outbound', protocol: 'tcp', address: X }, 'port'],
    [{ direction: 'outbound', protocol: 'icmp', address: X, port: 1 }, 'port'],
    [{ direction: 'outbound', protocol: 'tcp', port: 80 }, 'address'],
    [{ direction: 'outbound', protocol: 'tcp', address: 'nope', port: 80 }, 'address'],
    [{ direction: 'sideways', protocol: 'tcp', address: X, port: 80 }, 'direction'],
    [{ direction: 'outbound', protocol: 'tcp', host: '*.example.test', port: 80 }, 'host'],
  ] as const) {
    const res = await http('POST', `/v1/networks/${net.id}/policy/test`, body);
    assert.is(res.status, 400, res.text);
    assert.is(res.body.error?.details.field, field, res.text);
  }
  const missing = await http('POST', '/v1/networks/net_AAAAAAAAAAAAAAAA/policy/test', {
    direction: 'outbound',
    protocol: 'icmp',
    address: X,
  });
  assert.is(missing.status, 404, missing.text);
});

test.run();
