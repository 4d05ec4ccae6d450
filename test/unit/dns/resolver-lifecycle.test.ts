/**
 * Resolver behaviours that need their own instance: the order of onAnswer and the reply, rate
 * limiting on an injected clock, NXDOMAIN refusals, closing one network. Loopback only.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import dgram from 'node:dgram';
import { pino } from 'pino';
import type { DecodedPacket } from 'dns-packet';
import { validateNetworkPolicy } from '../../../policies/network-policy.ts';
import { DirectorResolver, type DnsDenied } from '../../../runtime/network/dns/resolver.ts';
import { LOOPBACK, addressesOf, query, startFakeUpstream, udpExchange, type FakeUpstream } from './support.ts';

const test = suite('dns resolver lifecycle');
const policy = validateNetworkPolicy({ name: 'p', outbound: [{ action: 'allow', protocol: 'tcp', destination: 'api.example.test' }] });
const rcodeOf = (p: DecodedPacket | null) => (p as { rcode?: string } | null)?.rcode;

const ctx = {} as {
  upstream: FakeUpstream;
  resolver: DirectorResolver;
  port: number;
  nowMs: number;
  gate: Promise<void> | null;
  denied: DnsDenied[];
};

test.before(async () => {
  ctx.upstream = await startFakeUpstream(
    new Map([['api.example.test', { answers: [{ type: 'A', name: 'api.example.test', ttl: 60, data: '203.0.113.10' }] }]]),
  );
  ctx.nowMs = 0;
  ctx.gate = null;
  ctx.denied = [];
  ctx.resolver = new DirectorResolver({
    upstream: { address: LOOPBACK, port: ctx.upstream.port },
    policyFor: () => policy,
    isForbiddenAddress: () => false,
    onDenied: (ev) => ctx.denied.push(ev),
    onAnswer: async () => {
      await ctx.gate;
    },
    logger: pino({ level: 'silent' }),
    clock: { nowMs: () => ctx.nowMs },
    refuseWith: 'NXDOMAIN',
    rateLimit: { ratePerS: 1, burst: 3 },
  });
  ctx.port = (await ctx.resolver.listen('net-1', LOOPBACK, 0)).port;
});

test.before.each(() => {
  ctx.nowMs += 60_000; // every test starts with a full bucket
  ctx.denied.length = 0;
});

test.after(async () => {
  await ctx.resolver.closeAll();
  await ctx.upstream.close();
});

test('the reply waits until onAnswer has finished', async () => {
  let release!: () => void;
  ctx.gate = new Promise<void>((r) => {
    release = r;
  });
  let replied = false;
  const pending = udpExchange(ctx.port, query('api.example.test', 'A')).then((r) => {
    replied = true;
    return r;
  });
  await new Promise((r) => setTimeout(r, 200));
  assert.is(replied, false, 'no reply while the firewall sets are being filled');
  release();
  assert.equal(addressesOf(await pending), ['203.0.113.10']);
  ctx.gate = null;
});

test('refuseWith NXDOMAIN answers refused names with NXDOMAIN', async () => {
  const reply = await udpExchange(ctx.port, query('other.test', 'A'));
  assert.is(rcodeOf(reply), 'NXDOMAIN');
  assert.is(ctx.denied[0]?.rcode, 'NXDOMAIN');
  assert.equal(
    ctx.upstream.queries.filter((q) => q.name === 'other.test'),
    [],
  );
});

test('a client over its rate is dropped silently and counted; it recovers as tokens refill', async () => {
  const before = ctx.resolver.stats().rateLimited;
  const socket = dgram.createSocket('udp4');
  const replies: Buffer[] = [];
  socket.on('message', (m) => replies.push(m));
  await new Promise<void>((r) => socket.bind(0, LOOPBACK, r));
  for (let i = 0; i < 6; i++) socket.send(query('other.test', 'A'), ctx.port, LOOPBACK);
  await new Promise((r) => setTimeout(r, 300));
  assert.is(replies.length, 3, 'the burst of 3 is answered');
  assert.is(ctx.resolver.stats().rateLimited - before, 3);
  ctx.nowMs += 1000;
  socket.send(query('other.test', 'A'), ctx.port, LOOPBACK);
  await new Promise((r) => setTimeout(r, 200));
  assert.is(replies.length, 4, 'one token back after a second');
  await new Promise<void>((r) => socket.close(() => r()));
});

test('close stops one network and frees its port', async () => {
  await ctx.resolver.close('net-1');
  assert.is(ctx.resolver.stats().networks, 0);
  assert.is(await udpExchange(ctx.port, query('api.example.test', 'A'), 300), null);
  await ctx.resolver.close('net-1'); // idempotent
  const again = await ctx.resolver.listen('net-1', LOOPBACK, ctx.port);
  assert.is(again.port, ctx.port);
  assert.equal(addressesOf(await udpExchange(ctx.port, query('api.example.test', 'A'))), ['203.0.113.10']);
});

test.run();
