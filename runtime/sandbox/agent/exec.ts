import { constants } from 'node:os';
import { Readable, Writable } from 'node:stream';
import type { ExecExit, ExecHandle } from '../../engine/engine.ts';
import { INITIAL_WINDOW_BYTES, MAX_CHUNK_BYTES, STDIN_WINDOW_BYTES, type ExecFrame, type ExitStatus } from './protocol.ts';

export type AgentExecOptions = ExecFrame & {
  /**
   * Output the agent may send ahead of what the consumer took: {@link INITIAL_WINDOW_BYTES} (the
   * agent's own start) unless more is asked for, which is granted as soon as the exec is sent.
   * For a bulk reader whose consumer keeps up (a checkpoint's capture): a grant frame, and the
   * agent's wait for it, every quarter of this instead of every 64 KiB.
   */
  outputWindowBytes?: number;
};

/** How an execute through the agent ended. */
export interface AgentExit {
  /** The process's exit code; 128 + signal number when a signal ended it; -1 when unknown (never started, agent lost). */
  exitCode: number;
  /** The signal that ended it (`SIGKILL`), or null. */
  signal: string | null;
  /** The agent killed its process group because the timeout passed. */
  timedOut: boolean;
  /** Why it never started (`fork: EAGAIN`, the pids limit), when it did not. */
  error?: string;
  /** The errno the agent gave when it could not start the process. */
  errno?: number;
  /** The agent was lost while it ran: its outcome is unknown. */
  agentLost?: boolean;
}

/** What an exec sends through its client's connection. */
export interface ExecSink {
  stdin(data: Buffer): void;
  kill(signal: number): void;
  resize(cols: number, rows: number): void;
  grant(bytes: number): void;
}

/** Number → name, the first name for numbers with two (EAGAIN, not EWOULDBLOCK; SIGIOT is SIGABRT). */
function names(table: Record<string, number>): Map<number, string> {
  const out = new Map<number, string>();
  for (const [name, n] of Object.entries(table)) if (!out.has(n)) out.set(n, name);
  return out;
}
const SIGNAL_NAMES = names(constants.signals);
const ERRNO_NAMES = names(constants.errno);

/**
 * The largest output window an exec may ask for: output buffered per exec at most, and no more
 * than the agent queues for Director before it stops reading every exec's pipes (its TX_HIGH).
 */
const MAX_WINDOW_BYTES = 1024 * 1024;

/** An output stream that tells its exec when the consumer has taken bytes (so more may be granted). */
class Output extends Readable {
  private readonly onRead: () => void;
  constructor(onRead: () => void) {
    super();
    this.onRead = onRead;
  }
  override _read(): void {
    this.onRead();
  }
}

/**
 * One process started through the agent. An {@link ExecHandle}: `stdout`/`stderr` carry its
 * output (everything is stdout on a tty), `stdin` exists when asked for, `wait()` resolves
 * with the exit code once the process ended and its output was delivered; `exit` has the
 * whole story (signal, timeout, lost agent).
 *
 * Output is flow-controlled: the agent sends at most the exec's window (by default
 * {@link INITIAL_WINDOW_BYTES}, or its `outputWindowBytes`) more than
 * the consumer of these streams has taken, and stops reading the process's pipes meanwhile,
 * so a slow reader slows the process, not Director's memory.
 */
export class AgentExec implements ExecHandle {
  readonly id: string;
  readonly stdout: Readable;
  readonly stderr: Readable;
  readonly stdin: Writable | null;
  /** Settles once: the process's pid in the sandbox, or null when it never started. */
  readonly started: Promise<number | null>;
  readonly exit: Promise<AgentExit>;
  private readonly sink: ExecSink;
  private settleStarted!: (pid: number | null) => void;
  private settleExit!: (e: AgentExit) => void;
  private received = 0;
  private granted = INITIAL_WINDOW_BYTES;
  /** Output allowed ahead of the consumer; grants are sent in steps of a quarter of it (one small frame per 64 KiB by default). */
  private readonly window: number;
  private grantQueued = false;
  private stdinInFlight = 0;
  private stdinWaiter: (() => void) | null = null;
  private stdinClosed = false;
  private notes: string[] = [];
  private done = false;

  constructor(id: number, opts: AgentExecOptions, sink: ExecSink) {
    this.id = `agent-${id}`;
    this.sink = sink;
    this.stdout = new Output(() => this.maybeGrant());
    this.stderr = new Output(() => this.maybeGrant());
    this.started = new Promise((r) => (this.settleStarted = r));
    this.exit = new Promise((r) => (this.settleExit = r));
    this.stdin = opts.stdin || opts.tty ? this.makeStdin() : null;
    this.window = Math.min(MAX_WINDOW_BYTES, Math.max(INITIAL_WINDOW_BYTES, Math.floor(opts.outputWindowBytes ?? 0)));
  }

