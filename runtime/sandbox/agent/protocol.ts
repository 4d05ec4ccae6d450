/**
 * The wire format between Director and its agent in a sandbox (images/agent/, docs/agent.md):
 * frames of a 9-byte header — u32 payload length, u8 type, u32 id, little-endian — and a
 * payload. Pure: encoders for what Director sends, a decoder for what the agent sends.
 *
 * What arrives from a sandbox is hostile: the decoder refuses any frame whose length, type or
 * payload is not exactly one of the shapes below, and never holds more than one frame of at
 * most {@link MAX_AGENT_FRAME_BYTES}. A refusal is an {@link AgentProtocolError}; the caller
 * drops the connection (the agent is then treated as gone).
 */

export const PROTOCOL_VERSION = 1;
export const HEADER_BYTES = 9;
/** Largest payload accepted from an agent (its output chunks are at most {@link MAX_CHUNK_BYTES}). */
export const MAX_AGENT_FRAME_BYTES = 64 * 1024;
/** Largest payload Director sends (an exec with a long argv or environment); the agent refuses larger. */
export const MAX_HOST_FRAME_BYTES = 8 * 1024 * 1024;
/** Largest output chunk an agent sends, and the largest stdin chunk Director sends. */
export const MAX_CHUNK_BYTES = 64 * 1024;
/** Output bytes an exec may send before Director grants more ({@link encodeWindow}). */
export const INITIAL_WINDOW_BYTES = 256 * 1024;
/** Stdin bytes Director may have in flight per exec before the agent acknowledges them. */
export const STDIN_WINDOW_BYTES = 256 * 1024;
/** Longest error text accepted from an agent. */
export const MAX_ERROR_BYTES = 1024;

export const FRAME = {
  exec: 0x01,
  stdin: 0x02,
  kill: 0x03,
  resize: 0x04,
  window: 0x05,
  ping: 0x06,
  hello: 0x81,
  started: 0x82,
  stdout: 0x83,
  stderr: 0x84,
  exit: 0x85,
  error: 0x86,
  stdinAck: 0x87,
  pong: 0x88,
} as const;

/** What an agent sends. `id` is the exec's (0 for the connection). */
export type AgentMessage =
  | { type: 'hello'; protocol: number; pid: number; hasCommand: boolean }
  | { type: 'started'; id: number; pid: number }
  | { type: 'stdout' | 'stderr'; id: number; data: Buffer }
  | { type: 'exit'; id: number; exit: ExitStatus }
  | { type: 'error'; id: number; message: string }
  | { type: 'stdinAck'; id: number; bytes: number }
  | { type: 'pong'; id: number };

/** How an exec ended: an exit code, a signal, or it never started (`errno` from fork, pipe ...). */
export type ExitStatus =
  | { kind: 'code'; code: number; timedOut: boolean }
  | { kind: 'signal'; signal: number; timedOut: boolean }
  | { kind: 'failed'; errno: number };

export interface ExecFrame {
  argv: readonly string[];
  /** Added to (and overriding) the sandbox's environment for this process only. */
  env?: Readonly<Record<string, string>>;
  /** Absolute; absent: the container's working directory. */
  workdir?: string;
  /** The agent kills the process group after this long; 0 or absent: never. */
  timeoutMs?: number;
  /** Open a stdin pipe (otherwise stdin is /dev/null). */
  stdin?: boolean;
  /** Run on a pty of this size (output arrives as stdout). */
  tty?: { cols: number; rows: number };
  /**
   * Keep running if the connection to the agent is lost (Director killed or shut down): stdin
   * is closed, output is discarded, the timeout still applies. Otherwise the agent kills it.
   * For work that must not stop half-way (a restore's rename swap).
   */
  finishOnDisconnect?: boolean;
  /**
   * `argv` is the agent's own `tree` mode (`[binary, 'tree', ...]`, the checkpoint reader): run
   * by a fork of the agent that calls it directly, without execve (docs/agent.md). No tty.
   */
  tree?: boolean;
}

