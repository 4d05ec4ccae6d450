import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { constants } from 'node:os';
import { AgentExec, type AgentExecOptions, type ExecSink } from './exec.ts';
import {
  AgentDecoder,
  type AgentMessage,
  AgentProtocolError,
  PROTOCOL_VERSION,
  encodeExec,
  encodeKill,
  encodePing,
  encodeResize,
  encodeStdin,
  encodeWindow,
} from './protocol.ts';

/**
 * Why an agent can no longer be used: its connection closed (the agent exited or was killed),
 * it sent something that is not the protocol, or it stopped answering (stopped by a signal).
 * Any of them means: run the sandbox's next executes another way (`docker exec`) and say so.
 */
export type AgentLostReason = 'closed' | 'protocol' | 'unresponsive';

export interface AgentLost {
  reason: AgentLostReason;
  detail: string;
}

export interface AgentHello {
  protocol: number;
  /** The agent's pid inside the sandbox. */
  pid: number;
  /** The agent runs the sandbox's own command (and exits with it). */
  hasCommand: boolean;
}

export class AgentLostError extends Error {
  readonly reason: AgentLostReason | 'closed_by_director';
  constructor(reason: AgentLostReason | 'closed_by_director', detail: string) {
    super(`agent unavailable (${reason}): ${detail}`);
    this.name = 'AgentLostError';
    this.reason = reason;
  }
}

export interface AgentClientOptions {
  /** Extra time past an exec's own timeout before the agent is checked for life. Default 2000 ms. */
  unresponsiveGraceMs?: number;
  /** How long a ping may take before the agent counts as unresponsive. Default 1000 ms. */
  pingTimeoutMs?: number;
}

const SIGNALS = constants.signals as Record<string, number>;

/** Signal number for a name (`SIGTERM`, `TERM`) or a number. */
export function signalNumber(signal: string | number): number {
  if (typeof signal === 'number') return signal;
  const n = SIGNALS[signal.startsWith('SIG') ? signal : `SIG${signal}`];
  if (n === undefined) throw new RangeError(`unknown signal ${signal}`);
  return n;
}

/**
 * Director's end of one agent connection (accepted by {@link AgentChannel}). Many executes
 * run at once over it, each an {@link AgentExec} (an `ExecHandle`, so it can stand in
 * for a `docker exec`). Emits `lost` once when the agent becomes unusable; every execute
 * still running then ends with `agentLost`. Closing it from Director's side emits nothing.
 */
export class AgentClient extends EventEmitter<{ lost: [AgentLost] }> implements AsyncDisposable {
  /** Resolves with the agent's hello (rejects if the connection ends or misbehaves first). */
  readonly ready: Promise<AgentHello>;
  private readonly socket: Socket;
  private readonly decoder = new AgentDecoder();
  private readonly execs = new Map<number, AgentExec>();
  private readonly pings = new Map<number, { answered: () => void; failed: (err: Error) => void }>();
  private readonly opts: Required<AgentClientOptions>;
  private hello: AgentHello | null = null;
  private settleReady!: { resolve: (h: AgentHello) => void; reject: (e: Error) => void };
  private nextId = 1;
  private nextPing = 1;
  private down: AgentLostError | null = null;
  private lostAs: AgentLost | null = null;

  constructor(socket: Socket, opts: AgentClientOptions = {}) {
    super();
    this.socket = socket;
    this.opts = { unresponsiveGraceMs: opts.unresponsiveGraceMs ?? 2000, pingTimeoutMs: opts.pingTimeoutMs ?? 1000 };
    this.ready = new Promise((resolve, reject) => (this.settleReady = { resolve, reject }));
    // Observed here so an unawaited `ready` never becomes an unhandled rejection.
    this.ready.catch(() => undefined);
    socket.setNoDelay?.(true);
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', (err) => this.lose('closed', err.message));
    socket.on('close', () => this.lose('closed', 'the connection closed'));
  }

  /** Whether executes can be sent (the hello arrived and the agent is not lost). */
  get alive(): boolean {
    return this.hello !== null && this.down === null;
  }

  /** Why the agent was lost (null while it is usable, and after Director closed the connection itself). */
  get lost(): AgentLost | null {
    return this.lostAs;
  }

  /** Executes running now. */
  get running(): number {
    return this.execs.size;
  }

