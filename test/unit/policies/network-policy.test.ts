import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { PolicyValidationError, nameRules, nameRulesMatching, validateNetworkPolicy } from '../../../policies/network-policy.ts';
import { isDirectorError } from '../../../core/errors.ts';

const test = suite('network-policy');

const out = (...rules: unknown[]) => ({ name: 'p', outbound: rules });
const inb = (...rules: unknown[]) => ({ name: 'p', inbound: rules });

function refusal(input: unknown): PolicyValidationError {
  try {
    validateNetworkPolicy(input);
  } catch (err) {
    assert.instance(err, PolicyValidationError);
    return err as PolicyValidationError;
  }
  assert.unreachable(`accepted ${JSON.stringify(input)}`);
  throw new Error('unreachable');
}

function refuses(input: unknown, field: string, issue?: RegExp): void {
  const err = refusal(input);
  assert.is(err.field, field, `field of: ${err.message}`);
  if (issue) assert.match(err.issue, issue);
  assert.match(err.message, field);
}

test('accepts the Director Protocol example and fills defaults', () => {
  const p = validateNetworkPolicy({
    name: 'restrictive-policy',
    description: 'Block all outbound traffic',
    inbound: [{ action: 'allow', protocol: 'all', source: '127.0.0.1/32' }],
    outbound: [{ action: 'deny', protocol: 'all' }],
    logging: true,
    metrics: true,
  });
  assert.is(p.mode, 'enforce');
  assert.equal(p.inbound, [{ action: 'allow', protocol: 'all', source: '127.0.0.1/32' }]);
  const bare = validateNetworkPolicy({ name: 'bare' });
  assert.equal(bare, { name: 'bare', inbound: [], outbound: [], logging: true, metrics: true, mode: 'enforce', order: 'first-match' });
});

test('normalizes addresses, host names and one-port ranges', () => {
  const p = validateNetworkPolicy(
    out(
      { action: 'allow', protocol: 'tcp', destination: '198.51.100.7', port: { from: 443, to: 443 } },
      { action: 'allow', protocol: 'tcp', destination: '2001:DB8:0:0::/64', port: { from: 8000, to: 8100 } },
      { action: 'allow', protocol: 'udp', destination: 'Files.PythonHosted.org.' },
    ),
  );
  assert.is(p.outbound[0]!.destination, '198.51.100.7/32');
  assert.is(p.outbound[0]!.port, 443);
  assert.is(p.outbound[1]!.destination, '2001:db8::/64');
  assert.equal(p.outbound[1]!.port, { from: 8000, to: 8100 });
  assert.is(p.outbound[2]!.destination, 'files.pythonhosted.org');
});

test('a refusal is a VALIDATION_ERROR naming the field', () => {
  const err = refusal(out({ action: 'allow', protocol: 'tcp', destination: '*.com' }));
  assert.ok(isDirectorError(err));
  assert.is(err.code, 'VALIDATION_ERROR');
  assert.is(err.status, 400);
  assert.equal(err.details, { field: 'outbound[0].destination', issue: err.issue });
});

test('refuses malformed documents with the field path', () => {
  refuses('nope', '(policy)');
  refuses({}, 'name', /required/);
  refuses({ name: 'p', extra: 1 }, 'extra', /not a known property/);
  refuses(out({ action: 'allow', protocol: 'tcp', color: 'red' }), 'outbound[0].color', /not a known property/);
  refuses(out({ protocol: 'tcp' }), 'outbound[0].action', /required/);
  refuses(out({ action: 'permit', protocol: 'tcp' }), 'outbound[0].action', /"allow", "deny"/);
  refuses(inb({ action: 'allow', protocol: 'sctp' }), 'inbound[0].protocol', /"tcp"/);
  refuses({ name: 'p', mode: 'learn' }, 'mode', /"enforce", "audit"/);
  refuses({ name: 'p', logging: 'yes' }, 'logging');
  refuses({ name: 'has space' }, 'name');
});

test('refuses ports out of range, reversed ranges and ports without tcp/udp', () => {
  refuses(out({ action: 'allow', protocol: 'tcp', port: 0 }), 'outbound[0].port', /1-65535/);
  refuses(out({ action: 'allow', protocol: 'tcp', port: 65536 }), 'outbound[0].port');
  refuses(out({ action: 'allow', protocol: 'tcp', port: '443' }), 'outbound[0].port');
  refuses(out({ action: 'allow', protocol: 'tcp', port: { from: 1 } }), 'outbound[0].port');
  refuses(out({ action: 'allow', protocol: 'tcp', port: { from: 8100, to: 8000 } }), 'outbound[0].port', /greater than/);
  refuses(out({ action: 'allow', protocol: 'tcp' }, { action: 'allow', protocol: 'icmp', port: 1 }), 'outbound[1].port', /tcp.*udp/);
  refuses(out({ action: 'deny', protocol: 'all', port: 22 }), 'outbound[0].port', /protocol is "all"/);
});

