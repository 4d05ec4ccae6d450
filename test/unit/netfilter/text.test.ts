/** Rendering compiled documents as nft's own syntax, and refusing what the renderer does not cover. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { compileNetwork, compileTable } from '../../../netfilter/compile.ts';
import {
  accept,
  counter,
  ct,
  drop,
  limit,
  log,
  match,
  meta,
  namedCounter,
  payload,
  tableOps,
  type NftCommand,
} from '../../../netfilter/json.ts';
import { renderDocument, Unrenderable } from '../../../netfilter/text.ts';
import { fullPolicy, twoNetworks } from './fixtures.ts';

const test = suite('netfilter text');
const ops = tableOps('director');
/** The commands render as exactly these lines. */
const renders = (cmds: NftCommand[], lines: string[]) => assert.is(renderDocument({ nftables: cmds }), `${lines.join('\n')}\n`);

test('a rule renders as nft syntax: matches, counters, limit, log, verdict and comment', () => {
  renders(
    [
      ops.rule('net_a_out_g1', 'o.r0 pypi.org', [
        match(payload('ip', 'daddr'), '@net_a_h1_v4'),
        match(payload('tcp', 'dport'), { range: [1000, 2000] }),
        counter(),
        namedCounter('net_a_allowed'),
        accept(),
      ]),
      ops.insertRule('net_a_in', 'entry', [
        match(ct('state'), ['established', 'related'], 'in'),
        match(meta('iifname'), 'dt-a', '!='),
        limit(5, 10),
        log('dir:a:i.r1: '),
      ]),
      ops.rule('net_a_out_g1', 'o.range', [match(payload('ip6', 'daddr'), { prefix: { addr: 'fd00::', len: 8 } }), drop()]),
    ],
    [
      'add rule inet director net_a_out_g1 ip daddr @net_a_h1_v4 tcp dport 1000-2000 counter counter name net_a_allowed accept comment "o.r0 pypi.org"',
      'insert rule inet director net_a_in ct state established,related meta iifname != "dt-a" limit rate 5/second burst 10 packets log prefix "dir:a:i.r1: " comment "entry"',
      'add rule inet director net_a_out_g1 ip6 daddr fd00::/8 drop comment "o.range"',
    ],
  );
});

test('elements: interface names quoted, addresses bare, verdict-map pairs, timeouts in seconds', () => {
  renders(
    [
      ops.add('element', ops.elements('egress_vmap', [['dt-a', { jump: { target: 'net_a_out' } }]])),
      ops.add('element', ops.elements('bridges', ['dt-a'])),
      ops.add('element', ops.elements('net_a_h1_v4', [{ elem: { val: '192.0.2.7', timeout: 120 } }, '192.0.2.8'])),
      ops.add('set', { name: 'net_a_h1_v6', type: 'ipv6_addr', flags: ['timeout'] }),
    ],
    [
      'add element inet director egress_vmap { "dt-a" : jump net_a_out }',
      'add element inet director bridges { "dt-a" }',
      'add element inet director net_a_h1_v4 { 192.0.2.7 timeout 120s, 192.0.2.8 }',
      'add set inet director net_a_h1_v6 { type ipv6_addr; flags timeout; }',
    ],
  );
});

test('every per-network document the compiler emits renders; the whole-table one does not (it goes as JSON)', () => {
  const input = twoNetworks('director');
  for (const net of input.networks) {
    for (const gen of [0, 3]) assert.ok(renderDocument(compileNetwork(input, net, gen)).length > 0);
  }
  assert.ok(
    renderDocument(compileNetwork(input, { ...input.networks[0]!, isolated: true, policy: fullPolicy({ mode: 'audit' }) }, 1)).length > 0,
  );
  assert.throws(
    () => renderDocument(compileTable(input)),
    (e: unknown) => e instanceof Unrenderable,
  );
});

test('refuses what it cannot say safely instead of guessing', () => {
  const refuses = (cmd: NftCommand, why: string) =>
    assert.throws(
      () => renderDocument({ nftables: [cmd] }),
      (e: unknown) => e instanceof Unrenderable,
      why,
    );
  refuses(ops.rule('c', 'a "quoted" comment', [accept()]), 'a quote in a comment');
  refuses(ops.rule('c', 'x', [log('line\nbreak')]), 'a control character in a log prefix');
  refuses(ops.rule('c', 'x', [match(meta('iifname'), 'eth0"; flush ruleset; "')]), 'an interface name that would close its quotes');
  refuses(ops.rule('c', 'x', [match(payload('ip', 'daddr'), '10.0.0.1; flush ruleset')]), 'a bare value with spaces');
  refuses(ops.rule('bad chain', 'x', [accept()]), 'a chain name that is not an identifier');
  refuses(ops.rule('c', 'x', [{ queue: { num: 1 } }]), 'a statement it does not know');
  refuses(ops.add('chain', { name: 'c', type: 'filter', hook: 'forward', prio: -1, policy: 'accept' }), 'a base chain');
  refuses(ops.add('map', { name: 'm', type: 'ifname', map: 'verdict' }), 'a map definition');
  refuses(ops.deleteTable(), 'a table command');
});

test.run();
