import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { entropyBitsPerChar, looksLikeTunnel } from '../../../runtime/network/dns/tunnel.ts';

test('entropy is 0 for one repeated character and log2(n) for n distinct ones', () => {
  assert.is(entropyBitsPerChar(''), 0);
  assert.is(entropyBitsPerChar('aaaa'), 0);
  assert.is(entropyBitsPerChar('abcd'), 2);
  assert.ok(Math.abs(entropyBitsPerChar('0123456789abcdef') - 4) < 1e-9);
});

test('ordinary host names are not flagged', () => {
  for (const name of [
    'files.pythonhosted.org',
    'pypi.org.',
    'registry.npmjs.org',
    'api.example.test',
    'objects.githubusercontent.com',
    'kubernetes-dashboard-svc.default.svc.cluster.local',
    'login-microsoftonline.example.test',
    'production-us-east-1-bucket.s3.example.test',
    'autodiscover-outlook-office365.example.test',
    'ec2-203-0-113-25-compute.example.test',
    'dl-cdn-alpinelinux-org.mirror.test',
    'd2ba0hmdl5vdbj.cloudfront.test',
  ]) {
    assert.is(looksLikeTunnel(name), false, name);
  }
});

test('a long hex label is flagged', () => {
  const hex60 = '4a6f686e446f65'.repeat(5).slice(0, 60);
  assert.is(looksLikeTunnel(`${hex60}.attacker.test`), true);
  assert.is(looksLikeTunnel('4a6f686e446f65.attacker.test'), false, 'a 14-char label is too short to judge');
  assert.is(looksLikeTunnel('4a6f686e446f6520536d697468.attacker.test'), true, '26 hex chars');
});

test('labels over 40 characters and names over 120 characters are flagged whatever they contain', () => {
  assert.is(looksLikeTunnel(`${'a'.repeat(41)}.attacker.test`), true);
  assert.is(looksLikeTunnel(`${'a'.repeat(40)}.attacker.test`), false);
  const longName = Array.from({ length: 12 }, () => 'abcdefghi').join('.') + '.attacker.test';
  assert.ok(longName.length > 120);
  assert.is(looksLikeTunnel(longName), true);
});

test('base32 and base36 encoded labels of 20+ characters are flagged, in any case', () => {
  assert.is(looksLikeTunnel('mfrggzdfmztwq2lknnwg23tp.t.attacker.test'), true, 'base32');
  assert.is(looksLikeTunnel('NBSWY3DPEB3W64TMMQQQ2ZLA.attacker.test'), true, 'upper-case base32');
  assert.is(looksLikeTunnel('v2mj6349jso5iiwhqwp2.attacker.test'), true, 'base36');
  assert.is(looksLikeTunnel('xk9q2z7w4m8p3r6t5v1y.attacker.test'), true);
});

test('high entropy alone does not flag a label made of words', () => {
  assert.ok(entropyBitsPerChar('kubernetes-dashboard-svc') >= 3.5);
  assert.is(looksLikeTunnel('kubernetes-dashboard-svc.example.test'), false);
});

test.run();
