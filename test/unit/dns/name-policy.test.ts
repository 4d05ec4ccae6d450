import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { validateNetworkPolicy } from '../../../policies/network-policy.ts';
import { decideName, normalizeName } from '../../../runtime/network/dns/name-policy.ts';

const policy = validateNetworkPolicy({
  name: 'p',
  outbound: [
    { action: 'allow', protocol: 'tcp', destination: 'api.example.test', port: 443 },
    { action: 'allow', protocol: 'tcp', destination: '*.pkg.test' },
    { action: 'deny', protocol: 'all', destination: 'blocked.pkg.test' },
    { action: 'allow', protocol: 'tcp', destination: '10.0.0.0/8' },
    { action: 'deny', protocol: 'all', destination: 'banned.example.test' },
  ],
  inbound: [{ action: 'allow', protocol: 'tcp', source: 'monitor.pkg.test' }],
});

test('normalizes case and one trailing dot', () => {
  assert.is(normalizeName('API.Example.TEST.'), 'api.example.test');
});

test('a name an exact allow rule names is allowed, in any case and with a trailing dot', () => {
  for (const n of ['api.example.test', 'API.EXAMPLE.TEST.', 'Api.Example.Test']) {
    const d = decideName(policy, n);
    assert.is(d.allowed, true, n);
    assert.equal(d.matches, [{ direction: 'outbound', index: 0, host: 'api.example.test' }]);
  }
});

test('a wildcard allows names at any depth below it but not the bare domain', () => {
  assert.is(decideName(policy, 'files.pkg.test').allowed, true);
  assert.is(decideName(policy, 'a.b.c.pkg.test').allowed, true);
  assert.is(decideName(policy, 'pkg.test').allowed, false);
  assert.is(decideName(policy, 'xpkg.test').allowed, false);
});

test('a deny rule wins over a wildcard allow', () => {
  const d = decideName(policy, 'Blocked.pkg.test.');
  assert.equal(d, {
    allowed: false,
    reason: 'denied_by_rule',
    matches: [
      { direction: 'outbound', index: 1, host: '*.pkg.test' },
      { direction: 'outbound', index: 2, host: 'blocked.pkg.test' },
    ],
  });
});

test('names no rule allows are refused as not_allowed, a name only denied as denied_by_rule', () => {
  const d = decideName(policy, 'other.test');
  assert.is(d.allowed, false);
  if (!d.allowed) assert.is(d.reason, 'not_allowed');
  const b = decideName(policy, 'banned.example.test');
  if (b.allowed) assert.unreachable('banned name allowed');
  else assert.is(b.reason, 'denied_by_rule');
  assert.is(decideName(policy, 'sub.api.example.test').allowed, false, 'an exact rule does not cover subdomains');
});

test('an inbound rule naming a host does not allow resolving it, but is reported among the matches', () => {
  const d = decideName(policy, 'monitor.pkg.test');
  assert.is(d.allowed, true, 'allowed by the outbound wildcard');
  assert.equal(d.matches.map((m) => m.direction).sort(), ['inbound', 'outbound']);
  const only = validateNetworkPolicy({ name: 'q', inbound: [{ action: 'allow', protocol: 'tcp', source: 'monitor.example.test' }] });
  assert.is(decideName(only, 'monitor.example.test').allowed, false);
});

test('without a policy every name is allowed with no matches', () => {
  assert.equal(decideName(null, 'anything.test'), { allowed: true, matches: [] });
});

test.run();
