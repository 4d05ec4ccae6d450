/**
 * The host side of the agent channel against a scripted agent over a real Unix socket
 * (no container): accept-once, flow control in both directions, liveness, and what a
 * misbehaving agent gets.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { constants } from 'node:os';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { ExecHandle } from '../../../runtime/engine/engine.ts';
import { AgentChannel, type AgentTamper } from '../../../runtime/sandbox/agent/channel.ts';
import type { Agents } from '../../../runtime/sandbox/agent/agents.ts';
import { AgentLostError } from '../../../runtime/sandbox/agent/client.ts';
import { Executor } from '../../../runtime/sandbox/execute.ts';
import type { Launchers } from '../../../runtime/sandbox/launcher.ts';
import type { SandboxManager } from '../../../runtime/sandbox/manager.ts';
import {
  EXEC_FLAG,
  FRAME,
  HEADER_BYTES,
  INITIAL_WINDOW_BYTES,
  MAX_CHUNK_BYTES,
  STDIN_WINDOW_BYTES,
} from '../../../runtime/sandbox/agent/protocol.ts';

const test = suite('agent client');
let dir: string;
let n = 0;
const opened: AgentChannel[] = [];

test.before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'director-agent-unit-'));
});
test.after(async () => {
  await Promise.all(opened.map((c) => c.close()));
  rmSync(dir, { recursive: true, force: true });
});

/** `p`, or a failure after `ms` (a broken client would otherwise leave the test waiting forever). */
function within<T>(p: Promise<T>, ms = 3000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`not settled within ${ms} ms`)), ms))),
  ]);
}

interface HostFrame {
  type: number;
  id: number;
  payload: Buffer;
}

/** A scripted agent: sends raw frames, records what Director sends. */
class FakeAgent {
  readonly socket: Socket;
  readonly got: HostFrame[] = [];
  private buf = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  constructor(socketPath: string) {
    this.socket = connect(socketPath);
    this.socket.on('error', () => undefined);
    this.socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      while (this.buf.length >= HEADER_BYTES && this.buf.length >= HEADER_BYTES + this.buf.readUInt32LE(0)) {
        const len = this.buf.readUInt32LE(0);
        this.got.push({
          type: this.buf.readUInt8(4),
          id: this.buf.readUInt32LE(5),
          payload: this.buf.subarray(HEADER_BYTES, HEADER_BYTES + len),
        });
        this.buf = this.buf.subarray(HEADER_BYTES + len);
      }
      for (const w of this.waiters.splice(0)) w();
    });
  }
  send(type: number, id: number, payload: Buffer = Buffer.alloc(0)): void {
    const h = Buffer.alloc(HEADER_BYTES);
    h.writeUInt32LE(payload.length, 0);
    h.writeUInt8(type, 4);
    h.writeUInt32LE(id, 5);
    this.socket.write(Buffer.concat([h, payload]));
  }
  hello(): void {
    const p = Buffer.alloc(12);
    p.writeUInt32LE(1, 0);
    p.writeUInt32LE(99, 4);
    this.send(FRAME.hello, 0, p);
  }
  exit(id: number, code: number): void {
    const p = Buffer.alloc(6);
    p.writeInt32LE(code, 1);
    this.send(FRAME.exit, id, p);
  }
  /** Waits until Director has sent a frame matching `pred`. */
  async until(pred: (f: HostFrame) => boolean, timeoutMs = 2000): Promise<HostFrame> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const f = this.got.find(pred);
      if (f) return f;
      if (Date.now() > until) throw new Error('Director did not send the expected frame');
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
  }
  sum(type: number, id: number): number {
    return this.got
      .filter((f) => f.type === type && f.id === id)
      .reduce((a, f) => a + (type === FRAME.stdin ? f.payload.length : f.payload.readUInt32LE(0)), 0);
  }
}

/** The error a promise rejects with (fails if it resolves). */
async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  assert.unreachable('expected a rejection');
  throw new Error('unreachable');
}

