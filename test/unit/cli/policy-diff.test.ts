import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { PolicyInForce } from '../../../sdk/index.ts';
import { NO_POLICY, canonicalEnd, diffPolicy, ruleLine, stateInForce, stateOfPolicy } from '../../../cli/policy-diff.ts';

test('addresses are compared in the canonical form the server stores', () => {
  assert.is(canonicalEnd('203.0.113.5'), '203.0.113.5/32');
  assert.is(canonicalEnd('10.1.2.3/8'), '10.0.0.0/8');
  assert.is(canonicalEnd('0.0.0.0/0'), '0.0.0.0/0');
  assert.is(canonicalEnd('2001:DB8:0:0::1'), '2001:db8::1/128');
  assert.is(canonicalEnd('2001:db8::/32'), '2001:db8::/32');
  assert.is(canonicalEnd('API.Example.COM'), 'api.example.com');
  assert.is(canonicalEnd('*.Example.com'), '*.example.com');
});

test('a rule reads as one line; equal port ranges collapse', () => {
  assert.is(
    ruleLine('outbound', { action: 'allow', protocol: 'tcp', destination: '203.0.113.5', port: 443 }),
    'outbound allow tcp to 203.0.113.5/32 port 443',
  );
  assert.is(ruleLine('inbound', { action: 'deny', protocol: 'all', source: '198.51.100.0/24' }), 'inbound deny all from 198.51.100.0/24');
  assert.is(ruleLine('outbound', { action: 'allow', protocol: 'udp', port: { from: 53, to: 53 } }), 'outbound allow udp port 53');
  assert.is(
    ruleLine('outbound', { action: 'allow', protocol: 'tcp', port: { from: 8000, to: 8100 } }),
    'outbound allow tcp port 8000-8100',
  );
});

const file = {
  name: 'web',
  outbound: [
    { action: 'allow' as const, protocol: 'tcp' as const, destination: '203.0.113.10', port: 443 },
    { action: 'deny' as const, protocol: 'all' as const, destination: '198.51.100.0/24' },
  ],
};

const view = (rules: PolicyInForce['outbound'], mode: PolicyInForce['mode'] = 'enforce'): PolicyInForce => ({
  isolated: false,
  mode,
  logging: true,
  outbound: rules,
  inbound: [],
  counters: { allowed: null, denied: null },
  generation: 1,
});
const inForce = (r: Partial<PolicyInForce['outbound'][number]>, index: number) => ({
  index,
  action: 'allow' as const,
  audit: false,
  protocol: 'tcp' as const,
  sets: [],
  logged: false,
  counter: { packets: 3, bytes: 180 },
  ...r,
});

test('the same policy read back from the kernel is no change, whatever the counters', () => {
  const kernel = view([
    inForce({ destination: '203.0.113.10/32', port: 443 }, 0),
    inForce({ action: 'deny', protocol: 'all', destination: '198.51.100.0/24', counter: { packets: 9, bytes: 540 } }, 1),
  ]);
  const d = diffPolicy(stateInForce(kernel, 'web'), stateOfPolicy(file));
  assert.equal(d, { changed: false, lines: [], unchanged: 2 });
});

test('the same rules in another order are a change (the first match decides): the moved rule is removed and added', () => {
  const kernel = view([
    inForce({ action: 'deny', protocol: 'all', destination: '198.51.100.0/24' }, 0),
    inForce({ destination: '203.0.113.10/32', port: 443 }, 1),
  ]);
  const d = diffPolicy(stateInForce(kernel, 'web'), stateOfPolicy(file));
  assert.equal(d, {
    changed: true,
    lines: ['- outbound deny all to 198.51.100.0/24', '+ outbound deny all to 198.51.100.0/24'],
    unchanged: 1,
  });
  const inbound = stateOfPolicy({ ...file, inbound: [{ action: 'deny', protocol: 'all', source: '198.51.100.0/24' }] });
  assert.is(diffPolicy(stateOfPolicy(file), inbound).unchanged, 2, 'a rule in the other direction moves nothing');
});

test('a first policy shows its settings and every rule as added', () => {
  const d = diffPolicy(stateInForce(null, null), stateOfPolicy(file));
  assert.equal(d.lines, [
    '~ policy: (none) -> web',
    '~ mode: (none) -> enforce',
    '~ logging: (none) -> true',
    '+ outbound allow tcp to 203.0.113.10/32 port 443',
    '+ outbound deny all to 198.51.100.0/24',
  ]);
  assert.equal(stateInForce(view([], null), 'x'), NO_POLICY);
});

test('a changed port is one rule removed and one added; a mode change is a setting line', () => {
  const before = stateOfPolicy(file);
  const after = stateOfPolicy({ ...file, mode: 'audit', outbound: [{ ...file.outbound[0]!, port: 8443 }, file.outbound[1]!] });
  assert.equal(diffPolicy(before, after), {
    changed: true,
    lines: [
      '~ mode: enforce -> audit',
      '- outbound allow tcp to 203.0.113.10/32 port 443',
      '+ outbound allow tcp to 203.0.113.10/32 port 8443',
    ],
    unchanged: 1,
  });
});

test('duplicate rules count: removing one of two identical rules shows once', () => {
  const twice = stateOfPolicy({ name: 'p', outbound: [file.outbound[1]!, file.outbound[1]!] });
  const once = stateOfPolicy({ name: 'p', outbound: [file.outbound[1]!] });
  assert.equal(diffPolicy(twice, once).lines, ['- outbound deny all to 198.51.100.0/24']);
});

test('audit mode always logs, so logging: false in a file is no difference from the kernel', () => {
  const s = stateOfPolicy({ name: 'a', mode: 'audit', logging: false });
  assert.is(s.logging, true);
});

test.run();
