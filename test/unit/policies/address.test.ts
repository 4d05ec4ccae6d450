import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  checkCidr,
  cidrContains,
  collapseCidrs,
  formatCidr,
  formatIp,
  parseCidr,
  parseIp,
  subtractCidr,
} from '../../../policies/address.ts';
import { checkHostPattern, hostMatches } from '../../../policies/hostname.ts';

const test = suite('address');
const c = (t: string) => parseCidr(t)!;

test('formats IPv6 canonically (RFC 5952)', () => {
  const cases: [string, string][] = [
    ['2001:0DB8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['::', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
    ['1:0:2:3:4:5:6:7', '1:0:2:3:4:5:6:7'],
    ['1:0:0:2:3:0:0:4', '1::2:3:0:0:4'],
    ['::ffff:1.2.3.4', '::ffff:102:304'],
    ['fd00:ec2::254', 'fd00:ec2::254'],
  ];
  for (const [input, want] of cases) assert.is(formatIp(parseIp(input)!), want, input);
});

test('parses strictly', () => {
  for (const bad of ['1.2.3', '01.2.3.4', '1.2.3.4.5', '::g', 'fe80::1%eth0', '1:2:3:4:5:6:7:8:9', '']) assert.is(parseIp(bad), null, bad);
  assert.is(parseIp('1.2.3.4')!.value, 0x01020304n);
  assert.match((checkCidr('10.1.0.0/8') as { issue: string }).issue, /host bits/);
  assert.is(formatCidr(c('10.0.0.0/8')), '10.0.0.0/8');
  assert.is(formatCidr(c('198.51.100.1')), '198.51.100.1/32');
  assert.is(formatCidr(c('::/0')), '::/0');
});

test('containment, collapse and subtraction', () => {
  assert.ok(cidrContains(c('169.254.0.0/16'), c('169.254.169.254/32')));
  assert.not.ok(cidrContains(c('169.254.169.254/32'), c('169.254.0.0/16')));
  assert.not.ok(cidrContains(c('::/0'), c('0.0.0.0/0')));
  assert.equal(collapseCidrs([c('169.254.169.254'), c('169.254.0.0/16'), c('127.0.0.0/8'), c('127.0.0.0/8')]).map(formatCidr), [
    '127.0.0.0/8',
    '169.254.0.0/16',
  ]);
  const rest = subtractCidr(c('10.0.0.0/8'), c('10.1.2.0/24')).map(formatCidr);
  assert.is(rest.length, 16);
  assert.not.ok(rest.some((r) => cidrContains(c(r), c('10.1.2.0/24')) || cidrContains(c('10.1.2.0/24'), c(r))));
  // The pieces plus the hole cover exactly the /8: their sizes add up.
  const size = (t: string) => 2 ** (32 - c(t).len);
  assert.is(rest.reduce((a, r) => a + size(r), 0) + 256, 2 ** 24);
  assert.equal(subtractCidr(c('10.0.0.0/8'), c('0.0.0.0/0')), []);
  assert.equal(subtractCidr(c('10.0.0.0/8'), c('11.0.0.0/8')).map(formatCidr), ['10.0.0.0/8']);
});

test('host patterns: wildcards match strictly below their base', () => {
  assert.equal(checkHostPattern('Example.COM.'), { host: 'example.com' });
  assert.ok(hostMatches('*.example.com', 'a.example.com'));
  assert.ok(hostMatches('*.example.com', 'a.b.example.com.'));
  assert.not.ok(hostMatches('*.example.com', 'example.com'));
  assert.not.ok(hostMatches('*.example.com', 'badexample.com'));
  assert.ok(hostMatches('example.com', 'EXAMPLE.com'));
  assert.not.ok(hostMatches('example.com', 'a.example.com'));
});

test.run();
