import { randomBytes } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  AgentDecoder,
  AgentProtocolError,
  AgentRequestError,
  FRAME,
  HEADER_BYTES,
  MAX_AGENT_FRAME_BYTES,
  MAX_CHUNK_BYTES,
  MAX_HOST_FRAME_BYTES,
  encodeExec,
  encodeKill,
  encodeResize,
  encodeStdin,
  encodeWindow,
  parseAgentFrame,
} from '../../../runtime/sandbox/agent/protocol.ts';

const frame = (type: number, id: number, payload: Buffer | number[] = []): Buffer => {
  const p = Buffer.from(payload);
  const h = Buffer.alloc(HEADER_BYTES);
  h.writeUInt32LE(p.length, 0);
  h.writeUInt8(type, 4);
  h.writeUInt32LE(id, 5);
  return Buffer.concat([h, p]);
};
const u32 = (...vs: number[]) => {
  const b = Buffer.alloc(4 * vs.length);
  vs.forEach((v, i) => b.writeUInt32LE(v, 4 * i));
  return b;
};
const exitPayload = (kind: number, value: number, timedOut = 0) => {
  const b = Buffer.alloc(6);
  b.writeUInt8(kind, 0);
  b.writeInt32LE(value, 1);
  b.writeUInt8(timedOut, 5);
  return b;
};
const hello = frame(FRAME.hello, 0, u32(1, 7, 0));

/** Reads an exec payload the way images/agent/wire.c parse_exec does. */
function readExec(buf: Buffer) {
  assert.is(buf.readUInt32LE(0), buf.length - HEADER_BYTES);
  assert.is(buf.readUInt8(4), FRAME.exec);
  const p = buf.subarray(HEADER_BYTES);
  let off = 9;
  const str = () => {
    const n = p.readUInt32LE(off);
    const s = p.subarray(off + 4, off + 4 + n).toString('utf8');
    off += 4 + n;
    return s;
  };
  const list = () => Array.from({ length: p.readUInt32LE((off += 4) - 4) }, str);
  const out = {
    id: buf.readUInt32LE(5),
    flags: p.readUInt8(0),
    timeoutMs: p.readUInt32LE(1),
    cols: p.readUInt16LE(5),
    rows: p.readUInt16LE(7),
    argv: list(),
    env: list(),
    workdir: str(),
  };
  assert.is(off, p.length, 'nothing after the workdir');
  return out;
}

test('an exec frame carries argv, environment, workdir, timeout and flags in the layout the agent parses', () => {
  const e = readExec(
    encodeExec(5, {
      argv: ['sh', '-c', 'echo é'],
      env: { A: '1', B: 'x=y' },
      workdir: '/tmp',
      timeoutMs: 1500,
      stdin: true,
      tty: { cols: 120, rows: 40 },
    }),
  );
  assert.equal(e, {
    id: 5,
    flags: 3,
    timeoutMs: 1500,
    cols: 120,
    rows: 40,
    argv: ['sh', '-c', 'echo é'],
    env: ['A=1', 'B=x=y'],
    workdir: '/tmp',
  });
  const plain = readExec(encodeExec(1, { argv: ['true'] }));
  assert.equal(plain, { id: 1, flags: 0, timeoutMs: 0, cols: 0, rows: 0, argv: ['true'], env: [], workdir: '' });
});

test('finishOnDisconnect sets flag 4 (the agent then lets the exec finish when the connection is lost)', () => {
  assert.is(readExec(encodeExec(2, { argv: ['true'], finishOnDisconnect: true })).flags, 4);
  assert.is(readExec(encodeExec(2, { argv: ['true'], stdin: true, finishOnDisconnect: true })).flags, 6);
  assert.is(readExec(encodeExec(2, { argv: ['true'], tty: { cols: 1, rows: 1 }, stdin: true, finishOnDisconnect: true })).flags, 7);
  assert.is(readExec(encodeExec(2, { argv: ['true'], stdin: true, finishOnDisconnect: false })).flags, 2);
});

test("tree sets flag 8 (the agent runs its own `tree` in a fork); only for `[binary, 'tree', ...]` without a tty", () => {
  const argv = ['/.director/agent', 'tree', 'list', '/workspace'];
  assert.is(readExec(encodeExec(3, { argv, tree: true })).flags, 8);
  assert.is(readExec(encodeExec(3, { argv, stdin: true, tree: true })).flags, 10);
  assert.equal(readExec(encodeExec(3, { argv, tree: true })).argv, argv);
  assert.is(readExec(encodeExec(3, { argv, tree: false })).flags, 0);
  const refused = (req: Parameters<typeof encodeExec>[1]) =>
    assert.throws(
      () => encodeExec(3, req),
      (e: unknown) => e instanceof AgentRequestError && /own tree/.test(e.message),
    );
  refused({ argv: ['sh', '-c', 'id'], tree: true });
  refused({ argv: ['/.director/agent'], tree: true });
  refused({ argv, tree: true, tty: { cols: 80, rows: 24 } });
});

