import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { NetworkPolicy, PolicyRule } from '../../../policies/network-policy.ts';
import {
  evaluationOrder,
  findShadowed,
  insertionPoint,
  nameVerdict,
  ruleCovers,
  rulesOverlap,
  upgradeDenyFirst,
} from '../../../policies/rule-order.ts';

const test = suite('rule-order');

const allow = (extra: Partial<PolicyRule> = {}): PolicyRule => ({ action: 'allow', protocol: 'all', ...extra });
const deny = (extra: Partial<PolicyRule> = {}): PolicyRule => ({ action: 'deny', protocol: 'all', ...extra });
const stored = (outbound: PolicyRule[], inbound: PolicyRule[] = []): NetworkPolicy => ({
  name: 'old',
  outbound,
  inbound,
  logging: true,
  metrics: true,
  mode: 'enforce',
  order: 'deny-first',
});

test('covers: protocol, port range, addresses and names, each a subset', () => {
  const tcp443 = allow({ protocol: 'tcp', port: 443 });
  assert.ok(ruleCovers(allow(), tcp443));
  assert.ok(ruleCovers(allow({ protocol: 'tcp' }), tcp443));
  assert.ok(ruleCovers(allow({ protocol: 'tcp', port: { from: 400, to: 500 } }), tcp443));
  assert.not.ok(ruleCovers(tcp443, allow({ protocol: 'tcp' })), 'a port does not cover all ports');
  assert.not.ok(ruleCovers(allow({ protocol: 'udp' }), tcp443));
  assert.not.ok(ruleCovers(allow({ protocol: 'tcp' }), allow()), 'tcp does not cover every protocol');
  assert.ok(ruleCovers(allow({ destination: '10.0.0.0/8' }), deny({ destination: '10.1.2.0/24' })));
  assert.not.ok(ruleCovers(allow({ destination: '10.1.2.0/24' }), deny({ destination: '10.0.0.0/8' })));
  assert.not.ok(ruleCovers(allow({ destination: '10.0.0.0/8' }), deny()), 'an address range does not cover any address');
  assert.ok(
    ruleCovers(allow({ destination: '0.0.0.0/0' }), deny({ source: '10.1.0.0/16' })),
    'every IPv4 destination, for an IPv4-only rule',
  );
  assert.not.ok(ruleCovers(allow({ destination: '0.0.0.0/0' }), deny({ source: 'fd00::/8' })));
  assert.ok(ruleCovers(allow({ destination: '*.example.test' }), deny({ destination: 'a.b.example.test' })));
  assert.ok(ruleCovers(allow({ destination: '*.example.test' }), deny({ destination: '*.b.example.test' })));
  assert.not.ok(ruleCovers(allow({ destination: '*.example.test' }), deny({ destination: 'example.test' })));
  assert.not.ok(ruleCovers(allow({ destination: 'a.example.test' }), deny({ destination: '*.example.test' })));
  assert.not.ok(
    ruleCovers(allow({ destination: '203.0.113.0/24' }), deny({ destination: 'api.example.test' })),
    'an address range, a name',
  );
  assert.not.ok(ruleCovers(allow({ destination: 'api.example.test' }), deny({ destination: '203.0.113.10/32' })));
});

test('findShadowed names every unreachable rule and the first earlier rule that covers it', () => {
  assert.equal(findShadowed([allow({ destination: '10.1.0.0/16' }), deny({ destination: '10.0.0.0/8' }), deny()], 'outbound'), []);
  assert.equal(
    findShadowed([allow({ protocol: 'tcp' }), allow(), deny({ protocol: 'tcp', port: 22 }), deny({ protocol: 'icmp' })], 'inbound'),
    [
      { rule: 'inbound[2]', by: 'inbound[0]' },
      { rule: 'inbound[3]', by: 'inbound[1]' },
    ],
  );
});

test('overlap: some packet matches both (unknown for names: assumed)', () => {
  assert.ok(rulesOverlap(allow({ protocol: 'tcp', destination: '203.0.113.0/24' }), deny({ destination: '203.0.113.20/32' })));
  assert.ok(rulesOverlap(allow({ protocol: 'tcp', destination: 'api.example.test' }), deny({ destination: '203.0.113.20/32' })));
  assert.not.ok(rulesOverlap(allow({ protocol: 'tcp' }), deny({ protocol: 'udp' })));
  assert.not.ok(rulesOverlap(allow({ protocol: 'tcp', port: 443 }), deny({ protocol: 'tcp', port: 80 })));
  assert.not.ok(rulesOverlap(allow({ destination: '10.0.0.0/8' }), deny({ destination: '192.168.0.0/16' })));
  assert.not.ok(rulesOverlap(allow({ destination: '10.0.0.0/8' }), deny({ destination: 'fd00::/8' })));
});

