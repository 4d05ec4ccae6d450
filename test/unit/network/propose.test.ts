import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { policyBody, validateNetworkPolicy, type NetworkPolicy } from '../../../policies/network-policy.ts';
import { proposePolicy, ruleAllows, type Observation } from '../../../runtime/network/propose.ts';
import { isDirectorError } from '../../../core/errors.ts';

const test = suite('propose');

const policy = (outbound: unknown[], extra: Record<string, unknown> = {}) =>
  validateNetworkPolicy({ name: 'web', mode: 'audit', outbound, ...extra });
const out = (remote: string, port: number | null, extra: Partial<Observation> = {}): Observation => ({
  direction: 'outbound',
  proto: 'tcp',
  remote,
  port,
  count: 1,
  ...extra,
});

test('no observations: the same policy and no additions', () => {
  const p = policy([{ action: 'allow', protocol: 'tcp', destination: '10.0.0.0/8' }]);
  const r = proposePolicy(p, []);
  assert.equal(r.policy, p);
  assert.equal(r.added, []);
  assert.equal(r.blockedByDeny, []);
  assert.not.match(r.diff, /^\+ /m);
  assert.match(r.diff, /^--- policy "web"/);
  assert.match(r.diff, /^ {2}allow tcp → 10\.0\.0\.0\/8$/m);
});

test('prefers host names, one rule per name and port, and counts what it saw', () => {
  const r = proposePolicy(null, [
    out('203.0.113.10', 443, { names: ['api.example.test', 'API.example.test.'], count: 5 }),
    out('203.0.113.11', 443, { names: ['api.example.test'], count: 7 }),
    out('203.0.113.10', 443, { names: ['cdn.example.test'], count: 1 }),
  ]);
  assert.equal(r.added, [
    { action: 'allow', protocol: 'tcp', destination: 'api.example.test', port: 443 },
    { action: 'allow', protocol: 'tcp', destination: 'cdn.example.test', port: 443 },
  ]);
  assert.is(r.policy.name, 'proposed');
  assert.match(r.diff, '+ allow tcp → api.example.test:443  (seen 12×)');
  assert.match(r.diff, '--- (no policy in force)');
});

test('addresses become /32 or /128 rules; ≥3 consecutive ports collapse into a range', () => {
  const r = proposePolicy(policy([]), [
    out('198.51.100.7', 8002),
    out('198.51.100.7', 8000),
    out('198.51.100.7', 8001),
    out('198.51.100.7', 8001),
    out('198.51.100.7', 9000),
    out('198.51.100.7', 9001),
    out('2001:db8::1', 443),
    out('198.51.100.2', 53, { proto: 'udp' }),
    out('198.51.100.2', null, { proto: 'icmp' }),
  ]);
  assert.equal(r.added, [
    { action: 'allow', protocol: 'udp', destination: '198.51.100.2/32', port: 53 },
    { action: 'allow', protocol: 'icmp', destination: '198.51.100.2/32' },
    { action: 'allow', protocol: 'tcp', destination: '198.51.100.7/32', port: { from: 8000, to: 8002 } },
    { action: 'allow', protocol: 'tcp', destination: '198.51.100.7/32', port: 9000 },
    { action: 'allow', protocol: 'tcp', destination: '198.51.100.7/32', port: 9001 },
    { action: 'allow', protocol: 'tcp', destination: '2001:db8::1/128', port: 443 },
  ]);
  assert.match(r.diff, '+ allow tcp → 198.51.100.7/32:8000-8002  (seen 4×)');
  assert.match(r.diff, '+ allow tcp → [2001:db8::1/128]:443  (seen 1×)');
  // Same input in another order: same output.
  const again = proposePolicy(policy([]), [
    out('2001:db8::1', 443),
    out('198.51.100.7', 9001),
    out('198.51.100.2', null, { proto: 'icmp' }),
    out('198.51.100.7', 8001),
    out('198.51.100.7', 9000),
    out('198.51.100.2', 53, { proto: 'udp' }),
    out('198.51.100.7', 8000),
    out('198.51.100.7', 8002),
  ]);
  assert.equal(again.added, r.added);
});

test('traffic already allowed adds nothing (CIDR, port range, name, protocol all)', () => {
  const p = policy([
    { action: 'allow', protocol: 'tcp', destination: '198.51.100.0/24', port: { from: 8000, to: 8100 } },
    { action: 'allow', protocol: 'tcp', destination: '*.example.test', port: 443 },
    { action: 'allow', protocol: 'all', destination: '2001:db8::/32' },
  ]);
  const obs = [
    out('198.51.100.7', 8050),
    out('203.0.113.5', 443, { names: ['api.example.test'] }),
    out('2001:db8::9', null, { proto: 'icmp' }),
  ];
  for (const o of obs)
    assert.ok(
      p.outbound.some((rule) => ruleAllows(rule, o)),
      JSON.stringify(o),
    );
  const r = proposePolicy(p, obs);
  assert.equal(r.added, []);
  assert.equal(r.policy, p);
  // Just outside: another port, the bare domain a wildcard does not cover, no known name.
  const more = proposePolicy(p, [out('198.51.100.7', 8101), out('203.0.113.5', 443, { names: ['example.test'] }), out('203.0.113.6', 443)]);
  assert.is(more.added.length, 3);
});

test('a rule restricting the sandbox address allows only a known, matching local address', () => {
  const p = policy([{ action: 'allow', protocol: 'tcp', source: '10.250.1.0/24', destination: '198.51.100.7/32' }]);
  assert.ok(ruleAllows(p.outbound[0]!, out('198.51.100.7', 80, { local: '10.250.1.2' })));
  assert.not.ok(ruleAllows(p.outbound[0]!, out('198.51.100.7', 80, { local: '10.250.2.2' })));
  assert.not.ok(ruleAllows(p.outbound[0]!, out('198.51.100.7', 80)));
});