test('refuses invalid CIDRs and mixed address families', () => {
  refuses(out({ action: 'allow', protocol: 'all', destination: '300.1.1.1/8' }), 'outbound[0].destination');
  refuses(out({ action: 'allow', protocol: 'all', destination: '10.0.0.0/33' }), 'outbound[0].destination', /prefix length/);
  refuses(out({ action: 'allow', protocol: 'all', destination: '10.1.2.3/8' }), 'outbound[0].destination', /host bits.*10\.0\.0\.0\/8/);
  refuses(out({ action: 'allow', protocol: 'all', destination: '010.0.0.1' }), 'outbound[0].destination');
  refuses(out({ action: 'allow', protocol: 'all', destination: 'fe80::1%eth0' }), 'outbound[0].destination');
  refuses(inb({ action: 'allow', protocol: 'all', source: '1.2.3' }), 'inbound[0].source');
  refuses(
    out({ action: 'allow', protocol: 'all', source: '10.0.0.0/8', destination: '2001:db8::/32' }),
    'outbound[0].destination',
    /IPv6 but source is IPv4/,
  );
});

test('refuses host names at the local end of a rule', () => {
  refuses(out({ action: 'allow', protocol: 'all', source: 'example.com' }), 'outbound[0].source', /CIDR/);
  refuses(inb({ action: 'allow', protocol: 'all', destination: 'example.com' }), 'inbound[0].destination', /CIDR/);
  const p = validateNetworkPolicy(inb({ action: 'allow', protocol: 'tcp', source: 'ci.example.com', port: 22 }));
  assert.is(p.inbound[0]!.source, 'ci.example.com');
});

test('refuses over-broad and malformed host names', () => {
  const cases: [string, RegExp][] = [
    ['*', /every host/],
    ['*.com', /top-level domain/],
    ['com', /bare top-level/],
    ['localhost', /single-label/],
    ['*.co.uk', /public suffix "co.uk"/],
    ['*.com.au', /public suffix/],
    ['*.github.io', /public suffix/],
    ['*.s3.amazonaws.com', /public suffix/],
    ['foo.*.example.com', /single leading/],
    ['*.*.example.com', /single leading/],
    ['-bad.example.com', /not a valid host name/],
    ['under_score.example.com', /not a valid host name/],
    [`${'a'.repeat(64)}.example.com`, /not a valid host name/],
    [`${'abcdefghi.'.repeat(26)}com`, /longer than 253/],
  ];
  for (const [host, issue] of cases)
    refuses(out({ action: 'allow', protocol: 'tcp', destination: host }), 'outbound[0].destination', issue);
  for (const ok of ['*.pythonhosted.org', '*.example.co.uk', 'github.io', 'user.github.io', 'h1.bench.test']) {
    validateNetworkPolicy(out({ action: 'allow', protocol: 'tcp', destination: ok }));
  }
});

