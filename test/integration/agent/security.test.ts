/**
 * The agent's channel against the sandbox it serves: what a process in the sandbox (same
 * uid as the agent) can and cannot do to the agent, its executable and its socket, and what
 * Director does with a hostile agent. See docs/agent.md, "Threat model".
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { systemClock } from '../../../core/clock.ts';
import { openDb, type Db } from '../../../core/db.ts';
import { createEventSink, type EventSink } from '../../../runtime/events.ts';
import { AgentLostError, type AgentClient } from '../../../runtime/sandbox/agent/client.ts';
import { agentLostEvent, reportTampering } from '../../../runtime/sandbox/agent/events.ts';
import { agentLab, run, type AgentLab, type AgentSandbox } from '../../helpers/agent.ts';
import { BASE, eventually } from '../../helpers/runtime.ts';
import { storing } from '../../helpers/sink.ts';

const test = suite('agent security');
const HOSTILE = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../fixtures/hostile-agent.py');
let lab: AgentLab;
let dbDir: string;
let db: Db;
let events: EventSink;

test.before(() => {
  lab = agentLab();
  dbDir = mkdtempSync(path.join(tmpdir(), 'director-agent-events-'));
  db = openDb(dbDir);
  events = storing(createEventSink(db, systemClock));
});
test.after(async () => {
  await lab.cleanup();
  db.close();
  rmSync(dbDir, { recursive: true, force: true });
});

const sh = (agent: AgentClient, script: string) => run(agent, { argv: ['sh', '-c', script] });
const agentPid = async (agent: AgentClient) => (await agent.ready).pid;

test('the agent runs as the sandbox user, without capabilities, and is not dumpable', async () => {
  const { agent } = await lab.sandbox({ image: BASE });
  const pid = await agentPid(agent!);
  const status = (await sh(agent!, `grep -E '^(Uid|Gid|CapEff|CapPrm|CapBnd|NoNewPrivs):' /proc/${pid}/status`)).stdout;
  assert.match(status, /Uid:\s+1000\s+1000\s+1000\s+1000/);
  assert.match(status, /Gid:\s+1000\s+1000\s+1000\s+1000/);
  assert.match(status, /CapEff:\s+0{16}/);
  assert.match(status, /CapPrm:\s+0{16}/);
  assert.match(status, /CapBnd:\s+0{16}/);
  assert.match(status, /NoNewPrivs:\s+1/);
  // A process of the same user that is dumpable (the control) versus the agent.
  const probe = (p: number | string) =>
    `cat /proc/${p}/environ >/dev/null 2>&1 && echo environ; ls /proc/${p}/fd >/dev/null 2>&1 && echo fd; stat -c owner=%u /proc/${p}/environ`;
  const control = await sh(agent!, `sleep 30 & p=$!; ${probe('$p')}; kill $p`);
  assert.is(control.stdout, 'environ\nfd\nowner=1000\n', 'a dumpable process of the sandbox user is readable');
  const own = await sh(agent!, probe(pid));
  assert.is(own.stdout, 'owner=0\n', "the agent's /proc entries belong to root: no environ, no fds");
});

test('a sandbox process can neither ptrace the agent nor take its socket with pidfd_getfd', async () => {
  const { agent } = await lab.sandbox({ image: BASE });
  const pid = await agentPid(agent!);
  const py = [
    'import ctypes, os, sys',
    'libc = ctypes.CDLL(None, use_errno=True)',
    'pid = int(sys.argv[1])',
    'r = libc.ptrace(16, pid, 0, 0)',
    'print("ptrace", r, os.strerror(ctypes.get_errno()) if r else "attached")',
    'pidfd = os.pidfd_open(pid)',
    'for fd in range(3, 8):',
    '    r = libc.syscall(438, pidfd, fd, 0)',
    '    print("getfd", fd, r, os.strerror(ctypes.get_errno()) if r < 0 else "taken")',
  ].join('\n');
  const r = await run(agent!, { argv: ['python3', '-c', py, String(pid)] });
  assert.is(r.exit.exitCode, 0, r.stderr);
  assert.match(r.stdout, /^ptrace -1 Operation not permitted$/m);
  assert.not.match(r.stdout, /attached|taken/);
  assert.is(r.stdout.match(/^getfd \d -1 /gm)?.length, 5, r.stdout);
});

test('a sandbox process connecting to the agent socket is refused and reported as agent_tampered', async () => {
  const sb = await lab.sandbox({ image: BASE });
  const stop = reportTampering(sb.channel, events, { workspace: 'wsp_test', sandboxId: sb.sandboxId });
  try {
    const py = [
      'import socket, struct',
      'for attempt in range(3):',
      '    s = socket.socket(socket.AF_UNIX)',
      '    s.connect("/.director/run/agent.sock")',
      // It poses as an agent: a hello, then output for an exec it hopes to capture.
      '    try:',
      '        s.sendall(struct.pack("<IBI", 12, 0x81, 0) + struct.pack("<III", 1, 1, 0))',
      '        print("read", len(s.recv(65536)))',
      '    except OSError:',
      '        print("reset")',
    ].join('\n');
    const r = await run(sb.agent!, { argv: ['python3', '-c', py] });
    assert.is(r.exit.exitCode, 0, r.stderr);
    assert.ok(/^(read 0|reset)\n(read 0|reset)\n(read 0|reset)\n$/.test(r.stdout), `nothing was said to the impostor: ${r.stdout}`);
    const reported = await eventually(() => {
      const list = events.list({ sandboxId: sb.sandboxId, type: 'agent_tampered', limit: 10 });
      return list.reduce((n, e) => n + (e.details.refusedConnections as number), 0) === 3 ? list : null;
    }, 5000);
    assert.is(reported[0]!.severity, 'high');
    assert.is(reported[0]!.workspace, 'wsp_test');
    assert.is(sb.channel.refusedConnections, 3);
    // The real agent is unaffected.
    assert.is((await run(sb.agent!, { argv: ['echo', 'still here'] })).stdout, 'still here\n');
  } finally {
    stop();
  }
});

test('a killed agent is detected: running executes end as agentLost, new ones are refused, the sandbox keeps running', async () => {
  const { agent, containerId } = await lab.sandbox();
  const pid = await agentPid(agent!);
  const lost = new Promise((r) => agent!.once('lost', r));
  const victim = agent!.exec({ argv: ['sleep', '30'], timeoutMs: 60_000 });
  await victim.started;
  void sh(agent!, `kill -9 ${pid}`);
  assert.equal(await lost, { reason: 'closed', detail: 'the connection closed' });
  const exit = await victim.exit;
  assert.is(exit.agentLost, true);
  assert.is(exit.exitCode, -1);
  assert.throws(
    () => agent!.exec({ argv: ['true'] }),
    (e: unknown) => e instanceof AgentLostError,
  );
  // Its keeper (the sandbox's main process) keeps the sandbox running: docker exec still reaches it.
  await new Promise((r) => setTimeout(r, 300));
  assert.is((await lab.engine.inspectContainer(containerId))?.running, true);
  const h = await lab.engine.exec(containerId, { cmd: ['echo', 'kept'], env: {}, user: '1000:1000' });
  let out = '';
  h.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await h.wait();
  assert.is(out, 'kept\n');
});

test('a stopped agent is found unresponsive, and docker exec still reaches the sandbox', async () => {
  const sb = await lab.sandbox({ client: { unresponsiveGraceMs: 300, pingTimeoutMs: 300 } });
  const agent = sb.agent!;
  const pid = await agentPid(agent);
  const lost = new Promise<{ reason: string }>((r) => agent.once('lost', r));
  // Another sandbox process (through docker exec, so it is known to be done) stops the agent.
  const stopper = await lab.engine.exec(sb.containerId, { cmd: ['kill', '-STOP', String(pid)], env: {}, user: '1000:1000' });
  assert.is((await stopper.wait()).exitCode, 0);
  const stuck = agent.exec({ argv: ['echo', 'never'], timeoutMs: 300 });
  assert.is((await lost).reason, 'unresponsive');
  assert.is((await stuck.exit).agentLost, true);
  const event = events.emit(agentLostEvent({ workspace: 'wsp_test', sandboxId: sb.sandboxId }, agent.lost!, 'docker_exec'));
  assert.is(event.type, 'agent_lost');
  assert.equal(event.details, { reason: 'unresponsive', detail: agent.lost!.detail, fallback: 'docker_exec' });
  const h = await lab.engine.exec(sb.containerId, { cmd: ['echo', 'fallback'], env: {}, user: '1000:1000' });
  let out = '';
  h.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await h.wait();
  assert.is(out, 'fallback\n');
});

test('the agent executable cannot be changed from inside the sandbox', async () => {
  const { agent } = await lab.sandbox({ request: { securityPolicy: { readOnlyRoot: false } } });
  const before = createHash('sha256').update(readFileSync(lab.binary)).digest('hex');
  const attempts = [
    'echo x > /.director/agent',
    'echo x >> /.director/agent',
    'cp /bin/busybox /.director/agent',
    'rm -f /.director/agent',
    'mv /.director/agent /tmp/a',
    'chmod 777 /.director/agent',
    'truncate -s 0 /.director/agent',
    'touch /.director/run/x',
    'rm -f /.director/run/agent.sock',
    'ln -sf /bin/sh /.director/run/agent.sock',
  ];
  const r = await sh(agent!, attempts.map((a) => `${a} 2>/dev/null && echo "did: ${a}"`).join('; ') + '; ls -l /.director/agent');
  assert.not.match(r.stdout, /did:/);
  assert.match(r.stdout, /-rwxr-xr-x\s+1 root\s+root .* \/.director\/agent/);
  assert.is(createHash('sha256').update(readFileSync(lab.binary)).digest('hex'), before);
  assert.is((await run(agent!, { argv: ['echo', 'intact'] })).stdout, 'intact\n');
});

test("a sandbox sees only its own channel and cannot reach another sandbox's", async () => {
  const [a, b] = await Promise.all([lab.sandbox({ image: BASE }), lab.sandbox({ image: BASE })]);
  const listing = await sh(a.agent!, "ls -A /.director/run; grep -c ' /.director/' /proc/mounts");
  assert.is(listing.stdout, 'agent.sock\n2\n');
  const py = [
    'import socket, sys',
    'for p in sys.argv[1:]:',
    '    s = socket.socket(socket.AF_UNIX)',
    '    try:',
    '        s.connect(p)',
    '        print("connected", p)',
    '    except OSError as e:',
    '        print(type(e).__name__)',
  ].join('\n');
  const r = await run(a.agent!, { argv: ['python3', '-c', py, b.channel.socketPath, `/proc/1/root${b.channel.socketPath}`] });
  assert.is(r.stdout, 'FileNotFoundError\nFileNotFoundError\n');
  assert.is(b.channel.refusedConnections, 0);
  assert.is(a.channel.refusedConnections, 0);
  assert.ok(b.agent!.alive);
});

const hostile = async (mode: string): Promise<{ sb: AgentSandbox; agent: AgentClient | null; error: unknown }> => {
  const sb = await lab.sandbox({ image: BASE, binary: HOSTILE, command: [mode], waitForAgent: false });
  try {
    return { sb, agent: await sb.channel.agent(10_000), error: null };
  } catch (error) {
    return { sb, agent: null, error };
  }
};

test('a hostile agent cannot crash Director: every broken frame ends its connection as a protocol error', async () => {
  const genuine = await lab.sandbox();
  const connectionModes = ['before-hello', 'huge', 'unknown-type', 'garbage'];
  const execModes = ['overrun', 'bad-exit', 'other-exec', 'trickle'];
  const all = await Promise.all([...connectionModes, ...execModes].map(async (mode) => ({ mode, ...(await hostile(mode)) })));
  for (const { mode, sb, agent, error } of all) {
    if (execModes.includes(mode)) {
      assert.ok(agent, `${mode}: the hello was accepted (${String(error)})`);
      // Output is not read: nothing is granted past the first window, which `overrun` exceeds.
      const e = agent.exec({ argv: ['echo', 'hi'], timeoutMs: 10_000 });
      assert.is((await e.exit).agentLost, true, mode);
    }
    // Refused before the hello (no agent), or right after it.
    const lost = agent ? await eventually(() => agent.lost, 5000) : (error as AgentLostError);
    assert.is(lost.reason, 'protocol', `${mode}: ${String(agent ? agent.lost?.detail : error)}`);
    assert.is(sb.channel.refusedConnections, 0);
  }
  assert.is((await run(genuine.agent!, { argv: ['echo', 'unaffected'] })).stdout, 'unaffected\n');
});

test.run();
