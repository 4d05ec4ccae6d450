/**
 * The fake internet fixture (test/helpers/fake-internet.ts) for real: a namespace with TEST-NET
 * hosts, reached from the host and from a container on a Docker bridge network. All traffic goes
 * only to addresses the fixture routes into its own namespace (checked with assertRoute first).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { startFakeInternet, type FakeInternet, type TcpObservation } from '../helpers/fake-internet.ts';

const test = suite('fake internet');
const run = promisify(execFile);
const skip = process.getuid?.() !== 0 ? 'needs root' : spawnSync('ip', ['-V']).status === 0 ? null : 'iproute2 is not installed';
const it = (name: string, fn: () => Promise<void>) => (skip ? test.skip(name, fn) : test(name, fn));
if (skip) console.log(`skipping fake internet tests: ${skip}`);

const id = randomBytes(3).toString('hex');
const LABEL = { 'director.test': 'fake-internet' };
const docker = new Docker();
const ipForwardBefore = readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim();
let fi: FakeInternet;
const dockerLeftovers: { remove(): Promise<unknown> }[] = [];

const ipOut = async (...args: string[]) => (await run('ip', args, { encoding: 'utf8' })).stdout;

test.before(async () => {
  if (skip) return;
  fi = await startFakeInternet();
});

test.after(async () => {
  if (skip) return;
  for (const r of dockerLeftovers) await r.remove().catch(() => undefined);
  await fi?.close();
});

it('the host reaches a web host over TCP: a round trip, then the observation', async () => {
  await fi.assertRoute('203.0.113.10');
  const reply = await new Promise<string>((resolve, reject) => {
    const s = connect({ host: '203.0.113.10', port: 80 });
    let got = '';
    const t = setTimeout(() => {
      s.destroy();
      reject(new Error(`timeout, got ${JSON.stringify(got)}`));
    }, 5000);
    s.setEncoding('utf8');
    s.on('connect', () => s.write('hello\n'));
    s.on('data', (d: string) => {
      got += d;
      if (got.includes('\n')) s.end();
    });
    s.on('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
    s.on('close', () => {
      clearTimeout(t);
      resolve(got);
    });
  });
  assert.is(reply, 'ok 203.0.113.10:80\n');
  const o = await fi.waitFor<TcpObservation>({ kind: 'tcp', host: '203.0.113.10', port: 80 });
  assert.is(o.data, 'hello\n');
  assert.is(o.bytes, 6);
  assert.is(o.from, fi.hostAddr);
  assert.ok(fi.received({ kind: 'tcp-open', port: 80 }).length >= 1);
  // The helper does the same, on another host and port.
  assert.is(await fi.tcpExchange('203.0.113.20', 5000, 'a\nb\n'), 'ok 203.0.113.20:5000\nok 203.0.113.20:5000\n');
});

it('a UDP datagram is observed (and answered)', async () => {
  fi.clear();
  assert.is(await fi.udpExchange('203.0.113.10', 5353, 'ping'), 'ok 203.0.113.10:5353\n');
  const o = await fi.waitFor({ kind: 'udp', host: '203.0.113.10', port: 5353 });
  assert.is(o.kind === 'udp' && o.data, 'ping');
  assert.is(fi.received({ kind: 'udp' }).length, 1);
});

it('DNS: the table answers A records, unknown names get NXDOMAIN, every query is observed', async () => {
  fi.clear();
  await fi.setDns('api.example.test', ['203.0.113.10'], 30);
  const r = await fi.dnsQuery(fi.upstreamDns, 'api.example.test', 'A', 'udp');
  assert.is(r.rcode, 'NOERROR');
  assert.equal(
    r.answers?.map((a) => [a.type, 'data' in a ? a.data : null, 'ttl' in a ? a.ttl : null]),
    [['A', '203.0.113.10', 30]],
  );
  const o = await fi.waitFor({ kind: 'dns', name: 'api.example.test' });
  assert.is(o.kind === 'dns' && o.server, '198.51.100.53');
  assert.is(o.kind === 'dns' && o.qtype, 'A');
  assert.is((await fi.dnsQuery(fi.upstreamDns, 'unknown.example.test')).rcode, 'NXDOMAIN');
  // The fake public resolver serves the same table, over TCP too.
  assert.is(fi.publicResolver, '198.51.100.88');
  const viaTcp = await fi.dnsQuery(fi.publicResolver!, 'api.example.test', 'A', 'tcp');
  assert.equal(
    viaTcp.answers?.map((a) => ('data' in a ? a.data : null)),
    ['203.0.113.10'],
  );
  await fi.deleteDns('api.example.test');
  assert.is((await fi.dnsQuery(fi.upstreamDns, 'api.example.test')).rcode, 'NXDOMAIN');
  assert.is(fi.received({ kind: 'dns' }).length, 4);
});

it('IPv6 web host, when IPv6 works here', async () => {
  if (!fi.ipv6) {
    console.log('  (IPv6 unavailable on this host: fixture runs IPv4 only)');
    return;
  }
  assert.equal(fi.webHosts6, ['2001:db8:1::10']);
  assert.is(await fi.tcpExchange('2001:db8:1::10', 443), 'ok 2001:db8:1::10:443\n');
  await fi.waitFor({ kind: 'tcp', host: '2001:db8:1::10', port: 443 });
});

it('a container on a Docker bridge network reaches 203.0.113.10:8080 through forwarding', async () => {
  try {
    await docker.ping();
  } catch (err) {
    console.log(`  (Docker unavailable, not checked: ${(err as Error).message})`);
    return;
  }
  fi.clear();
  const network = await docker.createNetwork({ Name: `dfi-test-${id}`, Driver: 'bridge', Labels: LABEL });
  dockerLeftovers.push(network);
  await fi.assertRoute('203.0.113.10');
  const container = await docker.createContainer({
    Image: 'director/busybox:latest',
    Cmd: ['sh', '-c', 'echo hello-from-container | timeout 10 nc -w 5 203.0.113.10 8080'],
    Tty: true,
    Labels: LABEL,
    HostConfig: { NetworkMode: `dfi-test-${id}` },
  });
  dockerLeftovers.unshift(container); // containers go before their network
  await container.start();
  const { StatusCode } = (await container.wait()) as { StatusCode: number };
  const logs = (await container.logs({ stdout: true, stderr: true })).toString('utf8');
  assert.is(StatusCode, 0, `nc failed: ${logs}`);
  assert.match(logs, 'ok 203.0.113.10:8080');
  const o = await fi.waitFor<TcpObservation>({ kind: 'tcp', host: '203.0.113.10', port: 8080 });
  assert.is(o.data, 'hello-from-container\n');
  // Docker masquerades bridge traffic leaving through any other interface: the fake host sees
  // the host's veth address, not the container's.
  assert.is(o.from, fi.hostAddr);
  await container.remove({ force: true });
  await network.remove();
  dockerLeftovers.length = 0;
});

it('a second fixture that would take the same addresses fails and leaves nothing behind', async () => {
  const linksBefore = (await ipOut('-br', 'link')).split('\n').filter((l) => l.startsWith('dfi')).length;
  const nsBefore = await ipOut('netns', 'list');
  try {
    const other = await startFakeInternet({ ipv6: false });
    await other.close();
    assert.unreachable('the second fixture should not start');
  } catch (err) {
    assert.match((err as Error).message, /203\.0\.113\.10 is already routed.*File exists/);
  }
  assert.is((await ipOut('-br', 'link')).split('\n').filter((l) => l.startsWith('dfi')).length, linksBefore);
  assert.is(await ipOut('netns', 'list'), nsBefore);
  // The first one is untouched.
  assert.is(await fi.tcpExchange('203.0.113.10', 443), 'ok 203.0.113.10:443\n');
});

it('fixtures with other addresses coexist', async () => {
  await using other = await startFakeInternet({
    webHosts: ['203.0.113.30'],
    upstreamDns: '198.51.100.54',
    publicResolver: null,
    ipv6: false,
    tcpPorts: [81],
    udpPorts: [],
  });
  assert.is(await other.tcpExchange('203.0.113.30', 81), 'ok 203.0.113.30:81\n');
  await fi.assertRoute('203.0.113.10');
  await other.assertRoute('203.0.113.30');
  try {
    await other.assertRoute('203.0.113.10');
    assert.unreachable('203.0.113.10 belongs to the first fixture');
  } catch (err) {
    assert.match((err as Error).message, `not fake internet veth ${other.hostIf}`);
  }
});

it('assertRoute refuses an address the fixture does not route; close() removes everything', async () => {
  try {
    await fi.assertRoute('203.0.113.99');
    assert.unreachable('203.0.113.99 is not routed into the fixture');
  } catch (err) {
    assert.match((err as Error).message, 'refusing to send');
  }
  const { ns, hostIf } = fi;
  assert.match(await ipOut('netns', 'list'), ns);
  await fi.close();
  await fi.close(); // idempotent
  assert.not.match(await ipOut('netns', 'list'), ns);
  assert.not.match(await ipOut('link'), hostIf);
  const routes = `${await ipOut('route')}${await ipOut('-6', 'route')}`;
  assert.not.match(routes, hostIf);
  for (const a of fi.addresses) assert.not.match(routes, a);
  assert.is(readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim(), ipForwardBefore);
  try {
    await fi.assertRoute('203.0.113.10');
    assert.unreachable('a closed fixture sends nothing');
  } catch (err) {
    assert.match((err as Error).message, 'closed');
  }
});

test.run();