/** Bits of the exec frame's `flags` byte. */
export const EXEC_FLAG = { tty: 1, stdin: 2, finishOnDisconnect: 4, tree: 8 } as const;

export class AgentProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AgentProtocolError';
  }
}

/** A request Director cannot send (the caller's fault, before anything reached the agent). */
export class AgentRequestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AgentRequestError';
  }
}

const ENV_KEY = /^[^=\0]+$/;
const U32 = 0xffff_ffff;

function frame(type: number, id: number, payload: Buffer | null): Buffer {
  const n = payload?.length ?? 0;
  const out = Buffer.allocUnsafe(HEADER_BYTES + n);
  out.writeUInt32LE(n, 0);
  out.writeUInt8(type, 4);
  out.writeUInt32LE(id, 5);
  payload?.copy(out, HEADER_BYTES);
  return out;
}

const u32 = (v: number): Buffer => {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32LE(v, 0);
  return b;
};

function str(s: string, what: string): Buffer[] {
  if (s.includes('\0')) throw new AgentRequestError(`${what} contains a NUL byte`);
  const b = Buffer.from(s, 'utf8');
  return [u32(b.length), b];
}

function checkId(id: number): void {
  if (!Number.isInteger(id) || id < 1 || id > U32) throw new AgentRequestError(`exec id ${id} is not a u32 above 0`);
}

export function encodeExec(id: number, req: ExecFrame): Buffer {
  checkId(id);
  if (req.argv.length === 0) throw new AgentRequestError('argv is empty');
  const timeoutMs = req.timeoutMs ?? 0;
  if (!Number.isInteger(timeoutMs) || timeoutMs < 0 || timeoutMs > U32) throw new AgentRequestError('timeoutMs is not a u32');
  if (req.workdir !== undefined && !req.workdir.startsWith('/')) throw new AgentRequestError('workdir is not absolute');
  if (req.tree && (req.tty || req.argv[1] !== 'tree'))
    throw new AgentRequestError("the agent's own tree runs `[binary, 'tree', ...]` without a tty");
  const head = Buffer.alloc(9);
  head.writeUInt8(
    (req.tty ? EXEC_FLAG.tty : 0) |
      (req.stdin ? EXEC_FLAG.stdin : 0) |
      (req.finishOnDisconnect ? EXEC_FLAG.finishOnDisconnect : 0) |
      (req.tree ? EXEC_FLAG.tree : 0),
    0,
  );
  head.writeUInt32LE(timeoutMs, 1);
  head.writeUInt16LE(clampU16(req.tty?.cols ?? 0), 5);
  head.writeUInt16LE(clampU16(req.tty?.rows ?? 0), 7);
  const parts: Buffer[] = [head, u32(req.argv.length)];
  for (const a of req.argv) parts.push(...str(a, 'an argument'));
  const env = Object.entries(req.env ?? {});
  parts.push(u32(env.length));
  for (const [k, v] of env) {
    if (!ENV_KEY.test(k)) throw new AgentRequestError(`environment key ${JSON.stringify(k)} is not valid`);
    parts.push(...str(`${k}=${v}`, `environment value of ${k}`));
  }
  parts.push(...str(req.workdir ?? '', 'workdir'));
  const payload = Buffer.concat(parts);
  if (payload.length > MAX_HOST_FRAME_BYTES)
    throw new AgentRequestError(`exec request is ${payload.length} bytes (at most ${MAX_HOST_FRAME_BYTES})`);
  return frame(FRAME.exec, id, payload);
}

const clampU16 = (n: number): number => Math.max(0, Math.min(0xffff, Math.trunc(n)));

/** One stdin chunk (at most {@link MAX_CHUNK_BYTES}); an empty one closes the process's stdin. */
export function encodeStdin(id: number, data: Buffer): Buffer {
  checkId(id);
  if (data.length > MAX_CHUNK_BYTES) throw new AgentRequestError('stdin chunk too large');
  return frame(FRAME.stdin, id, data);
}