async function open(opts: Partial<Parameters<typeof AgentChannel.open>[0]> = {}): Promise<AgentChannel> {
  const channel = await AgentChannel.open({ baseDir: dir, sandboxId: `sbx_${++n}`, ...opts });
  opened.push(channel);
  return channel;
}

async function connected(opts: Parameters<typeof open>[0] = {}) {
  const channel = await open(opts);
  const fake = new FakeAgent(channel.socketPath);
  fake.hello();
  const agent = await channel.agent(2000);
  return { channel, fake, agent };
}

test("Executor.open asks for the agent's own tree (flag 8), and runs it exec'd when the agent refuses the flag (a build older than it), asking that agent without it from then on", async () => {
  const flagsOf = (f: { payload: Buffer }) => f.payload.readUInt8(0) & EXEC_FLAG.tree;
  const couldNotStart = (id: number, errno: number) => {
    const p = Buffer.alloc(6);
    p.writeUInt8(2, 0);
    p.writeInt32LE(errno, 1);
    return [id, p] as const;
  };
  const cmd = ['/.director/agent', 'tree', 'list', '/workspace'];
  const executorOf = (agent: unknown) =>
    new Executor({} as SandboxManager, {} as Launchers, null, { clientOfContainer: () => agent } as unknown as Agents);
  const { fake, agent } = await connected();
  const executor = executorOf(agent);
  const opening = executor.open('c1', cmd, { agentTree: true });
  const first = await fake.until((f) => f.type === FRAME.exec);
  assert.is(flagsOf(first), EXEC_FLAG.tree);
  // What an agent before flag 8 answers: a malformed exec, could not start, EINVAL.
  fake.send(FRAME.exit, ...couldNotStart(first.id, constants.errno.EINVAL));
  const second = await fake.until((f) => f.type === FRAME.exec && f.id !== first.id);
  assert.is(flagsOf(second), 0);
  const pid = Buffer.alloc(4);
  pid.writeUInt32LE(7, 0);
  fake.send(FRAME.started, second.id, pid);
  fake.exit(second.id, 0);
  assert.is((await within((await within(opening)).wait())).exitCode, 0);
  // The refusal is remembered: the next tree of this agent is asked without the flag at once.
  const next = within(executor.open('c1', cmd, { agentTree: true }));
  const third = await fake.until((f) => f.type === FRAME.exec && f.id > second.id);
  assert.is(flagsOf(third), 0);
  fake.exit(third.id, 0);
  await next;

  // Another refusal (EAGAIN: the pids limit) is the answer, not asked again, and not remembered.
  const other = await connected();
  const executor2 = executorOf(other.agent);
  const again = within(executor2.open('c2', cmd, { agentTree: true }));
  const refused = await other.fake.until((f) => f.type === FRAME.exec);
  other.fake.send(FRAME.exit, ...couldNotStart(refused.id, constants.errno.EAGAIN));
  assert.is((await within((await again).wait())).exitCode, -1);
  const later = within(executor2.open('c2', cmd, { agentTree: true }));
  const asked = await other.fake.until((f) => f.type === FRAME.exec && f.id !== refused.id);
  assert.is(flagsOf(asked), EXEC_FLAG.tree);
  other.fake.send(FRAME.started, asked.id, pid);
  other.fake.exit(asked.id, 0);
  assert.is((await within((await later).wait())).exitCode, 0);
  assert.is(other.fake.got.filter((f) => f.type === FRAME.exec).length, 2);
});

