import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { alwaysDeniedRanges, checkInput, DEFAULT_ALWAYS_DENIED } from '../../../netfilter/model.ts';
import {
  chainName,
  counterName,
  genChainName,
  logPrefix,
  nameSetName,
  parseLogLine,
  parseObjectName,
  ruleComment,
  shortName,
} from '../../../netfilter/names.ts';
import { network, twoNetworks } from './fixtures.ts';

const test = suite('names');

test('object names round-trip through the parser', () => {
  const s = shortName('net_AbCdEf0123456789');
  assert.match(s, /^[0-9a-f]{8}$/);
  assert.equal(parseObjectName(chainName(s, 'host')), { kind: 'chain', short: s, chain: 'host' });
  assert.equal(parseObjectName(genChainName(s, 'out', 7)), { kind: 'chain', short: s, chain: 'out', gen: 7 });
  assert.is(parseObjectName(`${counterName(s, 'denied')}_g1`), null, 'only chains have generations');
  assert.equal(parseObjectName(counterName(s, 'denied')), { kind: 'counter', short: s, counter: 'denied' });
  assert.equal(parseObjectName(nameSetName(s, '*.example.com', 6)), { kind: 'set', short: s, family: 6 });
  assert.is(parseObjectName('filter_forward'), null);
  assert.is(parseObjectName('bridges'), null);
});

test('log prefixes are short, name network and rule, and parse back from a kernel line', () => {
  const p = logPrefix('3f9a01bc', 'o2', false);
  assert.is(p, 'dir:3f9a01bc:o2: ');
  assert.ok(logPrefix('abcdefabcdef', 'o.established', true).length < 40);
  const line = '[ 812.33] dira:3f9a01bc:o.default: IN=br-x OUT=eth0 SRC=10.250.1.2 DST=203.0.113.9';
  assert.equal(parseLogLine(line), { audit: true, short: '3f9a01bc', tag: { kind: 'guard', chain: 'out', guard: 'default' } });
  assert.equal(parseLogLine(`x ${p}IN=`), { audit: false, short: '3f9a01bc', tag: { kind: 'rule', direction: 'outbound', index: 2 } });
  assert.is(parseLogLine('IN=eth0 nothing here'), null);
  assert.is(parseLogLine('dir:3f9a01bc:bogus: x'), null);
});

test("rule comments keep the host pattern only when it fits nft's 128 bytes", () => {
  assert.is(ruleComment('o1', 'pypi.org'), 'o1 pypi.org');
  assert.is(ruleComment('o1', `${'a'.repeat(60)}.${'b'.repeat(60)}.example.com`), 'o1');
});

test('opening an always-denied range keeps the rest of it denied', () => {
  const r = alwaysDeniedRanges(['169.254.169.254/32', '::1/128']);
  assert.not.ok(r.v4.includes('169.254.0.0/16'));
  assert.ok(r.v4.includes('127.0.0.0/8'));
  assert.is(r.v4.length, 1 + 16);
  assert.not.ok(r.v6.includes('::1/128'));
  assert.ok(r.v6.includes('fd00:ec2::254/128'));
  assert.equal(alwaysDeniedRanges(), {
    v4: ['127.0.0.0/8', '169.254.0.0/16'],
    v6: ['fe80::/10', '::ffff:0:0/96', '::1/128', 'fd00:ec2::254/128'],
  });
  assert.throws(() => alwaysDeniedRanges(['nope']), /open\[0\]/);
});

test('compiler input that nft would refuse or that would collide is refused', () => {
  const base = twoNetworks('director_unit');
  assert.throws(() => checkInput({ ...base, table: 'bad-name' }), /table/);
  assert.throws(
    () => checkInput({ ...base, networks: [network('a1', 1, null), network('a1', 2, null, { bridge: 'x' })] }),
    /networks\[1\]\.short/,
  );
  assert.throws(
    () => checkInput({ ...base, networks: [network('a1', 1, null), network('a2', 2, null, { bridge: 'dt-a1' })] }),
    /networks\[1\]\.bridge/,
  );
  assert.throws(() => checkInput({ ...base, networks: [network('Upper', 1, null)] }), /short/);
  assert.throws(() => checkInput({ ...base, networks: [network('a1', 1, null, { bridge: 'a-very-long-bridge-name' })] }), /bridge/);
  assert.throws(() => checkInput({ ...base, networks: [network('a1', 1, null, { gatewayV4: '10.9.9.1' })] }), /gatewayV4/);
  assert.throws(() => checkInput({ ...base, networks: [network('a1', 1, null, { subnetV6: '10.0.0.0/8' })] }), /subnetV6/);
  assert.throws(
    () =>
      checkInput({
        ...base,
        networks: [network('a1', 1, null), network('a2', 2, null, { subnetV4: '10.250.0.0/16', gatewayV4: '10.250.0.1' })],
      }),
    /networks\[1\]\.subnetV4.*overlaps/,
  );
  assert.throws(() => checkInput({ ...base, alwaysDenied: { ...DEFAULT_ALWAYS_DENIED, v4: ['::1/128'] } }), /alwaysDenied\.v4\[0\]/);
  checkInput(base);
});

test.run();