export function encodeKill(id: number, signal: number): Buffer {
  checkId(id);
  if (!Number.isInteger(signal) || signal < 1 || signal > 64) throw new AgentRequestError(`signal ${signal} out of range`);
  return frame(FRAME.kill, id, Buffer.from([signal]));
}

export function encodeResize(id: number, cols: number, rows: number): Buffer {
  checkId(id);
  const p = Buffer.allocUnsafe(4);
  p.writeUInt16LE(clampU16(cols), 0);
  p.writeUInt16LE(clampU16(rows), 2);
  return frame(FRAME.resize, id, p);
}

/** Grants an exec `bytes` more output. */
export function encodeWindow(id: number, bytes: number): Buffer {
  checkId(id);
  if (!Number.isInteger(bytes) || bytes < 1 || bytes > U32) throw new AgentRequestError('window grant out of range');
  return frame(FRAME.window, id, u32(bytes));
}

export function encodePing(id: number): Buffer {
  return frame(FRAME.ping, id >>> 0, null);
}

const TYPE_NAMES = new Map<number, AgentMessage['type']>([
  [FRAME.hello, 'hello'],
  [FRAME.started, 'started'],
  [FRAME.stdout, 'stdout'],
  [FRAME.stderr, 'stderr'],
  [FRAME.exit, 'exit'],
  [FRAME.error, 'error'],
  [FRAME.stdinAck, 'stdinAck'],
  [FRAME.pong, 'pong'],
]);

/** Parses one frame's payload; throws {@link AgentProtocolError} unless it has exactly its type's shape. */
export function parseAgentFrame(type: number, id: number, p: Buffer): AgentMessage {
  const name = TYPE_NAMES.get(type);
  const size = (n: number) => {
    if (p.length !== n) throw new AgentProtocolError(`${name} frame of ${p.length} bytes (expected ${n})`);
  };
  const execId = () => {
    if (id === 0) throw new AgentProtocolError(`${name} frame for exec 0`);
  };
  switch (name) {
    case 'hello':
      size(12);
      if (id !== 0) throw new AgentProtocolError('hello frame with an exec id');
      return { type: 'hello', protocol: p.readUInt32LE(0), pid: p.readUInt32LE(4), hasCommand: (p.readUInt32LE(8) & 1) === 1 };
    case 'started':
      size(4);
      execId();
      return { type: 'started', id, pid: p.readUInt32LE(0) };
    case 'stdout':
    case 'stderr':
      execId();
      if (p.length === 0 || p.length > MAX_CHUNK_BYTES) throw new AgentProtocolError(`${name} chunk of ${p.length} bytes`);
      return { type: name, id, data: p };
    case 'exit': {
      size(6);
      execId();
      const kind = p.readUInt8(0);
      const value = p.readInt32LE(1);
      const flag = p.readUInt8(5);
      if (flag > 1) throw new AgentProtocolError('exit frame with an unknown flag');
      const timedOut = flag === 1;
      if (kind === 0 && value >= 0 && value <= 255) return { type: 'exit', id, exit: { kind: 'code', code: value, timedOut } };
      if (kind === 1 && value >= 1 && value <= 64) return { type: 'exit', id, exit: { kind: 'signal', signal: value, timedOut } };
      if (kind === 2 && value >= 1 && value <= 4095 && !timedOut) return { type: 'exit', id, exit: { kind: 'failed', errno: value } };
      throw new AgentProtocolError(`exit frame with kind ${kind} and value ${value}`);
    }
    case 'error':
      if (p.length > MAX_ERROR_BYTES) throw new AgentProtocolError(`error text of ${p.length} bytes`);
      return { type: 'error', id, message: p.toString('utf8').replace(/[^\x20-\x7e]/g, '?') };
    case 'stdinAck': {
      size(4);
      execId();
      const bytes = p.readUInt32LE(0);
      if (bytes === 0 || bytes > STDIN_WINDOW_BYTES) throw new AgentProtocolError(`stdin acknowledgement of ${bytes} bytes`);
      return { type: 'stdinAck', id, bytes };
    }
    case 'pong':
      size(0);
      return { type: 'pong', id };
    case undefined:
      throw new AgentProtocolError(`unknown frame type 0x${type.toString(16).padStart(2, '0')}`);
  }
}