test('the first connection is the agent; later ones are refused and reported, a second apart at most', async () => {
  const { channel, agent } = await connected();
  const reports: AgentTamper[] = [];
  channel.on('tampered', (t) => reports.push(t));
  const impostors = Array.from({ length: 5 }, () => new FakeAgent(channel.socketPath));
  await Promise.all(impostors.map((i) => new Promise((r) => i.socket.once('close', r))));
  assert.is(channel.refusedConnections, 5);
  assert.ok(agent.alive);
  await new Promise((r) => setTimeout(r, 1100));
  assert.is(
    reports.reduce((a, t) => a + t.attempts, 0),
    5,
  );
  assert.ok(reports.length <= 2, `reported ${reports.length} times`);
  assert.equal(reports.at(-1), { attempts: reports.at(-1)!.attempts, total: 5, agentConnected: true });
  await channel.close();
});

test('a channel that expects no agent refuses and reports its very first connection', async () => {
  const channel = await open({ expectAgent: false });
  const reported = new Promise<AgentTamper>((r) => channel.once('tampered', r));
  new FakeAgent(channel.socketPath).hello();
  assert.equal(await within(reported), { attempts: 1, total: 1, agentConnected: false });
  assert.instance(await rejection(channel.agent(100)), AgentLostError);
  await channel.close();
});

test('waiting for an agent that never connects times out; the directory goes with the channel', async () => {
  const channel = await open();
  const err = await rejection(channel.agent(100));
  assert.instance(err, AgentLostError);
  assert.is((err as AgentLostError).reason, 'unresponsive');
  await channel.close();
  assert.not.ok(await import('node:fs').then((fs) => fs.existsSync(channel.dir)));
});

test('output is granted as the consumer takes it, and never beyond the window', async () => {
  const { channel, fake, agent } = await connected();
  const e = agent.exec({ argv: ['x'], timeoutMs: 5000 });
  const ex = await fake.until((f) => f.type === FRAME.exec);
  const chunk = Buffer.alloc(MAX_CHUNK_BYTES, 1);
  for (let i = 0; i < INITIAL_WINDOW_BYTES / MAX_CHUNK_BYTES; i++) fake.send(FRAME.stdout, ex.id, chunk);
  await new Promise((r) => setTimeout(r, 100));
  assert.is(fake.sum(FRAME.window, ex.id), 0, 'nothing granted while nothing was read');
  let read = 0;
  e.stdout.on('data', (d: Buffer) => (read += d.length));
  await fake.until((f) => f.type === FRAME.window);
  assert.is(read, INITIAL_WINDOW_BYTES);
  assert.is(fake.sum(FRAME.window, ex.id), INITIAL_WINDOW_BYTES);
  fake.exit(ex.id, 0);
  assert.is((await within(e.exit)).exitCode, 0);
  await channel.close();
});

test('a larger output window is granted with the exec, then in quarters of it, and output beyond it is still refused', async () => {
  const { channel, fake, agent } = await connected();
  const window = 1024 * 1024;
  const e = agent.exec({ argv: ['x'], timeoutMs: 5000, outputWindowBytes: window });
  const ex = await fake.until((f) => f.type === FRAME.exec);
  await fake.until((f) => f.type === FRAME.window && f.id === ex.id);
  assert.is(fake.sum(FRAME.window, ex.id), window - INITIAL_WINDOW_BYTES, 'the rest of the window, before any output');
  const chunk = Buffer.alloc(MAX_CHUNK_BYTES, 1);
  const send = async (bytes: number) => {
    for (let i = 0; i < bytes / MAX_CHUNK_BYTES; i++) fake.send(FRAME.stdout, ex.id, chunk);
    await new Promise((r) => setTimeout(r, 100));
  };
  // Grants come a quarter window at a time: nothing for the first 128 KiB taken (the default step is 64 KiB), 256 KiB at 256 KiB.
  let read = 0;
  e.stdout.on('data', (d: Buffer) => (read += d.length));
  await send(128 * 1024);
  assert.is(read, 128 * 1024);
  assert.is(fake.sum(FRAME.window, ex.id), window - INITIAL_WINDOW_BYTES, 'no grant before a quarter of the window was taken');
  await send(128 * 1024);
  assert.is(read, 256 * 1024);
  assert.is(fake.sum(FRAME.window, ex.id), window - INITIAL_WINDOW_BYTES + 256 * 1024);
  // Unread, the whole window is taken; one chunk more is refused.
  e.stdout.pause();
  await send(window);
  assert.ok(agent.alive, 'the whole window was accepted unread');
  fake.send(FRAME.stdout, ex.id, chunk);
  const exit = await within(e.exit);
  assert.is(exit.agentLost, true, 'one chunk past the (larger) window');
  assert.match(agent.lost!.detail, /past its window/);
  await channel.close();
});