test('added rules go ahead of a trailing run of catch-all denies; the evaluation order is the written one, or denies first', () => {
  assert.is(insertionPoint([allow({ protocol: 'tcp' }), deny(), deny()]), 1);
  assert.is(insertionPoint([deny(), allow({ protocol: 'tcp' })]), 2);
  assert.is(insertionPoint([deny({ protocol: 'tcp' })]), 1, 'a deny of one protocol is not the default');
  assert.is(insertionPoint([]), 0);
  const rules = [allow({ protocol: 'tcp' }), deny({ destination: '10.0.0.0/8' }), allow({ protocol: 'udp' }), deny()];
  assert.equal(
    evaluationOrder(rules, 'first-match').map((r) => r.index),
    [0, 1, 2, 3],
  );
  assert.equal(
    evaluationOrder(rules, 'deny-first').map((r) => r.index),
    [1, 3, 0, 2],
  );
});

test('names: the first rule that can match the traffic decides, a sandbox-restricted deny takes nothing from the others', () => {
  const api = 'api.example.test';
  assert.equal(nameVerdict([allow({ protocol: 'tcp', destination: api, port: 8443 }), deny()], api, 'first-match'), {
    answer: true,
    index: 0,
  });
  assert.equal(nameVerdict([deny({ destination: api }), allow()], api, 'first-match'), {
    answer: false,
    reason: 'denied_by_rule',
    index: 0,
  });
  assert.equal(nameVerdict([deny({ destination: api }), allow()], 'web.example.test', 'first-match'), { answer: true, index: 1 });
  assert.equal(
    nameVerdict([deny({ destination: api, source: '10.0.0.5/32' }), allow({ protocol: 'tcp', destination: api })], api, 'first-match'),
    {
      answer: true,
      index: 1,
    },
  );
  assert.equal(nameVerdict([allow({ destination: '203.0.113.0/24' })], api, 'first-match'), {
    answer: false,
    reason: 'not_allowed',
    index: null,
  });
  assert.equal(nameVerdict([deny({ protocol: 'udp', destination: api })], api, 'first-match'), {
    answer: false,
    reason: 'denied_by_rule',
    index: 0,
  });
  // Ports: a deny of 1-1000 then an allow of 443 (fully taken) and one of 8443.
  const ports = [
    deny({ protocol: 'tcp', destination: api, port: { from: 1, to: 1000 } }),
    allow({ protocol: 'tcp', destination: api, port: 443 }),
  ];
  assert.equal(nameVerdict(ports, api, 'first-match'), { answer: false, reason: 'denied_by_rule', index: 0 });
  assert.equal(nameVerdict([...ports, allow({ protocol: 'tcp', destination: api, port: 8443 })], api, 'first-match'), {
    answer: true,
    index: 2,
  });
});

test('upgrade: a stored policy whose rules all can match as written is recompiled first-match, listing the allows that now come first', () => {
  const issue = stored([allow({ protocol: 'tcp', destination: '203.0.113.10/32', port: 8443 }), deny()]);
  const out = upgradeDenyFirst(issue);
  assert.is(out.kind, 'first-match');
  assert.is(out.policy.order, 'first-match');
  assert.equal(out.policy.outbound, issue.outbound);
  if (out.kind === 'first-match') assert.equal(out.reordered, [{ allow: 'outbound[0]', deny: 'outbound[1]' }]);
  const same = upgradeDenyFirst(stored([deny({ destination: '10.0.0.0/8' }), allow({ protocol: 'tcp' })]));
  assert.equal(same.kind === 'first-match' ? same.reordered : null, [], 'denies first already: nothing changes');
});

test('upgrade: one with rules that could never match as written is refused, kept deny-first and flagged with them', () => {
  const p = stored(
    [allow({ protocol: 'tcp', destination: '203.0.113.0/24' }), deny({ protocol: 'tcp', destination: '203.0.113.20/32' })],
    [deny(), allow()],
  );
  const out = upgradeDenyFirst(p);
  assert.is(out.kind, 'kept');
  assert.is(out.policy.order, 'deny-first');
  assert.equal(out.policy.review?.shadowed, [
    { rule: 'outbound[1]', by: 'outbound[0]' },
    { rule: 'inbound[1]', by: 'inbound[0]' },
  ]);
  assert.equal(out.policy.outbound, p.outbound, 'the rules are kept as they were');
});

test.run();
