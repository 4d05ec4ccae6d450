/**
 * The agent wired into Director (docs/agent.md): sandboxes the runtime creates run it, executes
 * go through it, a sandbox whose agent is gone or stopped answering keeps working through
 * `docker exec` and says so (`agent_lost`), and a sandbox process reaches no other sandbox's agent.
 */
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { SANDBOX_USER } from '../../../runtime/sandbox/hardening.ts';
import { agentBaseDir } from '../../../runtime/sandbox/agent/agents.ts';
import { AGENT_SOCKET_NAME } from '../../../runtime/sandbox/agent/channel.ts';
import { buildAgent } from '../../helpers/agent.ts';
import { BASE, BUSYBOX, caller, eventually, testRuntime, type TestRuntime } from '../../helpers/runtime.ts';

const test = suite('agent wired into execute');
const NODE = 'director/node:latest';
let rt: TestRuntime;

test.before(async () => {
  buildAgent();
  rt = testRuntime({ execAgent: 'on' });
  await rt.start();
});
test.after(async () => {
  await rt.cleanup();
});

const run = (id: string, command: string | string[], extra: Record<string, unknown> = {}) =>
  rt.executor.run(caller, id, { command, timeout: 10_000, ...extra });
/** The name of the process that started the execute's shell: the agent, or nothing (docker exec: its parent is outside the sandbox). */
const parentOf = async (id: string) => (await run(id, 'cat /proc/$PPID/comm 2>/dev/null || true')).stdout.trim();

test('sandboxes run the agent and executes go through it, in busybox, Debian and node images', async () => {
  assert.ok(rt.agents, 'the runtime has agents (local engine, agent built)');
  for (const image of [BUSYBOX, BASE, NODE]) {
    const sb = await rt.sandboxes.create({ image }, caller);
    assert.ok(rt.agents.client(sb.id)?.alive, `${image}: agent connected`);
    assert.is(await parentOf(sb.id), 'agent', image);
    const r = await run(sb.id, ['sh', '-c', 'echo "$GREETING from $(pwd) as $(id -u)"; read x; echo "in:$x" >&2; exit 3'], {
      environment: { GREETING: 'hello' },
      workdir: '/tmp',
      stdin: 'typed\n',
    });
    assert.equal([r.exitCode, r.stdout, r.stderr, r.timedOut], [3, 'hello from /tmp as 1000\n', 'in:typed\n', false], image);
    await rt.sandboxes.delete(caller, sb.id);
  }
});

test('the terminal runs its shell on a pty through the agent', async () => {
  const sb = await rt.sandboxes.create({ image: BUSYBOX }, caller);
  const session = await rt.shells.open(caller, sb.id);
  assert.match(session!.process.id, /^agent-/);
  let out = '';
  session!.process.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await session!.process.resize!(100, 30);
  session!.process.stdin!.write('stty size; tty; echo tty-$((6*7)); exit 5\n');
  assert.is((await session!.exited).exitCode, 5);
  assert.match(out, /30 100/);
  assert.match(out, /\/dev\/pts\/\d+/);
  assert.match(out, /tty-42/);
  await rt.sandboxes.delete(caller, sb.id);
});

test('a timeout kills the whole process group through the agent', async () => {
  const sb = await rt.sandboxes.create({ image: BUSYBOX }, caller);
  const r = await run(sb.id, 'sleep 30 & sleep 30; echo never', { timeout: 500 });
  assert.is(r.timedOut, true);
  assert.is(r.stdout, '');
  const left = await run(sb.id, "ps -o comm | grep -c '^sleep' || true");
  assert.is(left.stdout, '0\n');
  await rt.sandboxes.delete(caller, sb.id);
});

test('a killed agent: executes go on through docker exec, the sandbox keeps running, agent_lost says so', async () => {
  const sb = await rt.sandboxes.create({ image: BUSYBOX }, caller);
  const hello = await rt.agents!.client(sb.id)!.ready;
  // Another sandbox process (through docker exec) kills the agent.
  const killer = await rt.engine.exec(sb.containerId!, { cmd: ['kill', '-9', String(hello.pid)], env: {}, user: SANDBOX_USER });
  assert.is((await killer.wait()).exitCode, 0);
  const lost = await eventually(() => rt.events.list({ sandboxId: sb.id, type: 'agent_lost', limit: 5 })[0]);
  assert.equal(lost.details, { reason: 'closed', detail: 'the connection closed', fallback: 'docker_exec' });
  assert.is(rt.agents!.client(sb.id), null);
  const r = await run(sb.id, 'echo still here');
  assert.equal([r.exitCode, r.stdout], [0, 'still here\n']);
  assert.is(await parentOf(sb.id), '', 'run by docker exec: its parent is outside the sandbox');
  assert.is(rt.sandboxes.get(caller, sb.id).status, 'running');
  assert.is(rt.events.list({ sandboxId: sb.id, type: 'agent_lost', limit: 5 }).length, 1);
  await rt.sandboxes.delete(caller, sb.id);
  assert.is(rt.events.list({ sandboxId: sb.id, type: 'agent_lost', limit: 5 }).length, 1, 'deleting the sandbox reports nothing more');
});

test('a stopped agent is found unresponsive; the next executes use docker exec', async () => {
  const sb = await rt.sandboxes.create({ image: BUSYBOX }, caller);
  const hello = await rt.agents!.client(sb.id)!.ready;
  const stopper = await rt.engine.exec(sb.containerId!, { cmd: ['kill', '-STOP', String(hello.pid)], env: {}, user: SANDBOX_USER });
  assert.is((await stopper.wait()).exitCode, 0);
  const stuck = await run(sb.id, 'echo never', { timeout: 300 });
  assert.is(stuck.timedOut, true);
  const lost = await eventually(() => rt.events.list({ sandboxId: sb.id, type: 'agent_lost', limit: 5 })[0]);
  assert.is((lost.details as { reason: string }).reason, 'unresponsive');
  assert.is((await run(sb.id, 'echo through docker exec')).stdout, 'through docker exec\n');
  await rt.sandboxes.delete(caller, sb.id);
});

test("a sandbox process cannot reach another sandbox's agent, and knocking on its own is reported", async () => {
  const a = await rt.sandboxes.create({ image: BASE }, caller);
  const b = await rt.sandboxes.create({ image: BASE }, caller);
  const bSocket = path.join(agentBaseDir(path.join(rt.dataDir, 'agent')), b.id, AGENT_SOCKET_NAME);
  const py = [
    'import socket, sys',
    'for p in sys.argv[1:]:',
    '    s = socket.socket(socket.AF_UNIX)',
    '    try:',
    '        s.connect(p)',
    '        print("connected" if s.recv(1) else "closed")',
    '    except OSError as e:',
    '        print(type(e).__name__)',
  ].join('\n');
  const r = await run(a.id, ['python3', '-c', py, bSocket, `/proc/1/root${bSocket}`, '/.director/run/agent.sock']);
  assert.match(r.stdout, /^FileNotFoundError\nFileNotFoundError\n(closed|ConnectionResetError)\n$/);
  const tampered = await eventually(() => rt.events.list({ sandboxId: a.id, type: 'agent_tampered', limit: 5 })[0]);
  assert.is(tampered.severity, 'high');
  assert.is(rt.events.list({ sandboxId: b.id, type: 'agent_tampered', limit: 5 }).length, 0);
  assert.is((await run(b.id, 'echo b')).stdout, 'b\n');
  assert.is((await run(a.id, 'echo a')).stdout, 'a\n');
  assert.is(await parentOf(a.id), 'agent');
});

test.run();
