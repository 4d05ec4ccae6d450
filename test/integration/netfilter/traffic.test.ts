/**
 * Real packets through a compiled table. Everything lives in three network namespaces this test
 * creates (nothing on the host, no traffic leaves them):
 *
 *   sandbox ns ── veth "bridge" ── router ns (Director's table, forwarding) ── veth ── internet ns
 *   10.250.1.2                     10.250.1.1 (gateway: resolver :5353, other :2222)  203.0.113.10, 169.254.169.254 (:8080, :8081)
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { applyNetwork, applyTable, readTable } from '../../../netfilter/apply.ts';
import { addResolvedAddresses } from '../../../netfilter/compile.ts';
import { DEFAULT_ALWAYS_DENIED, type NetfilterInput, type NetworkInput } from '../../../netfilter/model.ts';
import { NetlinkHelpers } from '../../../netfilter/netlink-helpers.ts';
import { applyDocument, type NftOptions } from '../../../netfilter/nft.ts';
import { validateNetworkPolicy } from '../../../policies/network-policy.ts';
import { nftUnavailable } from './helpers.ts';

const test = suite('netfilter traffic');
const skip = nftUnavailable() ?? (spawnSync('ip', ['-V']).status === 0 ? null : 'iproute2 is not installed');
const it = (name: string, fn: () => Promise<void> | void) => (skip ? test.skip(name, fn) : test(name, fn));
if (skip) console.log(`skipping netfilter traffic tests: ${skip}`);

const id = randomBytes(3).toString('hex');
const NS = { sbx: `dts-${id}`, rtr: `dtr-${id}`, net: `dti-${id}` };
const IF = { bridge: `dtbr${id}`, sbx: `dtsb${id}`, up: `dtup${id}`, inet: `dtin${id}` };
const FAKE = '203.0.113.10';
const METADATA = '169.254.169.254';
const GW = '10.250.1.1';
const T = 'director_test_traffic';
const nft: NftOptions = { netns: NS.rtr, netlink: new NetlinkHelpers() };
const servers: ChildProcess[] = [];

const net = (extra: Partial<NetworkInput>): NetworkInput => ({
  id: 'net_traffic',
  short: 'traffic',
  bridge: IF.bridge,
  subnetV4: '10.250.1.0/24',
  gatewayV4: GW,
  isolated: false,
  policy: null,
  dns: { address: GW, port: 5353 },
  ...extra,
});
const input = (n: NetworkInput): NetfilterInput => ({ table: T, alwaysDenied: DEFAULT_ALWAYS_DENIED, networks: [n] });
const policy = (outbound: unknown[], extra: Record<string, unknown> = {}) => validateNetworkPolicy({ name: 't', outbound, ...extra });

function sh(args: string[]): string {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

const SERVER = `
const net = require('node:net');
const [addr, ...ports] = process.argv.slice(1);
let ready = 0;
for (const p of ports) net.createServer((s) => s.on('data', (d) => s.write(d)).on('error', () => {}))
  .listen(Number(p), addr, () => { if (++ready === ports.length) console.log('listening'); });`;

const CLIENT = `
const net = require('node:net');
const [host, port, ms, hold] = process.argv.slice(1);
const s = net.connect({ host, port: Number(port) });
const done = (w) => { console.log(w); process.exit(0); };
let t = setTimeout(() => done('blocked'), Number(ms));
s.on('error', () => done('blocked'));
s.once('connect', () => s.write('a'));
s.once('data', () => {
  clearTimeout(t);
  if (!hold) return done('open');
  console.log('ready');
  process.stdin.once('data', () => {
    t = setTimeout(() => done('cut'), 1500);
    s.write('b');
    s.once('data', () => done('alive'));
  });
});`;

async function server(ns: string, addr: string, ports: number[]): Promise<void> {
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', SERVER, addr, ...ports.map(String)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  servers.push(child);
  const [line] = (await once(child.stdout, 'data')) as [Buffer];
  assert.match(line.toString(), 'listening');
}

/** Connects from the sandbox namespace: 'open' when the echo came back, 'blocked' otherwise. */
async function connect(host: string, port: number, timeoutMs = 800): Promise<string> {
  const child = spawn('ip', ['netns', 'exec', NS.sbx, process.execPath, '-e', CLIENT, host, String(port), String(timeoutMs)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await once(child, 'close');
  return out.trim();
}

test.before(async () => {
  if (skip) return;
  for (const ns of Object.values(NS)) sh(['netns', 'add', ns]);
  sh(['-n', NS.rtr, 'link', 'add', IF.bridge, 'type', 'veth', 'peer', 'name', IF.sbx, 'netns', NS.sbx]);
  sh(['-n', NS.rtr, 'link', 'add', IF.up, 'type', 'veth', 'peer', 'name', IF.inet, 'netns', NS.net]);
  for (const [ns, dev, addr] of [
    [NS.sbx, IF.sbx, '10.250.1.2/24'],
    [NS.rtr, IF.bridge, `${GW}/24`],
    [NS.rtr, IF.up, '198.51.100.1/30'],
    [NS.net, IF.inet, '198.51.100.2/30'],
    [NS.net, 'lo', `${FAKE}/32`],
    [NS.net, 'lo', `${METADATA}/32`],
  ] as const) {
    sh(['-n', ns, 'addr', 'add', addr, 'dev', dev]);
  }
  for (const [ns, dev] of [
    [NS.sbx, IF.sbx],
    [NS.sbx, 'lo'],
    [NS.rtr, IF.bridge],
    [NS.rtr, IF.up],
    [NS.rtr, 'lo'],
    [NS.net, IF.inet],
    [NS.net, 'lo'],
  ])
    sh(['-n', ns!, 'link', 'set', dev!, 'up']);
  sh(['-n', NS.sbx, 'route', 'add', 'default', 'via', GW]);
  sh(['-n', NS.net, 'route', 'add', 'default', 'via', '198.51.100.1']);
  for (const dst of [FAKE, METADATA]) sh(['-n', NS.rtr, 'route', 'add', `${dst}/32`, 'via', '198.51.100.2']);
  sh(['netns', 'exec', NS.rtr, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  // The fake hosts are reachable only through the router's veth, inside the namespaces.
  for (const dst of [FAKE, METADATA]) assert.match(sh(['-n', NS.rtr, 'route', 'get', dst]), `dev ${IF.up}`);
  assert.match(sh(['-n', NS.sbx, 'route', 'get', FAKE]), `via ${GW} dev ${IF.sbx}`);
  await server(NS.net, '0.0.0.0', [8080, 8081]);
  await server(NS.rtr, GW, [5353, 2222]);
});

test.after(async () => {
  nft.netlink?.close();
  if (skip) return;
  for (const s of servers)
    if (s.exitCode === null) {
      s.kill('SIGKILL');
      await once(s, 'close');
    }
  for (const ns of Object.values(NS)) spawnSync('ip', ['netns', 'del', ns]);
});

it('without a policy everything is open except the always-denied ranges and the host', async () => {
  await applyTable(input(net({})), nft);
  assert.is(await connect(FAKE, 8081), 'open');
  assert.is(await connect(METADATA, 8080), 'blocked');
  assert.is(await connect(GW, 5353), 'open', 'the resolver');
  assert.is(await connect(GW, 2222), 'blocked', 'any other host port');
  const v = (await readTable(T, nft)).networks.traffic!;
  assert.ok(v.guards.find((g) => g.guard === 'range')!.counter!.packets > 0);
  assert.ok(v.guards.find((g) => g.guard === 'host')!.counter!.packets > 0);
});

it('enforce: the allowed port connects, the rest is dropped and counted', async () => {
  const n = net({ policy: policy([{ action: 'allow', protocol: 'tcp', destination: FAKE, port: 8080 }]) });
  await applyNetwork(input(n), n, nft);
  const before = (await readTable(T, nft)).networks.traffic!.counters.denied!.packets;
  assert.is(await connect(FAKE, 8080), 'open');
  assert.is(await connect(FAKE, 8081), 'blocked');
  const v = (await readTable(T, nft)).networks.traffic!;
  assert.ok(v.outbound[0]!.counter!.packets > 0, 'the allow rule counted');
  assert.ok(v.counters.denied!.packets > before, 'the named denied counter counted');
  assert.ok(v.guards.find((g) => g.chain === 'out' && g.guard === 'default')!.counter!.packets > 0);
});

it('the first matching rule decides: a deny ahead of a broader allow, an allow ahead of a broader deny', async () => {
  const denyFirst = net({
    policy: policy([
      { action: 'deny', protocol: 'tcp', destination: FAKE, port: 8081 },
      { action: 'allow', protocol: 'tcp', destination: '203.0.113.0/24' },
    ]),
  });
  await applyNetwork(input(denyFirst), denyFirst, nft);
  assert.is(await connect(FAKE, 8080), 'open');
  assert.is(await connect(FAKE, 8081), 'blocked');
  const allowFirst = net({
    policy: policy([
      { action: 'allow', protocol: 'tcp', destination: FAKE, port: 8081 },
      { action: 'deny', protocol: 'all', destination: '203.0.113.0/24' },
    ]),
  });
  await applyNetwork(input(allowFirst), allowFirst, nft);
  assert.is(await connect(FAKE, 8081), 'open');
  assert.is(await connect(FAKE, 8080), 'blocked');
});

it('audit: would-be-denied traffic passes and is counted; always-denied still drops', async () => {
  const n = net({ policy: policy([{ action: 'allow', protocol: 'tcp', destination: FAKE, port: 8080 }], { mode: 'audit' }) });
  await applyNetwork(input(n), n, nft);
  const before = (await readTable(T, nft)).networks.traffic!.counters.denied!.packets;
  assert.is(await connect(FAKE, 8081), 'open');
  assert.is(await connect(METADATA, 8080), 'blocked');
  const v = (await readTable(T, nft)).networks.traffic!;
  assert.is(v.mode, 'audit');
  assert.ok(v.counters.denied!.packets > before);
});

it('a host-name rule allows the resolved address until its timeout', async () => {
  const n = net({ policy: policy([{ action: 'allow', protocol: 'tcp', destination: 'svc.fake.test', port: 8080 }]) });
  await applyNetwork(input(n), n, nft);
  assert.is(await connect(FAKE, 8080), 'blocked', 'nothing resolved yet');
  await applyDocument(addResolvedAddresses(T, n, { direction: 'outbound', index: 0 }, [{ addr: FAKE, timeoutS: 2 }]), nft);
  assert.is(await connect(FAKE, 8080), 'open');
  assert.is(await connect(FAKE, 8081), 'blocked', "only the rule's port");
  await sleep(2500);
  assert.is(await connect(FAKE, 8080), 'blocked', 'expired');
});

it('isolation cuts an established connection and everything new, the resolver included', async () => {
  const n = net({ policy: policy([{ action: 'allow', protocol: 'tcp', destination: FAKE, port: 8080 }]) });
  await applyNetwork(input(n), n, nft);
  assert.is(await holdThenSend(async () => {}), 'alive', 'control: without isolation the connection lives on');
  assert.is(await holdThenSend(() => applyNetwork(input(n), { ...n, isolated: true }, nft)), 'cut');
  assert.is(await connect(FAKE, 8080), 'blocked');
  assert.is(await connect(GW, 5353), 'blocked');
  assert.is((await readTable(T, nft)).networks.traffic!.isolated, true);
});

/** Opens a connection, runs `between`, then sends again: 'alive' if the echo comes back, 'cut' if not. */
async function holdThenSend(between: () => Promise<unknown>): Promise<string> {
  const held = spawn('ip', ['netns', 'exec', NS.sbx, process.execPath, '-e', CLIENT, FAKE, '8080', '3000', 'hold'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let out = '';
  held.stdout.on('data', (d: Buffer) => (out += d.toString()));
  while (!out.includes('ready') && held.exitCode === null) await sleep(20);
  assert.match(out, 'ready');
  await between();
  held.stdin.write('go\n');
  await once(held, 'close');
  return out.replace('ready', '').trim();
}

test.run();