test('requests the protocol cannot carry are refused before anything is sent', () => {
  const refused = (fn: () => unknown, what: RegExp) =>
    assert.throws(fn, (e: unknown) => e instanceof AgentRequestError && what.test(e.message));
  refused(() => encodeExec(1, { argv: [] }), /argv is empty/);
  refused(() => encodeExec(1, { argv: ['a\0b'] }), /NUL/);
  refused(() => encodeExec(1, { argv: ['x'], env: { 'A=B': '1' } }), /environment key/);
  refused(() => encodeExec(1, { argv: ['x'], env: { '': '1' } }), /environment key/);
  refused(() => encodeExec(1, { argv: ['x'], env: { A: 'v\0' } }), /NUL/);
  refused(() => encodeExec(1, { argv: ['x'], workdir: 'tmp' }), /absolute/);
  refused(() => encodeExec(1, { argv: ['x'], timeoutMs: -1 }), /timeoutMs/);
  refused(() => encodeExec(0, { argv: ['x'] }), /exec id/);
  refused(() => encodeExec(2 ** 32, { argv: ['x'] }), /exec id/);
  refused(() => encodeExec(1, { argv: ['x'.repeat(MAX_HOST_FRAME_BYTES)] }), /at most/);
  refused(() => encodeStdin(1, Buffer.alloc(MAX_CHUNK_BYTES + 1)), /too large/);
  refused(() => encodeKill(1, 0), /signal/);
  refused(() => encodeKill(1, 65), /signal/);
  refused(() => encodeWindow(1, 0), /window/);
});

test('control frames have fixed shapes', () => {
  assert.equal([...encodeKill(3, 9)], [1, 0, 0, 0, FRAME.kill, 3, 0, 0, 0, 9]);
  assert.equal([...encodeResize(3, 80, 24)], [4, 0, 0, 0, FRAME.resize, 3, 0, 0, 0, 80, 0, 24, 0]);
  assert.equal([...encodeWindow(3, 65536)], [4, 0, 0, 0, FRAME.window, 3, 0, 0, 0, 0, 0, 1, 0]);
  assert.equal([...encodeStdin(3, Buffer.alloc(0))], [0, 0, 0, 0, FRAME.stdin, 3, 0, 0, 0]);
});

test('decodes every message the agent sends', () => {
  const d = new AgentDecoder();
  const all = Buffer.concat([
    hello,
    frame(FRAME.started, 1, u32(42)),
    frame(FRAME.stdout, 1, Buffer.from('out')),
    frame(FRAME.stderr, 1, Buffer.from('err')),
    frame(FRAME.stdinAck, 1, u32(10)),
    frame(FRAME.exit, 1, exitPayload(0, 3)),
    frame(FRAME.exit, 2, exitPayload(1, 9, 1)),
    frame(FRAME.exit, 3, exitPayload(2, 11)),
    frame(FRAME.error, 3, Buffer.from('fork: \x1b[31mno')),
    frame(FRAME.pong, 7),
  ]);
  const { messages, error } = d.push(all);
  assert.is(error, null);
  assert.equal(messages, [
    { type: 'hello', protocol: 1, pid: 7, hasCommand: false },
    { type: 'started', id: 1, pid: 42 },
    { type: 'stdout', id: 1, data: Buffer.from('out') },
    { type: 'stderr', id: 1, data: Buffer.from('err') },
    { type: 'stdinAck', id: 1, bytes: 10 },
    { type: 'exit', id: 1, exit: { kind: 'code', code: 3, timedOut: false } },
    { type: 'exit', id: 2, exit: { kind: 'signal', signal: 9, timedOut: true } },
    { type: 'exit', id: 3, exit: { kind: 'failed', errno: 11 } },
    { type: 'error', id: 3, message: 'fork: ?[31mno' },
    { type: 'pong', id: 7 },
  ]);
});

test('frames split anywhere, down to single bytes, decode the same', () => {
  const stream = Buffer.concat([hello, frame(FRAME.stdout, 1, randomBytes(5000)), frame(FRAME.exit, 1, exitPayload(0, 0))]);
  const whole = new AgentDecoder().push(stream).messages;
  for (const step of [1, 2, 9, 10, 4096]) {
    const d = new AgentDecoder();
    const got = [];
    for (let i = 0; i < stream.length; i += step) {
      const r = d.push(stream.subarray(i, i + step));
      assert.is(r.error, null);
      got.push(...r.messages);
    }
    assert.equal(got, whole);
    assert.is(d.buffered, 0);
  }
});

