/** Requests for more than a sandbox may have are refused, recorded, and create nothing. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { LABEL } from '../../runtime/sandbox/hardening.ts';
import { caller, testRuntime, type TestRuntime } from '../helpers/runtime.ts';

const test = suite('refusals');
let rt: TestRuntime;

test.before(async () => {
  rt = testRuntime();
  await rt.start();
});
test.after(async () => {
  await rt.cleanup();
});

const cases: Array<[string, unknown, string]> = [
  ['privileged mode', { Privileged: true }, 'Privileged'],
  ['host binds', { Binds: ['/:/host'] }, 'Binds'],
  ['capabilities', { CapAdd: ['SYS_ADMIN'] }, 'CapAdd'],
  ['host network namespace', { NetworkMode: 'host' }, 'NetworkMode'],
  ['networkMode host', { networkMode: 'host' }, 'networkMode'],
  ['another runtime', { Runtime: 'runc-unconfined' }, 'Runtime'],
  ['devices', { Devices: [{ PathOnHost: '/dev/kmsg' }] }, 'Devices'],
  ['nested HostConfig', { securityPolicy: { HostConfig: { Privileged: true } } }, 'securityPolicy.HostConfig'],
  ['a working dir under /proc', { workdir: '/proc/self/fd' }, 'workdir'],
  [
    'the Docker socket as a writable path',
    { securityPolicy: { allowedPaths: ['/var/run/docker.sock'] } },
    'securityPolicy.allowedPaths[0]',
  ],
  ['noPrivileges=false', { securityPolicy: { noPrivileges: false } }, 'securityPolicy.noPrivileges'],
  ['memory over the operator ceiling', { resourceLimits: { memory: 10_000_000 } }, 'resourceLimits.memory'],
  ['an unknown field', { colour: 'blue' }, 'colour'],
  ['pid namespace of the host', { PidMode: 'host' }, 'PidMode'],
  ['user root', { User: 'root' }, 'User'],
];

for (const [what, body, field] of cases) {
  test(`refuses ${what}, names ${field}, and creates nothing`, async () => {
    const before = (await rt.engine.listContainers({ [LABEL.runtime]: rt.config.runtimeName })).length;
    const listed = rt.sandboxes.list(caller, { limit: 1000, offset: 0 }).total;
    try {
      await rt.sandboxes.create(body, caller);
      assert.unreachable('create should have been refused');
    } catch (err) {
      const e = err as { code?: string; details?: { field?: string } };
      assert.is(e.code, 'VALIDATION_ERROR');
      assert.is(e.details?.field, field);
    }
    assert.is((await rt.engine.listContainers({ [LABEL.runtime]: rt.config.runtimeName })).length, before);
    assert.is(rt.sandboxes.list(caller, { limit: 1000, offset: 0 }).total, listed);
  });
}

test('refusals of forbidden powers are recorded as policy_violation events', () => {
  const events = rt.events.list({ type: 'policy_violation', limit: 100 });
  const fields = events.map((e) => e.details.field);
  for (const f of ['Privileged', 'Binds', 'CapAdd', 'NetworkMode', 'Runtime', 'workdir'])
    assert.ok(fields.includes(f), `no policy_violation for ${f}`);
});

test('an image the engine does not have is refused without a container', async () => {
  try {
    await rt.sandboxes.create({ image: 'no-such/image:1' }, caller);
    assert.unreachable();
  } catch (err) {
    assert.is((err as { details?: { field?: string } }).details?.field, 'image');
  }
  assert.is((await rt.engine.listContainers({ [LABEL.runtime]: rt.config.runtimeName })).length, 0);
});

test('another workspace cannot see, execute in, stop or delete a sandbox', async () => {
  const sb = await rt.sandboxes.create({}, caller);
  const other = { workspace: 'wsp_other' };
  for (const op of [
    () => Promise.resolve(rt.sandboxes.get(other, sb.id)),
    () => rt.executor.run(other, sb.id, { command: ['true'] }),
    () => rt.sandboxes.stop(other, sb.id),
    () => rt.sandboxes.delete(other, sb.id),
  ]) {
    try {
      await op();
      assert.unreachable();
    } catch (err) {
      assert.is((err as { code?: string }).code, 'NOT_FOUND');
    }
  }
  assert.is(rt.sandboxes.get(caller, sb.id).status, 'running');
  const attempts = rt.events.list({ type: 'cross_workspace_attempt', limit: 10 });
  assert.ok(attempts.length >= 4 && attempts.every((e) => e.workspace === 'wsp_other' && e.details.id === sb.id));
});

test.run();