test('output past the window is a protocol error', async () => {
  const { channel, fake, agent } = await connected();
  const e = agent.exec({ argv: ['x'] });
  const ex = await fake.until((f) => f.type === FRAME.exec);
  for (let i = 0; i <= INITIAL_WINDOW_BYTES / MAX_CHUNK_BYTES; i++) fake.send(FRAME.stdout, ex.id, Buffer.alloc(MAX_CHUNK_BYTES));
  const exit = await within(e.exit);
  assert.is(exit.agentLost, true);
  assert.is(agent.lost?.reason, 'protocol');
  assert.match(agent.lost!.detail, /past its window/);
  await channel.close();
});

test('stdin never has more than its window in flight', async () => {
  const { channel, fake, agent } = await connected();
  const e = agent.exec({ argv: ['cat'], stdin: true });
  const ex = await fake.until((f) => f.type === FRAME.exec);
  const total = 3 * STDIN_WINDOW_BYTES + 5;
  e.stdin!.end(Buffer.alloc(total, 7));
  await new Promise((r) => setTimeout(r, 100));
  assert.is(fake.sum(FRAME.stdin, ex.id), STDIN_WINDOW_BYTES, 'stops at the window without acknowledgements');
  for (let acked = 0; acked < total;) {
    const sent = fake.sum(FRAME.stdin, ex.id);
    const ack = Buffer.alloc(4);
    ack.writeUInt32LE(sent - acked, 0);
    fake.send(FRAME.stdinAck, ex.id, ack);
    acked = sent;
    await new Promise((r) => setTimeout(r, 30));
  }
  const eof = await fake.until((f) => f.type === FRAME.stdin && f.payload.length === 0);
  assert.is(eof.id, ex.id);
  assert.is(fake.sum(FRAME.stdin, ex.id), total);
  fake.exit(ex.id, 0);
  await within(e.exit);
  await channel.close();
});

test('a stdin destroyed before its end closes the process input: end of input is sent once and nothing after it', async () => {
  const { channel, fake, agent } = await connected();
  const e = agent.exec({ argv: ['tar', '-x'], stdin: true });
  const ex = await fake.until((f) => f.type === FRAME.exec);
  // More than the window: part of it waits for acknowledgements when the source fails.
  e.stdin!.write(Buffer.alloc(STDIN_WINDOW_BYTES + 1000, 1));
  await new Promise((r) => setTimeout(r, 50));
  e.stdin!.on('error', () => undefined);
  e.stdin!.destroy(new Error('the source failed'));
  const eof = await fake.until((f) => f.type === FRAME.stdin && f.id === ex.id && f.payload.length === 0);
  assert.ok(eof);
  const ack = Buffer.alloc(4);
  ack.writeUInt32LE(STDIN_WINDOW_BYTES, 0);
  fake.send(FRAME.stdinAck, ex.id, ack);
  await new Promise((r) => setTimeout(r, 100));
  const frames = fake.got.filter((f) => f.type === FRAME.stdin && f.id === ex.id);
  assert.is(frames.at(-1)!.payload.length, 0, 'nothing follows end of input');
  assert.is(frames.filter((f) => f.payload.length === 0).length, 1);
  assert.is(fake.sum(FRAME.stdin, ex.id), STDIN_WINDOW_BYTES);
  fake.exit(ex.id, 2);
  await within(e.exit);
  await channel.close();
});

