import { EventEmitter } from 'node:events';
import { chmod, chown, mkdir, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import path from 'node:path';
import { AgentClient, AgentLostError, type AgentClientOptions } from './client.ts';

/** The socket's name inside a sandbox's channel directory. */
export const AGENT_SOCKET_NAME = 'agent.sock';
/** sun_path holds 108 bytes with its NUL. */
const MAX_SOCKET_PATH = 107;
/** Refused connections are reported at most this often per sandbox (the first one at once). */
export const TAMPER_REPORT_INTERVAL_MS = 1000;

/** A connection to a sandbox's channel other than its agent's one: a sandbox process trying to pose as the agent. */
export interface AgentTamper {
  /** Refused connections since the last report. */
  attempts: number;
  /** Refused connections over the channel's life. */
  total: number;
  /** Whether the agent had connected before (false: none was expected, e.g. after a Director restart). */
  agentConnected: boolean;
}

export interface AgentChannelOptions {
  /** Directory of every sandbox's channel directory; created owner-only. */
  baseDir: string;
  sandboxId: string;
  /** The sandbox user: the socket is given to it (mode 0600) when Director may chown, else made 0666 (the directory chain guards it). */
  uid?: number;
  gid?: number;
  /**
   * false: no agent will connect (a sandbox adopted after a Director restart, whose agent lost
   * its connection and never reconnects): every connection is refused and reported.
   */
  expectAgent?: boolean;
  client?: AgentClientOptions;
}

/**
 * The host end of one sandbox's agent channel: a Unix socket that Director listens on, in a
 * directory of its own that is bind-mounted read-only into that sandbox only
 * (`AGENT_MOUNT.channelDir`). The agent connects once, before any code of the sandbox runs;
 * that first connection is the agent's. Every later one is refused and reported as
 * `tampered`: after the agent connected, only a sandbox process can be knocking. Open it
 * before the container is created, wait for {@link agent} once it started.
 */
export class AgentChannel extends EventEmitter<{ tampered: [AgentTamper] }> implements AsyncDisposable {
  /** The host directory to mount into the sandbox. */
  readonly dir: string;
  readonly socketPath: string;
  private readonly server: Server;
  private readonly opts: AgentChannelOptions;
  private readonly connected: Promise<AgentClient>;
  private accept: ((c: AgentClient) => void) | null = null;
  private current: AgentClient | null = null;
  private refused = 0;
  private unreported = 0;
  private lastReportMs = -Infinity;
  private reportTimer: NodeJS.Timeout | null = null;
  private closed = false;

  private constructor(dir: string, opts: AgentChannelOptions) {
    super();
    this.dir = dir;
    this.socketPath = path.join(dir, AGENT_SOCKET_NAME);
    this.opts = opts;
    this.connected = new Promise((resolve) => (this.accept = resolve));
    this.server = createServer((s) => this.onConnection(s));
  }

  /** Makes the sandbox's directory (replacing a stale one) and listens in it. */
  static async open(opts: AgentChannelOptions): Promise<AgentChannel> {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(opts.sandboxId))
      throw new Error(`sandbox id ${JSON.stringify(opts.sandboxId)} cannot name a channel`);
    const base = path.resolve(opts.baseDir);
    const dir = path.join(base, opts.sandboxId);
    const socketPath = path.join(dir, AGENT_SOCKET_NAME);
    if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH)
      throw new Error(`agent socket path ${socketPath} is longer than ${MAX_SOCKET_PATH} bytes: choose a shorter channel directory`);
    await mkdir(base, { recursive: true, mode: 0o700 });
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { mode: 0o755 });
    const ch = new AgentChannel(dir, opts);
    await new Promise<void>((resolve, reject) => {
      ch.server.once('error', reject);
      ch.server.listen(socketPath, () => {
        ch.server.off('error', reject);
        resolve();
      });
    });
    try {
      await chown(socketPath, opts.uid ?? 0, opts.gid ?? opts.uid ?? 0);
      await chmod(socketPath, 0o600);
    } catch {
      await chmod(socketPath, 0o666);
    }
    return ch;
  }

  /** The connected agent, once it said hello; rejects after `timeoutMs` or if its connection fails first. */
  async agent(timeoutMs = 5000): Promise<AgentClient> {
    if (this.opts.expectAgent === false) throw new AgentLostError('closed', 'no agent is expected on this channel');
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new AgentLostError('unresponsive', `no agent connected within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      const client = await Promise.race([this.connected, timeout]);
      await Promise.race([client.ready, timeout]);
      return client;
    } finally {
      clearTimeout(timer);
    }
  }

  /** The agent's client once it connected (whether or not it is still alive), else null. */
  get client(): AgentClient | null {
    return this.current;
  }

  /** Connections refused so far. */
  get refusedConnections(): number {
    return this.refused;
  }

  /** Stops listening, closes the agent's connection and removes the directory. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.reportTimer) clearTimeout(this.reportTimer);
    this.report();
    await this.current?.close();
    await new Promise<void>((r) => this.server.close(() => r()));
    await rm(this.dir, { recursive: true, force: true });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private onConnection(socket: Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    if (this.accept && this.opts.expectAgent !== false) {
      const client = new AgentClient(socket, this.opts.client);
      this.current = client;
      this.accept(client);
      this.accept = null;
      return;
    }
    // Never read: whatever it would say is not listened to.
    socket.destroy();
    this.refused++;
    this.unreported++;
    const waitMs = this.lastReportMs + TAMPER_REPORT_INTERVAL_MS - performance.now();
    if (waitMs <= 0) this.report();
    else if (!this.reportTimer) {
      this.reportTimer = setTimeout(() => {
        this.reportTimer = null;
        this.report();
      }, waitMs);
      this.reportTimer.unref();
    }
  }

  private report(): void {
    if (this.unreported === 0) return;
    const attempts = this.unreported;
    this.unreported = 0;
    this.lastReportMs = performance.now();
    this.emit('tampered', { attempts, total: this.refused, agentConnected: this.current !== null });
  }
}
