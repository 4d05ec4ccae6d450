import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { ProfileConstraints } from '../../../policies/profiles.ts';
import { resolveSpec } from '../../../runtime/sandbox/spec.ts';
import { planEnforcement } from '../../../runtime/security/enforce.ts';
import { toStoredSpec } from '../../../runtime/store/sandboxes.ts';
import { defaultConfig } from '../runtime/support.ts';

const test = suite('profile enforcement plan');
const cfg = defaultConfig();
const OPEN: ProfileConstraints = {
  allowFilesystem: true,
  allowNetwork: true,
  allowExec: true,
  maxProcesses: 4096,
  maxOpenFiles: 1024,
  readOnlyRoot: false,
  noPrivileges: true,
};
const rec = (raw: Record<string, unknown> = {}) => ({ spec: toStoredSpec(resolveSpec(raw, cfg)) });
const plan = (raw: Record<string, unknown>, over: Partial<ProfileConstraints>, live = true) =>
  planEnforcement(rec(raw), { ...OPEN, ...over }, cfg.nofile, live);

test('a compliant sandbox needs no change', () => {
  assert.equal(plan({}, {}), []);
});

test('a lower maxProcesses is applied live when the engine can, else it needs a stop', () => {
  assert.equal(plan({}, { maxProcesses: 32 }), [{ field: 'resourceLimits.pids', from: cfg.defaultPids, to: 32, action: 'updated_live' }]);
  assert.is(plan({}, { maxProcesses: 32 }, false)[0]?.action, 'requires_stop');
  assert.equal(plan({ resourceLimits: { pids: 16 } }, { maxProcesses: 32 }), []);
});

test('allowExec=false is recorded; taking away network, filesystem, a writable root or open files needs a stop', () => {
  assert.equal(plan({}, { allowExec: false }), [{ field: 'securityPolicy.allowExec', from: true, to: false, action: 'recorded' }]);
  assert.equal(
    plan({ securityPolicy: { allowNetwork: true } }, { allowNetwork: false }).map((c) => [c.field, c.action]),
    [['securityPolicy.allowNetwork', 'requires_stop']],
  );
  assert.equal(plan({}, { allowNetwork: false }), [], 'a sandbox without network already complies');
  assert.equal(
    plan({}, { allowFilesystem: false }).map((c) => c.field),
    ['securityPolicy.allowFilesystem'],
  );
  assert.equal(
    plan({ securityPolicy: { readOnlyRoot: false } }, { readOnlyRoot: true }).map((c) => c.field),
    ['securityPolicy.readOnlyRoot'],
  );
  assert.equal(plan({}, { maxOpenFiles: 64 }), [{ field: 'nofile', from: cfg.nofile, to: 64, action: 'requires_stop' }]);
});

test.run();
