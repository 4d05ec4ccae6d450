import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync } from 'node:fs';
import { DEFAULTS_DIR, loadDefaultPolicies } from '../../../policies/defaults.ts';
import { syntheticPolicy } from '../../../policies/synthetic.ts';

const test = suite('policy defaults');

test('every shipped policy validates and has a unique name', () => {
  const files = readdirSync(DEFAULTS_DIR).filter((f) => f.endsWith('.json'));
  const policies = loadDefaultPolicies();
  assert.ok(files.length >= 2);
  assert.is(policies.size, files.length);
  assert.equal(policies.get('deny-all')?.outbound, []);
  assert.is(policies.get('web-egress-audit')?.mode, 'audit');
  assert.ok(policies.get('allow-https-pypi')?.outbound.every((r) => r.port === 443 && r.protocol === 'tcp'));
});

test('synthetic policies of any size up to the limit validate', () => {
  for (const n of [0, 1, 10, 1000, 2000]) assert.is(syntheticPolicy(n).outbound.length, n);
});

test.run();
