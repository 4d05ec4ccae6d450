/**
 * `Agents` (runtime/sandbox/agent/agents.ts) against a scripted agent over a real Unix socket
 * (no container): which agent an execute gets, when a lost one is reported as `agent_lost`
 * (only while its sandbox still runs), `agent_tampered` for other connections, and the
 * channel directory going with the sandbox.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Engine } from '../../../runtime/engine/engine.ts';
import type { EventInput } from '../../../runtime/events.ts';
import type { SandboxStore } from '../../../runtime/store/sandboxes.ts';
import { Agents, agentBaseDir } from '../../../runtime/sandbox/agent/agents.ts';
import { FRAME, HEADER_BYTES, PROTOCOL_VERSION } from '../../../runtime/sandbox/agent/protocol.ts';

const test = suite('agents');
let dir: string;
const made: Agents[] = [];
const sockets: Socket[] = [];

test.before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'director-agents-unit-'));
});
// Also when a test failed half-way: an open channel would keep this process alive.
test.after(async () => {
  for (const s of sockets) s.destroy();
  await Promise.all(made.map((a) => a.closeAll()));
  rmSync(dir, { recursive: true, force: true });
});

interface World {
  agents: Agents;
  events: EventInput[];
  running: { container: boolean; status: string };
}

function world(): World {
  const events: EventInput[] = [];
  const running = { container: true, status: 'running' };
  const engine = { inspectContainer: async () => ({ running: running.container }) } as unknown as Engine;
  const store = { byId: (id: string) => ({ id, workspace: 'wsp_a', status: running.status }) } as unknown as SandboxStore;
  const agents = new Agents({
    engine,
    store,
    events: { emit: (e: EventInput) => (events.push(e), e) } as never,
    logger: pino({ level: 'silent' }),
    binary: '/nonexistent/agent',
    baseDir: path.join(dir, `base-${Math.random().toString(36).slice(2)}`),
  });
  made.push(agents);
  return { agents, events, running };
}

function hello(socket: Socket): void {
  const frame = Buffer.alloc(HEADER_BYTES + 12);
  frame.writeUInt32LE(12, 0);
  frame.writeUInt8(FRAME.hello, 4);
  frame.writeUInt32LE(0, 5);
  frame.writeUInt32LE(PROTOCOL_VERSION, HEADER_BYTES);
  frame.writeUInt32LE(42, HEADER_BYTES + 4);
  socket.write(frame);
}

async function agentFor(w: World, sandboxId: string): Promise<{ socket: Socket; channelDir: string }> {
  const mount = await w.agents.open(sandboxId, 'wsp_a');
  const socket = connect(path.join(mount.channelDir, 'agent.sock'));
  sockets.push(socket);
  socket.on('error', () => undefined);
  hello(socket);
  await w.agents.connected(sandboxId, `ctr_${sandboxId}`, 3000);
  return { socket, channelDir: mount.channelDir };
}

const settle = (ms = 400) => new Promise((r) => setTimeout(r, ms));

test('a connected agent is given to executes, by sandbox and by container', async () => {
  const w = world();
  const { socket } = await agentFor(w, 'sbx_one');
  assert.ok(w.agents.client('sbx_one')?.alive);
  assert.is(w.agents.clientOfContainer('ctr_sbx_one'), w.agents.client('sbx_one'));
  assert.is(w.agents.client('sbx_other'), null);
  socket.destroy();
  await w.agents.closeAll();
});

test('an agent lost while its sandbox runs is reported once as agent_lost, with docker exec as the fallback', async () => {
  const w = world();
  const { socket } = await agentFor(w, 'sbx_lost');
  socket.destroy();
  await settle();
  assert.is(w.agents.client('sbx_lost'), null, 'executes fall back');
  const lost = w.events.filter((e) => e.type === 'agent_lost');
  assert.is(lost.length, 1);
  assert.equal(lost[0]!.details, { reason: 'closed', detail: 'the connection closed', fallback: 'docker_exec' });
  assert.is(lost[0]!.sandboxId, 'sbx_lost');
  await w.agents.closeAll();
});

test('an agent that ends with its sandbox is no loss: nothing is reported', async () => {
  const w = world();
  const { socket } = await agentFor(w, 'sbx_ending');
  w.running.container = false;
  socket.destroy();
  await settle();
  const w2 = world();
  const second = await agentFor(w2, 'sbx_stopping');
  w2.running.status = 'stopping';
  second.socket.destroy();
  await settle();
  assert.equal([...w.events, ...w2.events], []);
  await w.agents.closeAll();
  await w2.agents.closeAll();
});

test('an agent that never connects is reported, and the sandbox runs without one', async () => {
  const w = world();
  await w.agents.open('sbx_silent', 'wsp_a');
  await w.agents.connected('sbx_silent', 'ctr_silent', 200);
  assert.is(w.agents.client('sbx_silent'), null);
  assert.is(w.events[0]?.type, 'agent_lost');
  assert.is((w.events[0]?.details as { reason: string }).reason, 'unresponsive');
  await w.agents.closeAll();
});

test('a second connection is agent_tampered; closing the sandbox removes its channel directory', async () => {
  const w = world();
  const { socket, channelDir } = await agentFor(w, 'sbx_knock');
  const impostor = connect(path.join(channelDir, 'agent.sock'));
  sockets.push(impostor);
  impostor.on('error', () => undefined);
  await settle(200);
  const tampered = w.events.filter((e) => e.type === 'agent_tampered');
  assert.is(tampered.length, 1);
  assert.is(tampered[0]!.severity, 'high');
  assert.ok(w.agents.client('sbx_knock')?.alive, 'the agent keeps working');
  await w.agents.close('sbx_knock');
  assert.not.ok(existsSync(channelDir));
  assert.is(w.agents.client('sbx_knock'), null);
  socket.destroy();
  impostor.destroy();
});

test('a channel base whose socket paths would not fit in sun_path moves under the temp dir', () => {
  assert.is(agentBaseDir('/var/lib/director/agent'), '/var/lib/director/agent');
  const long = `/${'d'.repeat(80)}/agent`;
  const moved = agentBaseDir(long);
  assert.ok(moved.startsWith(tmpdir()) && /director-[0-9a-f]{12}$/.test(moved), moved);
  assert.is(agentBaseDir(long), moved, 'the same base every time');
});

test.run();
