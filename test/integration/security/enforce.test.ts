/**
 * Enforcement against the real engine, without HTTP: a profile enforced on a running sandbox
 * lowers its pids cgroup in place (forks beyond it fail), and a profile's ceiling at create
 * reaches the container (pids limit, RLIMIT_NOFILE).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Security } from '../../../runtime/security/service.ts';
import { BUSYBOX, caller, sleep, testRuntime, type TestRuntime } from '../../helpers/runtime.ts';

const test = suite('security-enforce');
let rt: TestRuntime;
let sec: Security;
const actor = { workspace: caller.workspace, actor: caller.actor };
const OPEN = {
  allowFilesystem: true,
  allowNetwork: true,
  allowExec: true,
  maxProcesses: 1024,
  maxOpenFiles: 1024,
  readOnlyRoot: false,
  noPrivileges: true as const,
};

test.before(async () => {
  rt = testRuntime();
  await rt.start();
  sec = rt.security;
});
test.after(async () => {
  await rt?.cleanup();
});

const sh = async (id: string, command: string) => rt.executor.run(caller, id, { command, timeout: 20_000 });

test('after enforcing maxProcesses 32, forks beyond 32 processes fail and are reported', async () => {
  const rec = await rt.sandboxes.create({ image: BUSYBOX }, caller);
  // Long enough that none has exited when ps counts them, and counted after a pause so the last
  // forked shells have exec'd their sleep.
  const before = await sh(rec.id, 'for i in $(seq 40); do sleep 5 & done; sleep 1; ps -o args | grep -c "^sleep 5$"');
  assert.is(before.stdout.trim(), '40', before.stderr);
  await sleep(6000);
  const p = sec.profiles.create(actor, { name: 'forks', level: 'custom', constraints: { ...OPEN, maxProcesses: 32 } });
  const res = await sec.enforcer.enforce(caller, p.id, { sandboxId: rec.id });
  assert.is(res.sandboxes[0]?.stopped, false);
  const after = await sh(rec.id, 'for i in $(seq 40); do sleep 5 & done');
  assert.match(after.stderr, /fork/i);
  const stats = await rt.engine.stats(rec.containerId!);
  assert.is(stats.pidsLimit, 32);
  assert.ok(stats.pids <= 32, `${stats.pids} processes under a limit of 32`);
  assert.is(rt.sandboxes.get(caller, rec.id).spec.resourceLimits.pids, 32);
  const reached = rt.events.list({ type: 'pids_limit_reached', sandboxId: rec.id, limit: 10 });
  assert.ok(reached.length >= 1, 'no pids_limit_reached event');
});

test('a profile at create reaches the container: pids cgroup and RLIMIT_NOFILE', async () => {
  const p = sec.profiles.create(actor, {
    name: 'small',
    level: 'custom',
    constraints: { ...OPEN, allowNetwork: false, maxProcesses: 24, maxOpenFiles: 128 },
  });
  const rec = await rt.sandboxes.create({ image: BUSYBOX, profileId: p.id }, caller);
  assert.is(rec.spec.profileId, p.id);
  assert.is((await rt.engine.stats(rec.containerId!)).pidsLimit, 24);
  assert.is((await sh(rec.id, 'ulimit -n')).stdout.trim(), '128');
});

test.run();
