import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { compileTable } from '../../../netfilter/compile.ts';
import type { NftExpr } from '../../../netfilter/json.ts';
import { DEFAULT_ALWAYS_DENIED } from '../../../netfilter/model.ts';
import { parseTag } from '../../../netfilter/names.ts';
import { validateNetworkPolicy } from '../../../policies/network-policy.ts';
import { commandTargets, fullPolicy, network, rulesOf, twoNetworks, verdictOf, type SimRule } from './fixtures.ts';

const test = suite('compile');
const T = 'director_unit';
const A = 'net_aaaa1111';
const tag = (r: SimRule) => r.comment.split(' ')[0]!;
const isPolicyRule = (r: SimRule) => parseTag(tag(r))?.kind === 'rule';
const logPrefixOf = (expr: NftExpr[]) => (expr.find((e) => 'log' in e)?.log as { prefix?: string } | undefined)?.prefix;

test("emits commands only for Director's own inet table", () => {
  const doc = compileTable(twoNetworks(T));
  for (const { kind, body } of commandTargets(doc)) {
    assert.is(body.family, 'inet');
    assert.is(kind === 'table' ? body.name : body.table, T);
  }
});

test('base chains hook forward and input at priority -1 and dispatch through maps keyed on the bridge', () => {
  const input = twoNetworks(T);
  const doc = compileTable(input);
  const chains = commandTargets(doc).filter((c) => c.kind === 'chain' && c.body.hook);
  assert.equal(
    chains.map((c) => [c.body.hook, c.body.prio, c.body.type, c.body.policy]),
    [
      ['forward', -1, 'filter', 'accept'],
      ['input', -1, 'filter', 'accept'],
    ],
  );
  const vmaps = (chain: string) => rulesOf(doc, chain).map((r) => r.expr);
  assert.equal(vmaps('filter_forward'), [
    [{ vmap: { key: { meta: { key: 'iifname' } }, data: '@egress_vmap' } }],
    [{ vmap: { key: { meta: { key: 'oifname' } }, data: '@ingress_vmap' } }],
  ]);
  assert.equal(vmaps('filter_input'), [[{ vmap: { key: { meta: { key: 'iifname' } }, data: '@host_vmap' } }]]);
  const maps = commandTargets(doc).filter((c) => c.kind === 'map');
  assert.ok(maps.every((m) => m.body.type === 'ifname' && m.body.map === 'verdict'));
  const elements = commandTargets(doc)
    .filter((c) => c.kind === 'element' && c.body.name === 'egress_vmap')
    .flatMap((c) => c.body.elem as unknown[]);
  assert.equal(
    elements,
    input.networks.map((n) => [n.bridge, { jump: { target: `net_${n.short}_out` } }]),
  );
});

test('no chain is named after an nft keyword', () => {
  const names = commandTargets(compileTable(twoNetworks(T)))
    .filter((c) => c.kind === 'chain')
    .map((c) => String(c.body.name));
  for (const keyword of ['fwd', 'in', 'input', 'forward', 'output', 'filter', 'out']) assert.not.ok(names.includes(keyword), keyword);
});

test('always-denied ranges are dropped first, before any policy rule, and cover metadata and loopback', () => {
  const doc = compileTable(twoNetworks(T));
  const out = rulesOf(doc, `${A}_out_g0`);
  const lastRange = out.findLastIndex((r) => tag(r) === 'o.range');
  // Only same-bridge peers (oifname is the network's own bridge) are accepted before the ranges.
  assert.equal(out.slice(0, 5).map(tag), ['o.peer', 'o.range', 'o.range', 'o.range', 'o.range']);
  assert.match(JSON.stringify(out[0]!.expr), /"oifname"/);
  assert.ok(out.findIndex(isPolicyRule) > lastRange);
  assert.ok(out.filter((r) => tag(r) === 'o.range').every((r) => ['drop', null].includes(verdictOf(r.expr))));
  const sets = commandTargets(doc).filter((c) => c.kind === 'element' && String(c.body.name).startsWith('always_denied'));
  const elems = JSON.stringify(sets.map((s) => s.body.elem));
  for (const want of [
    '"127.0.0.0","len":8',
    '"169.254.0.0","len":16',
    '"::1"',
    '"fe80::","len":10',
    '"fd00:ec2::254"',
    '"::ffff:0.0.0.0","len":96',
  ]) {
    assert.ok(elems.includes(want.replace('::ffff:0.0.0.0', '::ffff:0:0')), want);
  }
});