test('refuses a rule an earlier rule entirely covers, naming both: it could never match', () => {
  const err = refusal(
    out(
      { action: 'allow', protocol: 'tcp', destination: '10.0.0.0/8', port: 443 },
      { action: 'allow', protocol: 'udp', destination: '10.0.0.0/8', port: 443 },
      { action: 'deny', protocol: 'tcp', destination: '10.0.0.0/8', port: { from: 443, to: 443 } },
    ),
  );
  assert.is(err.field, 'outbound[2]');
  assert.is(err.code, 'VALIDATION_ERROR');
  assert.match(err.message, /^outbound\[2\] is shadowed by outbound\[0\]/);
  assert.is(err.details?.shadowedBy, 'outbound[0]');
  // Narrower addresses, ports and protocols after a wider rule; the same rule twice.
  for (const [earlier, later] of [
    [
      { action: 'allow', protocol: 'all' },
      { action: 'deny', protocol: 'tcp', destination: '203.0.113.10/32', port: 22 },
    ],
    [
      { action: 'deny', protocol: 'all', destination: '203.0.113.0/24' },
      { action: 'allow', protocol: 'icmp', destination: '203.0.113.128/25' },
    ],
    [
      { action: 'allow', protocol: 'tcp', port: { from: 8000, to: 9000 } },
      { action: 'deny', protocol: 'tcp', destination: '::/0', port: 8443 },
    ],
    [
      { action: 'allow', protocol: 'udp', destination: 'api.example.test' },
      { action: 'allow', protocol: 'udp', destination: 'api.example.test' },
    ],
    [
      { action: 'deny', protocol: 'all', destination: '0.0.0.0/0' },
      { action: 'allow', protocol: 'tcp', source: '10.1.0.0/16' },
    ],
  ]) {
    refuses(out(earlier, later), 'outbound[1]', /is shadowed by outbound\[0\]/);
  }
  refuses(inb({ action: 'deny', protocol: 'all' }, { action: 'allow', protocol: 'all' }), 'inbound[1]', /shadowed by inbound\[0\]/);
  // Overlapping but not covered (some traffic reaches the later rule), other directions, other families: fine.
  validateNetworkPolicy({ name: 'p', inbound: [{ action: 'allow', protocol: 'all' }], outbound: [{ action: 'deny', protocol: 'all' }] });
  for (const [earlier, later] of [
    [
      { action: 'deny', protocol: 'all', destination: '10.1.0.0/16' },
      { action: 'allow', protocol: 'tcp', destination: '10.0.0.0/8' },
    ],
    [
      { action: 'allow', protocol: 'tcp', destination: '203.0.113.10/32', port: 8443 },
      { action: 'deny', protocol: 'all' },
    ],
    [
      { action: 'allow', protocol: 'tcp', port: 443 },
      { action: 'deny', protocol: 'tcp', port: { from: 400, to: 500 } },
    ],
    [
      { action: 'allow', protocol: 'tcp', destination: '0.0.0.0/0' },
      { action: 'deny', protocol: 'tcp', destination: '2001:db8::/32' },
    ],
    [
      { action: 'allow', protocol: 'tcp', destination: '0.0.0.0/0' },
      { action: 'deny', protocol: 'tcp', destination: 'api.example.test' },
    ],
    [
      { action: 'allow', protocol: 'tcp', destination: 'api.example.test' },
      { action: 'deny', protocol: 'tcp', destination: '203.0.113.10/32' },
    ],
  ]) {
    validateNetworkPolicy(out(earlier, later));
  }
});

test('a name rule shadowed by an earlier name or wildcard rule is refused too', () => {
  refuses(
    out(
      { action: 'deny', protocol: 'all', destination: '*.example.test' },
      { action: 'allow', protocol: 'tcp', destination: 'api.example.test', port: 443 },
    ),
    'outbound[1]',
    /shadowed by outbound\[0\]/,
  );
  refuses(
    out(
      { action: 'allow', protocol: 'tcp', destination: '*.example.test' },
      { action: 'deny', protocol: 'tcp', destination: '*.cdn.example.test' },
    ),
    'outbound[1]',
  );
  refuses(out({ action: 'deny', protocol: 'all' }, { action: 'allow', protocol: 'tcp', destination: 'api.example.test' }), 'outbound[1]');
  // A wildcard covers names strictly below it, not the bare domain; an exact name covers no wildcard.
  validateNetworkPolicy(
    out(
      { action: 'deny', protocol: 'all', destination: '*.example.test' },
      { action: 'allow', protocol: 'tcp', destination: 'example.test' },
    ),
  );
  validateNetworkPolicy(
    out(
      { action: 'deny', protocol: 'all', destination: 'api.example.test' },
      { action: 'allow', protocol: 'tcp', destination: '*.example.test' },
    ),
  );
});

test('finds the name rules a resolver answer feeds', () => {
  const p = validateNetworkPolicy({
    name: 'p',
    outbound: [
      { action: 'allow', protocol: 'tcp', destination: 'pypi.org', port: 443 },
      { action: 'allow', protocol: 'tcp', destination: '*.pythonhosted.org', port: 443 },
      { action: 'allow', protocol: 'tcp', destination: '10.0.0.0/8' },
    ],
    inbound: [{ action: 'allow', protocol: 'tcp', source: 'ci.example.com' }],
  });
  assert.equal(
    nameRules(p).map((r) => `${r.direction}[${r.index}]`),
    ['outbound[0]', 'outbound[1]', 'inbound[0]'],
  );
  assert.equal(
    nameRulesMatching(p, 'files.pythonhosted.org.').map((r) => r.index),
    [1],
  );
  assert.equal(
    nameRulesMatching(p, 'PyPI.org').map((r) => r.host),
    ['pypi.org'],
  );
  assert.equal(nameRulesMatching(p, 'pythonhosted.org'), []);
  assert.equal(nameRulesMatching(p, 'evilpypi.org'), []);
});

test.run();