/**
 * Splits the agent's byte stream into messages. Holds at most one partial frame; a header
 * announcing more than {@link MAX_AGENT_FRAME_BYTES}, or a type that does not exist, is
 * refused before its payload arrives. After a refusal the decoder stays failed (the stream
 * has no resynchronisation point): `push` returns the messages completed before the bad
 * frame, and the error.
 *
 * Each payload byte is copied once, into a buffer of exactly its frame's payload (the message
 * outlives the chunk it came in, queued in a stream, and must not pin it). The chunks of a frame
 * not complete yet are kept as they are until it is (so a pushed chunk must not be reused by the
 * caller: a socket's `data` chunks never are): concatenating them on every read copied a
 * 64 KiB output frame three times (socket reads rarely end on a frame boundary), and the
 * allocations cost more than the copies (0.5-8 ms per MB of output here, depending on the GC).
 */
export class AgentDecoder {
  /** Received bytes not decoded yet: `chunks[0]` from `offset` on, then the other chunks whole. */
  private chunks: Buffer[] = [];
  private offset = 0;
  private pendingBytes = 0;
  private readonly header = Buffer.alloc(HEADER_BYTES);
  private failed: AgentProtocolError | null = null;

  push(chunk: Buffer): { messages: AgentMessage[]; error: AgentProtocolError | null } {
    const messages: AgentMessage[] = [];
    if (this.failed) return { messages, error: this.failed };
    if (chunk.length) {
      this.chunks.push(chunk);
      this.pendingBytes += chunk.length;
    }
    try {
      while (this.pendingBytes >= HEADER_BYTES) {
        const head = this.peekHeader();
        const len = head.readUInt32LE(0);
        const type = head.readUInt8(4);
        if (len > MAX_AGENT_FRAME_BYTES) throw new AgentProtocolError(`frame of ${len} bytes (at most ${MAX_AGENT_FRAME_BYTES})`);
        if (!TYPE_NAMES.has(type)) throw new AgentProtocolError(`unknown frame type 0x${type.toString(16).padStart(2, '0')}`);
        if (this.pendingBytes < HEADER_BYTES + len) break;
        const id = head.readUInt32LE(5);
        this.take(null, HEADER_BYTES);
        const payload = Buffer.allocUnsafe(len);
        this.take(payload, len);
        messages.push(parseAgentFrame(type, id, payload));
      }
    } catch (err) {
      this.failed = err instanceof AgentProtocolError ? err : new AgentProtocolError(String(err));
      this.chunks = [];
      this.offset = 0;
      this.pendingBytes = 0;
      return { messages, error: this.failed };
    }
    return { messages, error: null };
  }

  /** The next header's bytes (a view into the first chunk when it holds them whole). */
  private peekHeader(): Buffer {
    const first = this.chunks[0]!;
    if (first.length - this.offset >= HEADER_BYTES) return first.subarray(this.offset, this.offset + HEADER_BYTES);
    let at = 0;
    for (let i = 0, off = this.offset; at < HEADER_BYTES; i++, off = 0) at += this.chunks[i]!.copy(this.header, at, off);
    return this.header;
  }

  /** Consumes `n` pending bytes, copying them into `into` when given. */
  private take(into: Buffer | null, n: number): void {
    this.pendingBytes -= n;
    let at = 0;
    while (at < n) {
      const first = this.chunks[0]!;
      const k = Math.min(n - at, first.length - this.offset);
      if (into) first.copy(into, at, this.offset, this.offset + k);
      at += k;
      this.offset += k;
      if (this.offset === first.length) {
        this.chunks.shift();
        this.offset = 0;
      }
    }
  }

  /** Bytes held of a frame not complete yet. */
  get buffered(): number {
    return this.pendingBytes;
  }
}