test('policy rules are compiled in the order written (first match wins), after the guards and before the default', () => {
  const doc = compileTable(twoNetworks(T));
  const out = rulesOf(doc, `${A}_out_g0`);
  const policyRules = out.filter((r) => isPolicyRule(r) && verdictOf(r.expr));
  assert.equal([...new Set(policyRules.map(tag))], ['o0', 'o1', 'o2', 'o3', 'o4', 'o5']);
  assert.equal([...new Set(policyRules.map((r) => `${tag(r)}:${verdictOf(r.expr)}`))].slice(0, 2), ['o0:accept', 'o1:drop']);
  const tags = out.map(tag);
  assert.ok(tags.lastIndexOf('o.dns') < tags.indexOf('o0') && tags.lastIndexOf('o5') < tags.indexOf('o.default'), tags.join());
  const inbound = rulesOf(doc, `${A}_in_g0`).filter((r) => isPolicyRule(r) && verdictOf(r.expr));
  assert.equal([...new Set(inbound.map(tag))], ['i0', 'i1']);
});

test('a stored policy kept deny-first compiles as before first-match: its deny rules ahead of its allow rules', () => {
  const doc = compileTable(twoNetworks(T, { policy: { ...fullPolicy(), order: 'deny-first' } }));
  const policyRules = rulesOf(doc, `${A}_out_g0`).filter((r) => isPolicyRule(r) && verdictOf(r.expr));
  assert.equal([...new Set(policyRules.map(tag))], ['o1', 'o4', 'o0', 'o2', 'o3', 'o5']);
  const inbound = rulesOf(doc, `${A}_in_g0`).filter((r) => isPolicyRule(r) && verdictOf(r.expr));
  assert.equal([...new Set(inbound.map(tag))], ['i1', 'i0']);
});

test('a policy network ends each chain in a default deny; a network without one in accept', () => {
  const doc = compileTable(twoNetworks(T));
  const last = (chain: string) => rulesOf(doc, chain).at(-1)!;
  assert.is(tag(last(`${A}_out_g0`)), 'o.default');
  assert.is(verdictOf(last(`${A}_out_g0`).expr), 'drop');
  assert.is(verdictOf(last(`${A}_in_g0`).expr), 'drop');
  assert.is(tag(last('net_bbbb2222_out_g0')), 'o.open');
  assert.is(verdictOf(last('net_bbbb2222_out_g0').expr), 'accept');
  assert.is(verdictOf(last('net_bbbb2222_host_g0').expr), 'drop');
});

test('isolation is the first rule of all three chains, ahead of any conntrack accept', () => {
  const doc = compileTable(twoNetworks(T, { isolated: true }));
  for (const [chain, side] of [
    ['out', 'o'],
    ['in', 'i'],
    ['host', 'h'],
  ]) {
    const rules = rulesOf(doc, `${A}_${chain}_g0`);
    const firstVerdict = rules.find((r) => verdictOf(r.expr))!;
    assert.is(tag(rules[0]!), `${side}.isolate`);
    assert.is(tag(firstVerdict), `${side}.isolate`);
    assert.equal(
      firstVerdict.expr.filter((e) => 'match' in e),
      [],
      'isolation matches everything',
    );
    assert.is(verdictOf(firstVerdict.expr), 'drop');
    const ctAccept = rules.findIndex((r) => JSON.stringify(r.expr).includes('"established"'));
    assert.ok(ctAccept > rules.indexOf(firstVerdict));
  }
  assert.not.ok(JSON.stringify(rulesOf(compileTable(twoNetworks(T)), `${A}_out_g0`)).includes('isolate'));
});

test('enforce: a deny logs through a rate limit in its own rule, then counts and drops', () => {
  const rules = rulesOf(compileTable(twoNetworks(T)), `${A}_out_g0`).filter((r) => tag(r) === 'o1');
  assert.is(rules.length, 2);
  const [logRule, dropRule] = rules as [SimRule, SimRule];
  assert.equal(
    logRule.expr.map((e) => Object.keys(e)[0]),
    ['match', 'limit', 'log'],
  );
  assert.is(logPrefixOf(logRule.expr), 'dir:aaaa1111:o1: ');
  assert.equal(dropRule.expr.slice(1), [{ counter: null }, { counter: `${A}_denied` }, { drop: null }]);
  const allow = rulesOf(compileTable(twoNetworks(T)), `${A}_out_g0`).find((r) => tag(r) === 'o3')!;
  assert.equal(allow.expr.slice(-3), [{ counter: null }, { counter: `${A}_allowed` }, { accept: null }]);
});

