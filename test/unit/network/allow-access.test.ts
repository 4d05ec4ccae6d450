import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { isDirectorError } from '../../../core/errors.ts';
import { validateNetworkPolicy } from '../../../policies/network-policy.ts';
import { accessPolicy } from '../../../runtime/network/allow-access.ts';

const test = suite('allow-access');
const policy = (outbound: unknown[]) => validateNetworkPolicy({ name: 'p', outbound });

function refusal(fn: () => unknown): { field: unknown; shadowedBy: unknown; issue: unknown } {
  try {
    fn();
  } catch (err) {
    assert.ok(isDirectorError(err));
    return { field: err.details?.field, shadowedBy: err.details?.shadowedBy, issue: err.details?.issue };
  }
  assert.unreachable('accepted');
  throw new Error('unreachable');
}

test('the seed flow: on a deny-all policy the allow goes ahead of the deny-all, where the first match lets it through', () => {
  const p = accessPolicy(policy([{ action: 'deny', protocol: 'all' }]), {
    destinations: [{ host: 'api.example.com', port: 443, protocol: 'tcp', description: 'Allow API access' }],
  });
  assert.equal(p?.outbound, [
    { action: 'allow', protocol: 'tcp', destination: 'api.example.com', port: 443, description: 'Allow API access' },
    { action: 'deny', protocol: 'all' },
  ]);
});

test('without a trailing catch-all deny the allows are appended; without a policy one is made', () => {
  const p = accessPolicy(policy([{ action: 'deny', protocol: 'udp' }]), {
    destinations: [{ host: '203.0.113.10' }, { host: '2001:db8::1', port: 22 }],
  });
  assert.equal(p?.outbound, [
    { action: 'deny', protocol: 'udp' },
    { action: 'allow', protocol: 'tcp', destination: '203.0.113.10/32' },
    { action: 'allow', protocol: 'tcp', destination: '2001:db8::1/128', port: 22 },
  ]);
  const made = accessPolicy(null, { destinations: [{ host: '198.51.100.0/24', protocol: 'udp', port: 53 }] });
  assert.equal(
    [made?.name, made?.order, made?.outbound],
    ['allow-access', 'first-match', [{ action: 'allow', protocol: 'udp', destination: '198.51.100.0/24', port: 53 }]],
  );
});

test('a destination an earlier allow covers adds nothing; one an earlier deny covers is refused naming both', () => {
  const p = policy([
    { action: 'deny', protocol: 'all', destination: '203.0.113.20/32' },
    { action: 'allow', protocol: 'tcp', destination: '*.example.test', port: 443 },
    { action: 'deny', protocol: 'all' },
  ]);
  assert.is(accessPolicy(p, { destinations: [{ host: 'api.example.test', port: 443 }] }), null);
  assert.equal(
    refusal(() => accessPolicy(p, { destinations: [{ host: '203.0.113.9' }, { host: '203.0.113.20', port: 80 }] })),
    {
      field: 'destinations[1]',
      shadowedBy: 'outbound[0]',
      issue: 'is denied by outbound[0], which comes first (first match wins)',
    },
  );
});

test('destinations are checked as rules, named as the caller sent them', () => {
  assert.equal(refusal(() => accessPolicy(null, { destinations: [{ host: '*' }] })).field, 'destinations[0].host');
  assert.equal(
    refusal(() => accessPolicy(null, { destinations: [{ host: 'a.example.test' }, { host: 'a.example.test', port: 80 }] })),
    {
      field: 'destinations[1]',
      shadowedBy: 'destinations[0]',
      issue: 'is shadowed by destinations[0]: every packet it matches, destinations[0] matches first, so it can never match',
    },
  );
});

test.run();