  /**
   * Starts a process in the sandbox. Throws {@link AgentLostError} when the agent is not
   * usable (nothing was sent: the caller may run the command another way) and
   * `AgentRequestError` for a request the protocol cannot carry.
   */
  exec(opts: AgentExecOptions): AgentExec {
    if (this.down) throw this.down;
    if (!this.hello) throw new AgentLostError('closed', 'the agent has not said hello');
    let id = this.nextId;
    while (this.execs.has(id)) id = id >= 0xffff_ffff ? 1 : id + 1;
    this.nextId = id >= 0xffff_ffff ? 1 : id + 1;
    const frame = encodeExec(id, opts);
    const exec = new AgentExec(id, opts, this.sinkFor(id));
    this.execs.set(id, exec);
    // A larger output window is granted with the exec: one write (one syscall) for both frames.
    const more = exec.opened();
    this.socket.write(more ? Buffer.concat([frame, encodeWindow(id, more)]) : frame);
    if (opts.timeoutMs) this.watch(exec, opts.timeoutMs);
    return exec;
  }

  /** Round trip to the agent, in ms; rejects if it does not answer within the ping timeout. */
  ping(timeoutMs = this.opts.pingTimeoutMs): Promise<number> {
    if (this.down) return Promise.reject(this.down);
    const id = this.nextPing;
    this.nextPing = (this.nextPing % 0xffff_ffff) + 1;
    const t0 = performance.now();
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pings.delete(id);
        reject(new AgentLostError('unresponsive', `no answer to a ping within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pings.set(id, {
        answered: () => {
          clearTimeout(timer);
          resolve(performance.now() - t0);
        },
        failed: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      });
      this.socket.write(encodePing(id));
    });
  }

  /** Closes the connection from Director's side: running executes end with `agentLost`. */
  async close(): Promise<void> {
    this.shut(new AgentLostError('closed_by_director', 'closed by Director'));
    this.socket.destroy();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private sinkFor(id: number): ExecSink {
    const send = (frame: Buffer) => {
      if (!this.down && this.execs.has(id)) this.socket.write(frame);
    };
    return {
      stdin: (data) => send(encodeStdin(id, data)),
      kill: (signal) => send(encodeKill(id, signal)),
      resize: (cols, rows) => send(encodeResize(id, cols, rows)),
      grant: (bytes) => send(encodeWindow(id, bytes)),
    };
  }

  /** Past an exec's own timeout (which the agent enforces) the agent must still answer. */
  private watch(exec: AgentExec, timeoutMs: number): void {
    const check = () => {
      if (exec.ended || this.down) return;
      this.ping().then(
        () => arm(this.opts.unresponsiveGraceMs),
        (err: Error) => this.lose('unresponsive', `an exec outlived its timeout and ${err.message}`),
      );
    };
    const arm = (ms: number) => {
      const t = setTimeout(check, ms);
      t.unref();
      void exec.exit.finally(() => clearTimeout(t));
    };
    arm(timeoutMs + this.opts.unresponsiveGraceMs);
  }

  private receive(chunk: Buffer): void {
    if (this.down) return;
    const { messages, error } = this.decoder.push(chunk);
    for (const m of messages) {
      try {
        this.dispatch(m);
      } catch (err) {
        this.lose('protocol', (err as Error).message);
        return;
      }
      if (this.down) return;
    }
    if (error) this.lose('protocol', error.message);
  }

  private dispatch(m: AgentMessage): void {
    if (m.type === 'hello') {
      if (this.hello) throw new AgentProtocolError('a second hello');
      if (m.protocol !== PROTOCOL_VERSION) throw new AgentProtocolError(`protocol ${m.protocol} (Director speaks ${PROTOCOL_VERSION})`);
      this.hello = { protocol: m.protocol, pid: m.pid, hasCommand: m.hasCommand };
      this.settleReady.resolve(this.hello);
      return;
    }
    if (!this.hello) throw new AgentProtocolError(`${m.type} before hello`);
    if (m.type === 'pong') {
      this.pings.get(m.id)?.answered();
      this.pings.delete(m.id);
      return;
    }
    const exec = this.execs.get(m.id);
    if (m.type === 'error') {
      // Diagnostics only: a failed start also arrives as an exit.
      exec?.note(m.message);
      return;
    }
    if (!exec) throw new AgentProtocolError(`${m.type} for exec ${m.id}, which is not running`);
    switch (m.type) {
      case 'started':
        exec.onStarted(m.pid);
        return;
      case 'stdout':
      case 'stderr':
        exec.onOutput(m.type, m.data);
        return;
      case 'stdinAck':
        exec.onStdinAck(m.bytes);
        return;
      case 'exit':
        this.execs.delete(m.id);
        exec.onExit(m.exit);
        return;
    }
  }

  private lose(reason: AgentLostReason, detail: string): void {
    if (this.down) return;
    const err = new AgentLostError(reason, detail);
    this.lostAs = { reason, detail };
    this.shut(err);
    this.socket.destroy();
    this.emit('lost', { reason, detail });
  }

  private shut(err: AgentLostError): void {
    if (this.down) return;
    this.down = err;
    this.settleReady.reject(err);
    for (const exec of this.execs.values()) exec.onLost(err.message);
    this.execs.clear();
    for (const p of this.pings.values()) p.failed(err);
    this.pings.clear();
  }
}
