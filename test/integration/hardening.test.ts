/**
 * The hardening floor, proved against the real engine: each test fails if the protection it
 * names is missing.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { BASE, caller, eventually, testRuntime, type TestRuntime } from '../helpers/runtime.ts';

const test = suite('hardening');
let rt: TestRuntime;

test.before(async () => {
  rt = testRuntime({ maxPids: 4096 });
  await rt.start();
});
test.after(async () => {
  await rt.cleanup();
});

const sh = (id: string, script: string, timeout = 10_000) => rt.executor.run(caller, id, { command: ['sh', '-c', script], timeout });

test('writing to the read-only root fails while /tmp and allowed paths are writable', async () => {
  const sb = await rt.sandboxes.create({ securityPolicy: { readOnlyRoot: true, allowedPaths: ['/workspace', '/app'] } }, caller);
  const root = await sh(sb.id, 'echo x > /etc/owned && echo WROTE');
  assert.is.not(root.exitCode, 0);
  assert.not.match(root.stdout, 'WROTE');
  assert.match(root.stderr, /Read-only file system/i);
  const bin = await sh(sb.id, 'touch /bin/evil');
  assert.is.not(bin.exitCode, 0);
  const ok = await sh(sb.id, 'echo a > /tmp/a && echo b > /workspace/b && echo c > /app/c && cat /tmp/a /workspace/b /app/c');
  assert.is(ok.exitCode, 0, ok.stderr);
  assert.is(ok.stdout, 'a\nb\nc\n');
});

test('the disk limit caps the writable mounts', async () => {
  const sb = await rt.sandboxes.create({ resourceLimits: { disk: 8 }, securityPolicy: { allowedPaths: ['/workspace'] } }, caller);
  const r = await sh(sb.id, 'dd if=/dev/zero of=/tmp/big bs=1M count=16 2>&1; ls -l /tmp/big');
  assert.match(r.stdout, /No space left on device/);
  const size = Number(/\s(\d+)\s+\w{3}\s+\d/.exec(r.stdout)?.[1] ?? 'NaN');
  assert.ok(size <= 4 * 1024 * 1024, `file grew to ${size} bytes past its 4 MiB share`);
});

test('allowFilesystem=false leaves nothing writable', async () => {
  const sb = await rt.sandboxes.create({ securityPolicy: { allowFilesystem: false } }, caller);
  const r = await sh(sb.id, 'for d in /tmp /workspace / /home/sandbox; do touch $d/x 2>/dev/null && echo "wrote $d"; done; true');
  assert.is(r.stdout, '');
});

test('a blocked path cannot be read', async () => {
  const sb = await rt.sandboxes.create({ securityPolicy: { blockedPaths: ['/etc', '/root'] } }, caller);
  const r = await sh(sb.id, 'cat /etc/passwd; ls /etc');
  assert.not.match(r.stdout, 'sandbox:x:1000');
  assert.not.match(r.stdout, 'passwd');
  // Docker's own masked paths stay masked next to the blocked ones (each is a mount over it).
  const mounts = (await sh(sb.id, 'cut -d" " -f5 /proc/self/mountinfo')).stdout.split('\n');
  for (const p of ['/proc/keys', '/proc/timer_list', '/sys/firmware', '/etc', '/root']) assert.ok(mounts.includes(p), `${p} is not masked`);
});

test('the process runs as the unprivileged sandbox user with no capabilities and no-new-privileges', async () => {
  const sb = await rt.sandboxes.create({}, caller);
  const r = await sh(
    sb.id,
    'id -u; id -g; grep -E "^(CapEff|CapPrm|CapBnd|NoNewPrivs|Seccomp):" /proc/self/status; cat /proc/1/cmdline | tr "\\0" " "',
  );
  const lines = r.stdout.split('\n');
  assert.is(lines[0], '1000');
  assert.is(lines[1], '1000');
  assert.match(r.stdout, /CapEff:\s+0000000000000000/);
  assert.match(r.stdout, /CapBnd:\s+0000000000000000/);
  assert.match(r.stdout, /NoNewPrivs:\s+1/);
  assert.match(r.stdout, /Seccomp:\s+2/);
  assert.match(r.stdout, /docker-init|tini/, 'an init process runs as PID 1');
});

test('mount, unshare, mknod and raw sockets fail', async () => {
  const sb = await rt.sandboxes.create({ image: BASE }, caller);
  const r = await sh(
    sb.id,
    [
      'mount -t tmpfs none /tmp 2>/dev/null && echo MOUNTED',
      'unshare -r true 2>/dev/null && echo UNSHARED_USER',
      'unshare -n true 2>/dev/null && echo UNSHARED_NET',
      'mknod /tmp/dev c 1 3 2>/dev/null && echo MKNOD',
      `python3 -c 'import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)' 2>/dev/null && echo RAW`,
      `python3 -c 'import socket; socket.socket(socket.AF_PACKET, socket.SOCK_RAW)' 2>/dev/null && echo PACKET`,
      'echo done',
    ].join('; '),
  );
  assert.is(r.stdout, 'done\n', `something privileged succeeded: ${r.stdout}`);
});

test("refused forks are read from the container's own pids cgroup, reported once per execute, and not read once it stopped", async () => {
  const sb = await rt.sandboxes.create({ resourceLimits: { pids: 16 } }, caller);
  const id = sb.containerId!;
  assert.is(await rt.engine.pidsLimitHits!(id), 0);
  await sh(sb.id, 'for i in $(seq 30); do sleep 1 & done; wait');
  const hits = await rt.engine.pidsLimitHits!(id);
  assert.ok(hits !== null && hits > 0, `no refused fork counted (${hits})`);
  await eventually(() => rt.events.list({ sandboxId: sb.id, type: 'pids_limit_reached', limit: 5 }).length > 0);
  const reached = rt.events.list({ sandboxId: sb.id, type: 'pids_limit_reached', limit: 5 });
  assert.is(reached.length, 1);
  assert.is(reached[0]!.details.refusedForks, hits);
  // A quiet execute adds no event.
  await sh(sb.id, 'true');
  assert.is(rt.events.list({ sandboxId: sb.id, type: 'pids_limit_reached', limit: 5 }).length, 1);
  // A stopped container has no cgroup: nothing is read, rather than a count that no longer exists.
  const tracked = rt.executor.tracked;
  await rt.sandboxes.stop(caller, sb.id);
  assert.is(await rt.engine.pidsLimitHits!(id), null);
  // Nor is anything kept for it, or for one that is deleted: a long-lived server does not grow.
  assert.is(rt.executor.tracked, tracked - 1);
  const other = await rt.sandboxes.create({}, caller);
  await sh(other.id, 'true');
  assert.is(rt.executor.tracked, tracked);
  await rt.sandboxes.delete(caller, other.id);
  assert.is(rt.executor.tracked, tracked - 1);
  // Nor for one whose main process ended on its own (seen by the supervisor, not the manager).
  const brief = await rt.sandboxes.create({ command: ['sleep', '2'] }, caller);
  await sh(brief.id, 'true');
  assert.is(rt.executor.tracked, tracked);
  await eventually(() => rt.sandboxes.get(caller, brief.id).status === 'stopped', 15_000);
  assert.is(rt.executor.tracked, tracked - 1);
});

test('allowNetwork=false leaves no interface but loopback', async () => {
  const sb = await rt.sandboxes.create({ image: BASE, securityPolicy: { allowNetwork: false } }, caller);
  const r = await sh(sb.id, 'ls /sys/class/net');
  assert.is(r.stdout.trim(), 'lo');
  const c = await sh(
    sb.id,
    `python3 -c 'import socket; s=socket.socket(); s.settimeout(2); s.connect(("203.0.113.10", 80))' 2>&1 | tail -1`,
  );
  assert.match(c.stdout, /unreachable/i);
});

test('a fork bomb stops at the pids limit, is reported, and the host stays responsive', async () => {
  const sb = await rt.sandboxes.create({ resourceLimits: { pids: 64 } }, caller);
  const bomb = await sh(sb.id, 'b() { b | b & }; b; sleep 2; ps | wc -l', 15_000);
  const procs = Number(bomb.stdout.trim());
  assert.ok(Number.isNaN(procs) || procs <= 70, `process count ${procs} went past the limit`);
  const stats = await rt.sandboxes.metrics(caller, sb.id);
  assert.ok(stats.pids.current <= 64, `pids.current ${stats.pids.current}`);
  await eventually(() => rt.events.list({ sandboxId: sb.id, type: 'pids_limit_reached', limit: 5 }).length > 0);
  // The host and the engine still answer promptly while the bomb is in place.
  const t0 = performance.now();
  await rt.engine.ping();
  const other = await rt.sandboxes.create({}, caller);
  const echo = await sh(other.id, 'echo alive');
  assert.is(echo.stdout, 'alive\n');
  assert.ok(performance.now() - t0 < 15_000, 'host unresponsive under a fork bomb');
});

test('a memory bomb is OOM-killed and reported as an event', async () => {
  const sb = await rt.sandboxes.create({ resourceLimits: { memory: 32 } }, caller);
  const r = await sh(sb.id, 'x=aaaaaaaaaaaaaaaa; while true; do x="$x$x"; done', 30_000);
  assert.is(r.timedOut, false);
  assert.is(r.exitCode, 137, `expected SIGKILL by the OOM killer, got ${r.exitCode}`);
  const ev = await eventually(() => rt.events.list({ sandboxId: sb.id, type: 'oom_killed', limit: 5 })[0]);
  assert.is(ev.severity, 'high');
  const stats = await rt.sandboxes.metrics(caller, sb.id);
  assert.is(stats.memory.limitBytes, 32 * 1024 * 1024);
});

test('an exec past its timeout is killed with its whole process group', async () => {
  const sb = await rt.sandboxes.create({}, caller);
  const r = await sh(sb.id, 'sleep 300 & sleep 301 & setsid sleep 302 & sleep 303', 800);
  assert.is(r.timedOut, true);
  assert.ok(r.durationMs < 5000, `kill took ${r.durationMs} ms`);
  const ps = await eventually(async () => {
    const out = (await sh(sb.id, 'ps -o args')).stdout;
    return /sleep 30\d/.test(out) ? null : out;
  }, 5000);
  assert.not.match(ps, /sleep 30\d/);
  assert.ok(rt.events.list({ sandboxId: sb.id, type: 'timeout_killed', limit: 5 }).length >= 1);
});

test('a flood of output is cut at the cap and flagged', async () => {
  const limited = testRuntime({ execOutputLimitBytes: 65_536 });
  await limited.start();
  try {
    const sb = await limited.sandboxes.create({}, caller);
    const r = await limited.executor.run(caller, sb.id, {
      command: ['sh', '-c', 'yes flood | head -c 5000000; echo tail >&2'],
      timeout: 20_000,
    });
    assert.is(r.truncated, true);
    assert.is(r.stdout.length, 65_536);
    assert.is(r.stderr, 'tail\n');
    assert.is(r.exitCode, 0);
  } finally {
    await limited.cleanup();
  }
});

test('a busy loop past maxDuration is killed with an event', async () => {
  const sb = await rt.sandboxes.create({ command: ['sh', '-c', 'while :; do :; done'], resourceLimits: { maxDuration: 2000 } }, caller);
  assert.is(sb.status, 'running');
  const done = await eventually(() => {
    const r = rt.sandboxes.get(caller, sb.id);
    return r.status === 'stopped' ? r : null;
  }, 10_000);
  assert.is(done.reason, 'max_duration');
  const ev = rt.events.list({ sandboxId: sb.id, type: 'timeout_killed', limit: 5 });
  assert.is(ev[0]?.details.scope, 'sandbox');
  const state = await rt.engine.inspectContainer(done.containerId!);
  assert.is(state?.running, false);
});

test('allowExec=false refuses execute and records exec_denied', async () => {
  const sb = await rt.sandboxes.create({ securityPolicy: { allowExec: false } }, caller);
  try {
    await rt.executor.run(caller, sb.id, { command: ['true'] });
    assert.unreachable('execute should be refused');
  } catch (err) {
    assert.is((err as { code: string }).code, 'AUTHORIZATION_ERROR');
  }
  assert.is(rt.events.list({ sandboxId: sb.id, type: 'exec_denied', limit: 5 }).length, 1);
});

test.run();