test('traffic whose first matching rule is a deny goes to blockedByDeny; one an earlier allow decides adds nothing', () => {
  const p = policy([
    { action: 'deny', protocol: 'tcp', destination: '203.0.113.9/32', port: 22 },
    { action: 'deny', protocol: 'all', destination: '*.evil.test' },
    { action: 'allow', protocol: 'tcp', destination: '203.0.113.0/24' },
    { action: 'deny', protocol: 'all', destination: '203.0.113.7/32' },
  ]);
  const r = proposePolicy(p, [
    out('203.0.113.9', 22, { count: 3 }),
    out('198.51.100.4', 443, { names: ['x.evil.test'] }),
    out('198.51.100.5', 443),
    out('203.0.113.7', 80),
  ]);
  assert.equal(
    r.blockedByDeny.map((b) => [b.observation.remote, b.index]),
    [
      ['203.0.113.9', 0],
      ['198.51.100.4', 1],
    ],
  );
  assert.equal(r.added, [{ action: 'allow', protocol: 'tcp', destination: '198.51.100.5/32', port: 443 }]);
  assert.match(r.diff, /^! outbound tcp → 203\.0\.113\.9:22 {2}\(seen 3×\) {2}by outbound\[0\] deny tcp → 203\.0\.113\.9\/32:22$/m);
});

test('added rules go ahead of trailing catch-all denies, which only restate the default', () => {
  const p = policy([
    { action: 'allow', protocol: 'tcp', destination: '203.0.113.10/32', port: 8443 },
    { action: 'deny', protocol: 'all' },
  ]);
  const r = proposePolicy(p, [out('203.0.113.20', 443), out('203.0.113.10', 8443)]);
  assert.equal(r.blockedByDeny, [], 'traffic only the trailing deny-all matches is what the proposal is for');
  assert.equal(r.policy.outbound, [
    { action: 'allow', protocol: 'tcp', destination: '203.0.113.10/32', port: 8443 },
    { action: 'allow', protocol: 'tcp', destination: '203.0.113.20/32', port: 443 },
    { action: 'deny', protocol: 'all' },
  ]);
  assert.match(
    r.diff,
    /@@ outbound @@\n {2}allow tcp → 203\.0\.113\.10\/32:8443\n\+ allow tcp → 203\.0\.113\.20\/32:443 {2}\(seen 1×\)\n {2}deny all → \*\n/,
  );
});

test('a policy kept deny-first is proposed as the ordered policy that means the same, without the rules that never matched', () => {
  const kept: NetworkPolicy = {
    ...policy([]),
    outbound: [
      { action: 'allow', protocol: 'tcp', destination: '203.0.113.10/32', port: 8443 },
      { action: 'allow', protocol: 'tcp', destination: '203.0.113.0/24' },
      { action: 'deny', protocol: 'all', destination: '203.0.113.20/32' },
      { action: 'deny', protocol: 'all' },
    ],
    order: 'deny-first',
  };
  const r = proposePolicy(kept, [out('198.51.100.5', 443), out('203.0.113.20', 80)]);
  assert.equal(r.policy.outbound, [
    { action: 'deny', protocol: 'all', destination: '203.0.113.20/32' },
    { action: 'allow', protocol: 'tcp', destination: '198.51.100.5/32', port: 443 },
    { action: 'deny', protocol: 'all' },
  ]);
  assert.equal(r.policy.order, 'first-match');
  assert.equal(r.removed, [
    { rule: 'outbound[0]', by: 'outbound[3]' },
    { rule: 'outbound[1]', by: 'outbound[3]' },
  ]);
  assert.equal(
    r.blockedByDeny.map((b) => b.observation.remote),
    ['203.0.113.20'],
  );
  assert.match(r.diff, /^- allow tcp → 203\.0\.113\.10\/32:8443 {2}\(never matched: shadowed by outbound\[3\]\)$/m);
});

test('inbound observations get source rules; the result keeps everything else and validates', () => {
  const p = policy([{ action: 'allow', protocol: 'udp', destination: '198.51.100.53/32', port: 53 }], {
    description: 'kept',
    inbound: [{ action: 'allow', protocol: 'tcp', source: '192.0.2.0/24', port: 22 }],
    metrics: false,
  });
  const r = proposePolicy(p, [
    { direction: 'inbound', proto: 'tcp', remote: '203.0.113.20', port: 8080, count: 2 },
    { direction: 'inbound', proto: 'tcp', remote: '192.0.2.7', port: 22, count: 1 },
    out('198.51.100.53', 53, { proto: 'udp' }),
  ]);
  assert.equal(r.added, [{ action: 'allow', protocol: 'tcp', source: '203.0.113.20/32', port: 8080 }]);
  assert.equal(validateNetworkPolicy(policyBody(r.policy)), r.policy);
  assert.equal([r.policy.description, r.policy.metrics, r.policy.mode, r.policy.outbound.length], ['kept', false, 'audit', 1]);
  assert.match(
    r.diff,
    /@@ inbound @@\n {2}allow tcp ← 192\.0\.2\.0\/24 port 22\n\+ allow tcp ← 203\.0\.113\.20\/32 port 8080 {2}\(seen 2×\)/,
  );
});

test('a malformed observation is a VALIDATION_ERROR naming it', () => {
  try {
    proposePolicy(null, [out('198.51.100.7', 80), out('not-an-ip', 80)]);
    assert.unreachable();
  } catch (err) {
    assert.ok(isDirectorError(err));
    assert.is(err.details?.field, 'observations[1].remote');
  }
});

test.run();
