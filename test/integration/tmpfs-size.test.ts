/**
 * The tmpfs resizer (images/tmpfs-size/main.c) against real containers: it resizes a sandbox's
 * tmpfs mounts, and it refuses what a hostile sandbox or a reused pid could make it do: a
 * symlink planted anywhere in a target path, a path that is not a tmpfs mount point, a pid in the
 * host's own mount namespace, a pid whose mount namespace is not the one the host read.
 */
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { HostTmpfsResizer, checkMountinfo } from '../../runtime/sandbox/tmpfs-size.ts';
import { agentLab, run, type AgentLab, type AgentSandbox } from '../helpers/agent.ts';

const test = suite('tmpfs-size');
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const MIB = 1024 * 1024;
let lab: AgentLab;
let binary: string;
let helper: ChildProcessWithoutNullStreams;
let out = '';
const waiting: Array<(line: string) => void> = [];

test.before(() => {
  lab = agentLab();
  binary = execFileSync(path.join(root, 'images/tmpfs-size/build.sh'), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
  helper = spawn(binary, ['--serve'], { stdio: ['pipe', 'pipe', 'pipe'] });
  helper.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
    for (let nl = out.indexOf('\n'); nl >= 0; nl = out.indexOf('\n')) {
      const line = out.slice(0, nl);
      out = out.slice(nl + 1);
      waiting.shift()?.(line);
    }
  });
});
test.after(async () => {
  helper?.stdin.end();
  await lab.cleanup();
});

/** One request line to the serving helper, its answer line. */
const ask = (line: string): Promise<string> =>
  new Promise((resolve) => {
    waiting.push(resolve);
    helper.stdin.write(`${line}\n`);
  });

const pidOf = async (sb: AgentSandbox) => (await lab.engine.inspectContainer(sb.containerId))!.pid;
const nsOf = (pid: number) => statSync(`/proc/${pid}/ns/mnt`).ino;
/** The `size=` of the tmpfs at `mount` in the container of `pid`, in KiB. */
const sizeKib = (pid: number, mount: string) => {
  for (const line of readFileSync(`/proc/${pid}/mountinfo`, 'utf8').split('\n')) {
    const [pre, post] = line.split(' - ');
    if (pre?.split(' ')[4] === mount) return Number(/size=(\d+)k/.exec(post ?? '')?.[1]);
  }
  return null;
};
const sh = async (sb: AgentSandbox, script: string) => {
  const r = await run(sb.agent!, { argv: ['sh', '-c', script] });
  assert.is(r.exit.exitCode, 0, r.stderr);
  return r.stdout;
};

test('resizes the tmpfs mounts of a running sandbox, through the resizer the pool uses', async () => {
  const sb = await lab.sandbox();
  const pid = await pidOf(sb);
  const before = sizeKib(pid, '/workspace');
  assert.ok(before, 'the sandbox has a /workspace tmpfs');
  const resizer = new HostTmpfsResizer(lab.engine, binary);
  const mounts = [
    { path: '/tmp', sizeBytes: 3 * MIB, noexec: false, uid: 1000, gid: 1000, mode: 0o1777 },
    { path: '/workspace', sizeBytes: 5 * MIB, noexec: false, uid: 1000, gid: 1000, mode: 0o755 },
  ];
  await resizer.resize(sb.containerId, mounts);
  assert.equal(checkMountinfo(readFileSync(`/proc/${pid}/mountinfo`, 'utf8'), mounts), []);
  assert.is(sizeKib(pid, '/workspace'), 5 * 1024);
  assert.is(sizeKib(pid, '/tmp'), 3 * 1024);
});

test('a symlink planted anywhere in a target path is refused, never followed', async () => {
  const sb = await lab.sandbox();
  const pid = await pidOf(sb);
  const ns = nsOf(pid);
  const before = sizeKib(pid, '/workspace');
  await sh(sb, 'ln -s /workspace /tmp/ws && ln -s / /tmp/root && ln -s /workspace /workspace/self');
  for (const target of ['/tmp/ws', '/tmp/root/workspace', '/workspace/self']) {
    const answer = await ask(`${pid} ${ns} ${target} ${7 * MIB} 0`);
    assert.match(answer, /^err .*symlink.*refused/, `${target}: ${answer}`);
  }
  assert.is(sizeKib(pid, '/workspace'), before, 'the mount behind the links was not touched');
  // The same helper still serves a proper request.
  assert.is(await ask(`${pid} ${ns} /workspace ${7 * MIB} 0`), 'ok');
  assert.is(sizeKib(pid, '/workspace'), 7 * 1024);
});

test('a size written with leading zeros is taken by its value, never cut to an unlimited size=0', async () => {
  const sb = await lab.sandbox();
  const pid = await pidOf(sb);
  const padded = `${'0'.repeat(80)}${6 * MIB}`;
  assert.is(await ask(`${pid} ${nsOf(pid)} /workspace ${padded} 0`), 'ok');
  assert.is(sizeKib(pid, '/workspace'), 6 * 1024);
});

test('a path that is not a tmpfs mount point is refused', async () => {
  const sb = await lab.sandbox();
  const pid = await pidOf(sb);
  const ns = nsOf(pid);
  await sh(sb, 'mkdir /workspace/sub');
  for (const target of ['/workspace/sub', '/etc', '/proc', '/no-such-dir']) {
    const answer = await ask(`${pid} ${ns} ${target} ${7 * MIB} 0`);
    assert.match(answer, /^err /, `${target}: ${answer}`);
    if (target !== '/no-such-dir') assert.match(answer, /not a tmpfs mount point/, `${target}: ${answer}`);
  }
});

test("a pid in the host's own mount namespace is refused", async () => {
  for (const pid of [process.pid, helper.pid!]) {
    const answer = await ask(`${pid} ${nsOf(pid)} /director-tmpfs-size-test ${MIB} 0`);
    assert.match(answer, /^err pid \d+ is in the host's mount namespace: refused$/, answer);
  }
});

test('a pid whose mount namespace is not the one the host read (a reused pid) is refused', async () => {
  const [a, b] = await Promise.all([lab.sandbox(), lab.sandbox()]);
  const pa = await pidOf(a);
  const pb = await pidOf(b);
  const before = sizeKib(pa, '/workspace');
  for (const ns of [nsOf(pb), nsOf(process.pid), nsOf(pa) + 1]) {
    const answer = await ask(`${pa} ${ns} /workspace ${9 * MIB} 0`);
    assert.match(answer, /^err pid \d+ is not in mount namespace \d+ .*refused$/, answer);
  }
  assert.is(sizeKib(pa, '/workspace'), before);
  // The request without the namespace (the old line) is a usage error, not a resize.
  assert.match(await ask(`${pa} /workspace ${9 * MIB} 0`), /^err usage: PID MNTNS /);
  assert.is(sizeKib(pa, '/workspace'), before);
});

test.run();