  /**
   * Called by the client as it sends the exec: the rest of a window larger than the agent's
   * initial one, which the client grants with it (in the same write), or 0.
   */
  opened(): number {
    const more = Math.max(0, this.window - this.granted);
    this.granted += more;
    return more;
  }

  get ended(): boolean {
    return this.done;
  }

  async wait(): Promise<ExecExit> {
    const e = await this.exit;
    return { exitCode: e.exitCode, timedOut: e.timedOut };
  }

  /** Sends `signal` (default SIGKILL) to the process group; SIGKILL also reaches processes that left it but kept its marker. */
  async kill(signal: string | number = 'SIGKILL'): Promise<void> {
    if (this.done) return;
    const n = typeof signal === 'number' ? signal : (constants.signals as Record<string, number>)[signal];
    if (n === undefined) throw new RangeError(`unknown signal ${signal}`);
    this.sink.kill(n);
  }

  async resize(cols: number, rows: number): Promise<void> {
    if (!this.done) this.sink.resize(cols, rows);
  }

  // ---- driven by the client

  onStarted(pid: number): void {
    this.settleStarted(pid);
  }

  onOutput(stream: 'stdout' | 'stderr', data: Buffer): void {
    this.received += data.length;
    if (this.received > this.granted) throw new Error(`exec ${this.id} sent ${this.received - this.granted} bytes past its window`);
    this[stream].push(data);
    this.maybeGrant();
  }

  onStdinAck(bytes: number): void {
    if (bytes > this.stdinInFlight) throw new Error(`exec ${this.id} acknowledged ${bytes} stdin bytes of ${this.stdinInFlight} sent`);
    this.stdinInFlight -= bytes;
    const w = this.stdinWaiter;
    this.stdinWaiter = null;
    w?.();
  }

  note(message: string): void {
    if (this.notes.length < 4) this.notes.push(message);
  }

  onExit(status: ExitStatus): void {
    if (status.kind === 'code') this.finish({ exitCode: status.code, signal: null, timedOut: status.timedOut });
    else if (status.kind === 'signal')
      this.finish({
        exitCode: 128 + status.signal,
        signal: SIGNAL_NAMES.get(status.signal) ?? `SIG${status.signal}`,
        timedOut: status.timedOut,
      });
    else {
      const why = [ERRNO_NAMES.get(status.errno) ?? `errno ${status.errno}`, ...this.notes].join('; ');
      this.finish({
        exitCode: -1,
        signal: null,
        timedOut: false,
        error: `the agent could not start the process: ${why}`,
        errno: status.errno,
      });
    }
  }

  onLost(detail: string): void {
    this.finish({ exitCode: -1, signal: null, timedOut: false, agentLost: true, error: detail });
  }

  private finish(e: AgentExit): void {
    if (this.done) return;
    this.done = true;
    this.settleStarted(null);
    this.stdout.push(null);
    this.stderr.push(null);
    this.stdinWaiter?.();
    this.settleExit(e);
  }

  /** Grants what the consumer took, a quarter window at a time, once per tick. */
  private maybeGrant(): void {
    if (this.grantQueued || this.done) return;
    this.grantQueued = true;
    queueMicrotask(() => {
      this.grantQueued = false;
      if (this.done) return;
      const consumed = this.received - this.stdout.readableLength - this.stderr.readableLength;
      const grant = consumed + this.window - this.granted;
      if (grant >= this.window / 4) {
        this.granted += grant;
        this.sink.grant(grant);
      }
    });
  }

  private makeStdin(): Writable {
    return new Writable({
      highWaterMark: MAX_CHUNK_BYTES,
      write: (chunk: Buffer, _enc, cb) => {
        this.sendStdin(chunk).then(() => cb(), cb);
      },
      final: (cb) => {
        this.closeStdin();
        cb();
      },
      // A stdin destroyed before its end (a failing source in a pipeline) closes the process's
      // input as well, as a `docker exec` whose attached stream goes away does: otherwise the
      // process would wait for input that never comes.
      destroy: (err, cb) => {
        this.closeStdin();
        cb(err);
      },
    });
  }

  /** Sends end of input once; nothing of this exec's stdin is sent after it. */
  private closeStdin(): void {
    if (this.stdinClosed) return;
    this.stdinClosed = true;
    const w = this.stdinWaiter;
    this.stdinWaiter = null;
    w?.();
    if (!this.done) this.sink.stdin(Buffer.alloc(0));
  }

  /** Sends stdin within the agent's window; bytes for a process that has ended, or after end of input, are dropped. */
  private async sendStdin(data: Buffer): Promise<void> {
    for (let off = 0; off < data.length && !this.done && !this.stdinClosed;) {
      const room = STDIN_WINDOW_BYTES - this.stdinInFlight;
      if (room <= 0) {
        await new Promise<void>((r) => (this.stdinWaiter = r));
        continue;
      }
      const piece = data.subarray(off, off + Math.min(room, MAX_CHUNK_BYTES));
      this.stdinInFlight += piece.length;
      this.sink.stdin(piece);
      off += piece.length;
    }
  }
}