test('a payload is its own copy of exactly its bytes: changing the received chunks afterwards changes no message', () => {
  const data = randomBytes(70_000).subarray(0, 65_536);
  const stream = Buffer.concat([frame(FRAME.stdout, 1, data), frame(FRAME.stdout, 2, Buffer.from('tail'))]);
  for (const step of [7, 65_536, 100_000]) {
    const d = new AgentDecoder();
    const got: Buffer[] = [];
    const chunks: Buffer[] = [];
    for (let i = 0; i < stream.length; i += step) {
      const chunk = Buffer.from(stream.subarray(i, i + step));
      chunks.push(chunk);
      for (const m of d.push(chunk).messages) if (m.type === 'stdout') got.push(m.data);
    }
    for (const c of chunks) c.fill(0);
    assert.is(got.length, 2);
    assert.ok(got[0]!.equals(data));
    assert.is(got[1]!.toString(), 'tail');
    assert.is(d.buffered, 0);
  }
});

test('a header announcing an oversized frame is refused before its payload arrives', () => {
  const d = new AgentDecoder();
  const h = Buffer.alloc(HEADER_BYTES);
  h.writeUInt32LE(0xffff_fff0, 0);
  h.writeUInt8(FRAME.stdout, 4);
  h.writeUInt32LE(1, 5);
  const r = d.push(Buffer.concat([hello, h]));
  assert.is(r.messages.length, 1, 'what came before is still delivered');
  assert.instance(r.error, AgentProtocolError);
  assert.match(r.error!.message, /frame of 4294967280 bytes/);
  assert.is(d.buffered, 0);
  // A frame one byte over the limit, too.
  const over = frame(FRAME.stdout, 1, Buffer.alloc(MAX_AGENT_FRAME_BYTES + 1));
  assert.instance(new AgentDecoder().push(over.subarray(0, HEADER_BYTES)).error, AgentProtocolError);
});

test('after a refusal the decoder stays failed', () => {
  const d = new AgentDecoder();
  const first = d.push(frame(0x7f, 1, [1, 2, 3]));
  assert.match(first.error!.message, /unknown frame type 0x7f/);
  const again = d.push(hello);
  assert.equal(again.messages, []);
  assert.is(again.error, first.error);
});

test('payloads of the wrong shape are refused', () => {
  const bad: Array<[number, number, Buffer, RegExp]> = [
    [FRAME.hello, 0, u32(1, 2), /hello frame of 8 bytes/],
    [FRAME.hello, 5, u32(1, 2, 0), /hello frame with an exec id/],
    [FRAME.started, 0, u32(1), /started frame for exec 0/],
    [FRAME.started, 1, Buffer.alloc(3), /started frame of 3 bytes/],
    [FRAME.stdout, 1, Buffer.alloc(0), /stdout chunk of 0 bytes/],
    [FRAME.stderr, 0, Buffer.from('x'), /stderr frame for exec 0/],
    [FRAME.exit, 1, exitPayload(0, 256), /kind 0 and value 256/],
    [FRAME.exit, 1, exitPayload(0, -1), /kind 0 and value -1/],
    [FRAME.exit, 1, exitPayload(1, 0), /kind 1 and value 0/],
    [FRAME.exit, 1, exitPayload(1, 65), /kind 1 and value 65/],
    [FRAME.exit, 1, exitPayload(2, 11, 1), /kind 2/],
    [FRAME.exit, 1, exitPayload(3, 0), /kind 3/],
    [FRAME.exit, 1, exitPayload(0, 0, 2), /unknown flag/],
    [FRAME.exit, 1, Buffer.alloc(5), /exit frame of 5 bytes/],
    [FRAME.error, 1, Buffer.alloc(1025), /error text of 1025 bytes/],
    [FRAME.stdinAck, 1, u32(0), /stdin acknowledgement of 0 bytes/],
    [FRAME.stdinAck, 1, u32(1 << 20), /stdin acknowledgement/],
    [FRAME.pong, 1, Buffer.alloc(1), /pong frame of 1 bytes/],
    [FRAME.exec, 1, Buffer.alloc(0), /unknown frame type 0x01/],
  ];
  for (const [type, id, payload, msg] of bad)
    assert.throws(
      () => parseAgentFrame(type, id, payload),
      (e: unknown) => e instanceof AgentProtocolError && msg.test(e.message),
      msg.source,
    );
});

test('random bytes from a hostile agent only ever yield messages or a protocol error, within bounded memory', () => {
  for (let i = 0; i < 3000; i++) {
    const d = new AgentDecoder();
    // Half the cases start well-formed so the fuzz reaches past the first header.
    const prefix = i % 2 ? hello : Buffer.alloc(0);
    const junk = randomBytes(1 + (i % 300));
    if (i % 3 === 0 && junk.length >= 4) junk.writeUInt32LE(junk.length % 64, 0);
    if (i % 5 === 0 && junk.length > 4) junk.writeUInt8([FRAME.stdout, FRAME.exit, FRAME.started, FRAME.error][i % 4]!, 4);
    const r = d.push(Buffer.concat([prefix, junk]));
    if (r.error) assert.instance(r.error, AgentProtocolError);
    assert.ok(d.buffered <= HEADER_BYTES + MAX_AGENT_FRAME_BYTES);
  }
});

test.run();