test('audit: policy denies and the default log with dira: and return, never drop; guards still drop', () => {
  const input = twoNetworks(T, { policy: fullPolicy({ mode: 'audit', logging: false }) });
  const doc = compileTable(input);
  for (const chain of ['out', 'in']) {
    const rules = rulesOf(doc, `${A}_${chain}_g0`);
    const policyish = rules.filter((r) => isPolicyRule(r) || /\.default$/.test(tag(r)));
    const denies = policyish.filter((r) => verdictOf(r.expr) !== 'accept');
    assert.ok(denies.length > 0);
    for (const r of denies) {
      assert.not.equal(verdictOf(r.expr), 'drop', r.comment);
      const prefix = logPrefixOf(r.expr);
      if (prefix) assert.ok(prefix.startsWith('dira:aaaa1111:'), prefix);
    }
    assert.ok(denies.some((r) => verdictOf(r.expr) === 'return'));
    assert.ok(
      denies.some((r) => logPrefixOf(r.expr)),
      'audit logs even with logging off',
    );
    const guards = rules.filter((r) => /\.(range|xnet|dns)$/.test(tag(r)) && verdictOf(r.expr));
    assert.ok(guards.length > 0 && guards.every((r) => verdictOf(r.expr) === 'drop'));
  }
  assert.is(verdictOf(rulesOf(doc, `${A}_host_g0`).at(-1)!.expr), 'drop');
});

test('logging off drops policy log rules; metrics off drops per-rule counters but keeps named ones', () => {
  const doc = compileTable(twoNetworks(T, { policy: fullPolicy({ logging: false, metrics: false }) }));
  const rules = rulesOf(doc, `${A}_out_g0`);
  const policyish = rules.filter((r) => isPolicyRule(r) || tag(r) === 'o.default');
  assert.not.ok(policyish.some((r) => logPrefixOf(r.expr)));
  assert.not.ok(policyish.some((r) => r.expr.some((e) => e.counter === null)));
  assert.ok(policyish.every((r) => r.expr.some((e) => typeof e.counter === 'string')));
  assert.ok(
    rules.filter((r) => tag(r) === 'o.range').some((r) => logPrefixOf(r.expr)),
    'guards still log',
  );
});

test('a host-name rule matches per-host timeout sets, v4 and v6, shared by rules naming the same host', () => {
  const policy = validateNetworkPolicy({
    name: 'p',
    outbound: [
      { action: 'allow', protocol: 'tcp', destination: 'pypi.org', port: 443 },
      { action: 'allow', protocol: 'tcp', destination: 'pypi.org', port: 80 },
      { action: 'allow', protocol: 'udp', source: '10.250.1.0/28', destination: 'ntp.example.org', port: 123 },
    ],
  });
  const doc = compileTable({ table: T, alwaysDenied: DEFAULT_ALWAYS_DENIED, networks: [network('aaaa1111', 1, policy)] });
  const sets = commandTargets(doc).filter((c) => c.kind === 'set' && String(c.body.name).startsWith(A));
  assert.is(sets.length, 3, 'pypi v4+v6, ntp v4 only');
  for (const s of sets) {
    assert.equal(s.body.flags, ['timeout']);
    assert.is(s.body.elem, undefined, 'created empty');
    assert.is(s.body.type, String(s.body.name).endsWith('_v4') ? 'ipv4_addr' : 'ipv6_addr');
  }
  const rules = rulesOf(doc, `${A}_out_g0`).filter(isPolicyRule);
  const refs = (t: string) => rules.filter((r) => tag(r) === t).map((r) => JSON.stringify(r.expr).match(/@(net_[a-z0-9_]+)/)![1]);
  assert.equal(refs('o0'), refs('o1'));
  assert.is(refs('o0').length, 2);
  assert.is(refs('o2').length, 1);
  assert.is(rules.find((r) => tag(r) === 'o0')!.comment, 'o0 pypi.org');
});