test('an agent that stops answering past an exec timeout is lost as unresponsive', async () => {
  const { channel, fake, agent } = await connected({ client: { unresponsiveGraceMs: 50, pingTimeoutMs: 100 } });
  const lost = new Promise<{ reason: string }>((r) => agent.once('lost', r));
  const e = agent.exec({ argv: ['sleep'], timeoutMs: 50 });
  await fake.until((f) => f.type === FRAME.ping);
  assert.is((await within(lost)).reason, 'unresponsive');
  assert.is((await within(e.exit)).agentLost, true);
  assert.throws(
    () => agent.exec({ argv: ['x'] }),
    (e: unknown) => e instanceof AgentLostError,
  );
  await channel.close();
});

test('an agent that answers pings is kept while its exec runs on', async () => {
  const { channel, fake, agent } = await connected({ client: { unresponsiveGraceMs: 50, pingTimeoutMs: 200 } });
  fake.socket.on('data', () => {
    for (const f of fake.got.splice(0))
      if (f.type === FRAME.ping) fake.send(FRAME.pong, f.id);
      else fake.got.push(f);
  });
  const e = agent.exec({ argv: ['sleep'], timeoutMs: 20 });
  await new Promise((r) => setTimeout(r, 400));
  assert.ok(agent.alive);
  const ex = await fake.until((f) => f.type === FRAME.exec);
  fake.exit(ex.id, 0);
  assert.is((await within(e.exit)).exitCode, 0);
  assert.ok((await agent.ping()) >= 0);
  await channel.close();
});

test('as an ExecHandle, an agent exec settles `started` when the agent started it and `wait()` tells that its timeout killed it', async () => {
  const { channel, fake, agent } = await connected();
  // Seen only through the interface every exec path has, as the executor sees it.
  const h: ExecHandle = agent.exec({ argv: ['sleep', '9'], timeoutMs: 10_000 });
  let started = false;
  void h.started.then(() => (started = true));
  const ex = await fake.until((f) => f.type === FRAME.exec);
  await new Promise((r) => setTimeout(r, 20));
  assert.is(started, false, 'started before the agent said so');
  fake.send(FRAME.started, ex.id, Buffer.from([7, 0, 0, 0]));
  await within(h.started);
  // The agent killed it at the timeout: SIGKILL, timed-out flag set.
  const p = Buffer.alloc(6);
  p.writeUInt8(1, 0);
  p.writeInt32LE(9, 1);
  p.writeUInt8(1, 5);
  fake.send(FRAME.exit, ex.id, p);
  assert.equal(await within(h.wait()), { exitCode: 137, timedOut: true });
  await channel.close();
});

test('frames for executes that are not running, or before the hello, end the connection', async () => {
  const { channel, fake, agent } = await connected();
  fake.send(FRAME.stdout, 77, Buffer.from('x'));
  await within(new Promise((r) => agent.once('lost', r)));
  assert.is(agent.lost?.reason, 'protocol');
  assert.match(agent.lost!.detail, /exec 77, which is not running/);
  await channel.close();

  const early = await open();
  new FakeAgent(early.socketPath).send(FRAME.started, 1, Buffer.alloc(4));
  const err = await rejection(early.agent(2000));
  assert.instance(err, AgentLostError);
  assert.match(err.message, /started before hello/);
  await early.close();
});

test('closing from Director ends running executes without reporting a loss', async () => {
  const { channel, fake, agent } = await connected();
  let lost = false;
  agent.on('lost', () => (lost = true));
  const e = agent.exec({ argv: ['sleep'] });
  await fake.until((f) => f.type === FRAME.exec);
  await channel.close();
  assert.is((await within(e.exit)).agentLost, true);
  assert.is(lost, false);
  assert.is(agent.lost, null);
});

test('sandbox ids that could leave the base directory cannot name a channel', async () => {
  for (const id of ['../x', 'a/b', '', '.', 'x'.repeat(65)])
    assert.match((await rejection(open({ sandboxId: id }))).message, /cannot name a channel/);
});

test.run();
