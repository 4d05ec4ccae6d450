import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { validateNetworkPolicy, type NetworkPolicy } from '../../../policies/network-policy.ts';
import { decideName, normalizeName } from '../../../runtime/network/dns/name-policy.ts';

const policy = validateNetworkPolicy({
  name: 'p',
  outbound: [
    { action: 'allow', protocol: 'tcp', destination: 'api.example.test', port: 443 },
    { action: 'deny', protocol: 'all', destination: 'blocked.pkg.test' },
    { action: 'allow', protocol: 'tcp', destination: '*.pkg.test' },
    { action: 'allow', protocol: 'tcp', destination: '10.0.0.0/8' },
    { action: 'deny', protocol: 'all', destination: 'banned.example.test' },
  ],
  inbound: [{ action: 'allow', protocol: 'tcp', source: 'monitor.pkg.test' }],
});
const outbound = (rules: unknown[]): NetworkPolicy => validateNetworkPolicy({ name: 'q', outbound: rules });

test('normalizes case and one trailing dot', () => {
  assert.is(normalizeName('API.Example.TEST.'), 'api.example.test');
});

test('a name an exact allow rule names is allowed, in any case and with a trailing dot', () => {
  for (const n of ['api.example.test', 'API.EXAMPLE.TEST.', 'Api.Example.Test']) {
    const d = decideName(policy, n);
    assert.is(d.allowed, true, n);
    assert.is(d.rule, 0);
    assert.equal(d.matches, [{ direction: 'outbound', index: 0, host: 'api.example.test' }]);
  }
});

test('a wildcard allows names at any depth below it but not the bare domain', () => {
  assert.is(decideName(policy, 'files.pkg.test').allowed, true);
  assert.is(decideName(policy, 'a.b.c.pkg.test').allowed, true);
  assert.is(decideName(policy, 'pkg.test').allowed, false);
  assert.is(decideName(policy, 'xpkg.test').allowed, false);
});

test('a deny rule ahead of a wildcard allow refuses the name; every rule naming it is among the matches', () => {
  assert.equal(decideName(policy, 'Blocked.pkg.test.'), {
    allowed: false,
    reason: 'denied_by_rule',
    rule: 1,
    matches: [
      { direction: 'outbound', index: 1, host: 'blocked.pkg.test' },
      { direction: 'outbound', index: 2, host: '*.pkg.test' },
    ],
  });
});

test('an allow rule ahead of a deny rule that names the same host decides: the name is answered', () => {
  const p = outbound([
    { action: 'allow', protocol: 'tcp', destination: '*.pkg.test' },
    { action: 'deny', protocol: 'all', destination: 'blocked.pkg.test' },
  ]);
  const d = decideName(p, 'blocked.pkg.test');
  assert.is(d.allowed, true);
  assert.is(d.rule, 0);
  assert.equal(
    d.matches.map((m) => m.index),
    [0, 1],
    'the deny rule is fed the answer too, for the traffic the allow does not take',
  );
});

test('a deny that takes only part of the traffic leaves the rest to the rules after it', () => {
  const p = outbound([
    { action: 'deny', protocol: 'udp', destination: 'api.example.test' },
    { action: 'allow', protocol: 'tcp', destination: 'api.example.test', port: 443 },
  ]);
  assert.equal([decideName(p, 'api.example.test').allowed, decideName(p, 'api.example.test').rule], [true, 1]);
  const q = outbound([
    { action: 'deny', protocol: 'tcp', destination: 'api.example.test' },
    { action: 'deny', protocol: 'udp', destination: 'api.example.test' },
    { action: 'allow', protocol: 'icmp', destination: 'api.example.test' },
  ]);
  assert.is(decideName(q, 'api.example.test').rule, 2, 'icmp is left');
});

test('a rule with no destination decides every name it reaches', () => {
  const denyThenAll = outbound([
    { action: 'deny', protocol: 'all', destination: 'evil.example.test' },
    { action: 'allow', protocol: 'all' },
  ]);
  assert.equal(decideName(denyThenAll, 'evil.example.test'), {
    allowed: false,
    reason: 'denied_by_rule',
    rule: 0,
    matches: [{ direction: 'outbound', index: 0, host: 'evil.example.test' }],
  });
  assert.equal(decideName(denyThenAll, 'good.example.test'), { allowed: true, rule: 1, matches: [] });
  const oneThenNone = outbound([
    { action: 'allow', protocol: 'tcp', destination: 'api.example.test', port: 8443 },
    { action: 'deny', protocol: 'all' },
  ]);
  assert.is(decideName(oneThenNone, 'api.example.test').allowed, true);
  const other = decideName(oneThenNone, 'other.example.test');
  assert.equal([other.allowed, other.allowed ? null : other.reason, other.rule], [false, 'denied_by_rule', 1]);
});

test('names no rule allows are refused as not_allowed, a name only denied as denied_by_rule', () => {
  const d = decideName(policy, 'other.test');
  assert.is(d.allowed, false);
  if (!d.allowed) assert.equal([d.reason, d.rule], ['not_allowed', null]);
  const b = decideName(policy, 'banned.example.test');
  if (b.allowed) assert.unreachable('banned name allowed');
  else assert.equal([b.reason, b.rule], ['denied_by_rule', 4]);
  assert.is(decideName(policy, 'sub.api.example.test').allowed, false, 'an exact rule does not cover subdomains');
  assert.is(
    decideName(outbound([{ action: 'allow', protocol: 'all', destination: '0.0.0.0/0' }]), 'x.test').allowed,
    false,
    'addresses decide no name',
  );
});

test('an inbound rule naming a host does not allow resolving it, but is reported among the matches', () => {
  const d = decideName(policy, 'monitor.pkg.test');
  assert.is(d.allowed, true, 'allowed by the outbound wildcard');
  assert.equal(d.matches.map((m) => m.direction).sort(), ['inbound', 'outbound']);
  const only = validateNetworkPolicy({ name: 'q', inbound: [{ action: 'allow', protocol: 'tcp', source: 'monitor.example.test' }] });
  assert.is(decideName(only, 'monitor.example.test').allowed, false);
});

test('a policy kept deny-first resolves as before first-match: any deny naming the host refuses it', () => {
  const kept: NetworkPolicy = {
    ...outbound([
      { action: 'allow', protocol: 'tcp', destination: '*.pkg.test' },
      { action: 'deny', protocol: 'udp', destination: 'blocked.pkg.test' },
      { action: 'deny', protocol: 'all' },
    ]),
    order: 'deny-first',
  };
  const d = decideName(kept, 'blocked.pkg.test');
  assert.equal([d.allowed, d.rule], [false, 1]);
  assert.equal([decideName(kept, 'files.pkg.test').allowed, decideName(kept, 'files.pkg.test').rule], [true, 0]);
});

test('without a policy every name is allowed with no matches', () => {
  assert.equal(decideName(null, 'anything.test'), { allowed: true, rule: null, matches: [] });
});

test.run();