test('DNS goes only to the resolver; everything else to the host is dropped', () => {
  const doc = compileTable(twoNetworks(T));
  for (const short of ['aaaa1111', 'bbbb2222']) {
    const out = rulesOf(doc, `net_${short}_out_g0`);
    const resolver = out.findIndex((r) => tag(r) === 'o.resolver');
    const dns = out.findIndex((r) => tag(r) === 'o.dns' && verdictOf(r.expr) === 'drop');
    assert.ok(resolver >= 0 && resolver < dns);
    assert.ok(JSON.stringify(out[dns]!.expr).includes('"right":"@dns_ports"'));
    assert.ok(out.findIndex((r) => /^(o\d|o\.open)/.test(tag(r))) > dns, 'before any policy or open rule');
  }
  const host = rulesOf(doc, `${A}_host_g0`);
  assert.equal(host.map(tag), ['h.established', 'h.nd', 'h.resolver', 'h.host', 'h.host']);
  assert.ok(JSON.stringify(host[2]!.expr).includes('"right":"10.250.1.1"'));
  assert.ok(JSON.stringify(host[2]!.expr).includes('"field":"dport"}},"right":53'));
  const noDns = compileTable(twoNetworks(T, { dns: null }));
  assert.not.ok(rulesOf(noDns, `${A}_host_g0`).some((r) => tag(r) === 'h.resolver'));
  assert.not.ok(rulesOf(noDns, `${A}_out_g0`).some((r) => tag(r) === 'o.resolver'));
});

test('traffic to other Director networks is dropped by bridge and by subnet, both directions', () => {
  const doc = compileTable(twoNetworks(T));
  const xnet = (chain: string) =>
    rulesOf(doc, chain)
      .filter((r) => /\.xnet$/.test(tag(r)) && verdictOf(r.expr) === 'drop')
      .map((r) => JSON.stringify(r.expr));
  const out = xnet(`${A}_out_g0`);
  assert.ok(out.some((e) => e.includes('"oifname"}},"right":"dt-aaaa1111"') && e.includes('"@bridges"')));
  assert.ok(out.some((e) => e.includes('"@subnets_v4"') && e.includes('"op":"!="')));
  assert.ok(out.some((e) => e.includes('"@subnets_v6"')));
  const inb = xnet(`${A}_in_g0`);
  assert.ok(inb.some((e) => e.includes('"iifname"}},"right":"dt-aaaa1111"') && e.includes('"@bridges"')));
  assert.ok(inb.some((e) => e.includes('"saddr"') && e.includes('"@subnets_v4"')));
});

test('no rule needs an anonymous set: constant sets are shared, defined once with the table', () => {
  const doc = compileTable(twoNetworks(T));
  const rules = commandTargets(doc).filter((c) => c.kind === 'rule');
  assert.ok(rules.length > 50);
  for (const r of rules) assert.not.match(JSON.stringify(r.body.expr), /"set":\[/, String(r.body.comment));
  const consts = commandTargets(doc).filter(
    (c) => c.kind === 'set' && ['l4_tcp_udp', 'dns_ports', 'l4_icmp_any', 'nd_types'].includes(String(c.body.name)),
  );
  assert.equal(
    consts.map((c) => [c.body.name, c.body.elem]),
    [
      ['l4_tcp_udp', ['tcp', 'udp']],
      ['dns_ports', [53, 853]],
      ['l4_icmp_any', ['icmp', 'ipv6-icmp']],
      ['nd_types', ['nd-neighbor-solicit', 'nd-neighbor-advert']],
    ],
  );
});

test('protocols and ports compile to nft matches', () => {
  const rules = rulesOf(compileTable(twoNetworks(T)), `${A}_out_g0`);
  const byTag = (t: string) => rules.filter((r) => tag(r) === t && verdictOf(r.expr)).map((r) => r.expr.filter((e) => 'match' in e));
  assert.equal(byTag('o2'), [
    [
      { match: { op: '==', left: { payload: { protocol: 'ip6', field: 'daddr' } }, right: { prefix: { addr: '2001:db8::', len: 32 } } } },
      { match: { op: '==', left: { payload: { protocol: 'udp', field: 'dport' } }, right: { range: [8000, 8100] } } },
    ],
  ]);
  assert.equal(byTag('o3'), [[{ match: { op: '==', left: { meta: { key: 'l4proto' } }, right: '@l4_icmp_any' } }]]);
  assert.equal(byTag('o4')[0]![0], { match: { op: '==', left: { payload: { protocol: 'ip', field: 'daddr' } }, right: '203.0.113.9' } });
  assert.equal(byTag('o1'), [
    [{ match: { op: '==', left: { payload: { protocol: 'ip', field: 'daddr' } }, right: { prefix: { addr: '10.0.0.0', len: 8 } } } }],
  ]);
});

test.run();
