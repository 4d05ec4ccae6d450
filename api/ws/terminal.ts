import type { FastifyBaseLogger } from 'fastify';
import { Type, type Static } from 'typebox';
import type { RawData, WebSocket } from 'ws';
import type { ExecHandle } from '../../runtime/engine/engine.ts';
import { isDirectorError } from '../../core/errors.ts';
import type { EventSink } from '../../runtime/events.ts';
import type { ShellSession, Shells } from '../../runtime/sandbox/shell.ts';
import type { AuthService } from '../auth/service.ts';
import { actorOf, type Principal } from '../auth/types.ts';
import { SocketAuth, credentialOf, type Credential } from './auth.ts';
import type { ResolvedWsOptions } from './options.ts';
import {
  CLOSE,
  CLOSE_REASON,
  TERMINAL_MAX_CELLS,
  TERMINAL_MESSAGES,
  authenticatedMessage,
  errorMessage,
  parseMessage,
  type TerminalServerMessage,
  type WsErrorCode,
} from './protocol.ts';
import { ReadGate, SerialRunner, closeSocket, isOpen, toBuffer } from './socket.ts';

const Cells = Type.Integer({ minimum: 1, maximum: TERMINAL_MAX_CELLS });
export const TerminalQuery = Type.Object(
  {
    // The names of runtime/sandbox/shell.ts SHELLS: nothing else can be asked for.
    cmd: Type.Optional(Type.Union([Type.Literal('sh'), Type.Literal('bash')], { description: 'Shell to run; default sh' })),
    cols: Type.Optional(Cells),
    rows: Type.Optional(Cells),
  },
  { additionalProperties: false },
);
export type TerminalQueryT = Static<typeof TerminalQuery>;

/** Input a client may send before the shell runs; more is refused. */
const MAX_EARLY_INPUT_BYTES = 64 * 1024;
/** Output backpressure: stop reading the process above this many unsent bytes, resume below the low mark. */
const OUTPUT_HIGH_BYTES = 1024 * 1024;
const OUTPUT_LOW_BYTES = 256 * 1024;

export interface TerminalDeps {
  /** The runtime operation a terminal drives: an interactive shell in a sandbox. */
  shells: Shells;
  /** Where authentication failures on the socket are recorded. */
  events: EventSink;
  auth: AuthService;
  logger: FastifyBaseLogger;
  options: ResolvedWsOptions;
}

export interface TerminalRequest {
  sandboxId: string;
  ip: string;
  query: TerminalQueryT;
  credential: Credential | null;
}

/** The open terminals, for re-checking credentials and for shutdown. */
export class Terminals {
  readonly deps: TerminalDeps;
  readonly #open = new Set<TerminalSession>();

  constructor(deps: TerminalDeps) {
    this.deps = deps;
  }

  accept(ws: WebSocket, req: TerminalRequest): void {
    const t = new TerminalSession(this.deps, ws, req, () => this.#open.delete(t));
    this.#open.add(t);
    t.start(req.credential);
  }

  async revalidate(): Promise<void> {
    await Promise.all([...this.#open].map((t) => t.revalidate()));
  }

  close(): void {
    for (const t of this.#open) t.close(CLOSE.GOING_AWAY, CLOSE_REASON.shuttingDown);
  }
}

/**
 * One interactive shell in a sandbox over a WebSocket: binary frames are terminal bytes both
 * ways, JSON text frames are control. The shell runs as the sandbox user with a TTY; closing
 * the socket kills it, and its exit is reported as `{type: 'exit', exitCode}` then close 1000.
 */
export class TerminalSession {
  readonly #deps: TerminalDeps;
  readonly #ws: WebSocket;
  readonly #req: TerminalRequest;
  readonly #auth: SocketAuth;
  readonly #gate: ReadGate;
  readonly #serial: SerialRunner;
  readonly #onGone: () => void;
  #state: 'auth' | 'starting' | 'running' | 'done' = 'auth';
  #handle: ExecHandle | null = null;
  #early: Buffer[] = [];
  #earlyBytes = 0;
  #size: { cols: number; rows: number } | null;
  #closed = false;
  /** Aborted when the socket goes: a shell still starting is then killed. */
  readonly #gone = new AbortController();

  constructor(deps: TerminalDeps, ws: WebSocket, req: TerminalRequest, onGone: () => void) {
    this.#deps = deps;
    this.#ws = ws;
    this.#req = req;
    this.#onGone = onGone;
    const { cols, rows } = req.query;
    this.#size = cols !== undefined && rows !== undefined ? { cols, rows } : null;
    this.#auth = new SocketAuth({
      ws,
      auth: deps.auth,
      events: deps.events,
      logger: deps.logger,
      route: '/v1/sandboxes/:id/terminal',
      ip: req.ip,
    });
    this.#gate = new ReadGate(ws);
    this.#serial = new SerialRunner({
      pauseAt: deps.options.maxPendingMessages,
      maxPending: deps.options.maxPendingMessages * 16,
      gate: this.#gate,
      onOverflow: () => this.close(CLOSE.TOO_SLOW, CLOSE_REASON.tooManyMessages),
      onError: (err) => {
        deps.logger.error({ err, sandboxId: req.sandboxId }, 'terminal message handling failed');
        this.close(CLOSE.INTERNAL, 'internal error');
      },
    });
  }

  start(credential: Credential | null): void {
    this.#ws.on('message', (data: RawData, isBinary: boolean) => this.#serial.run(() => this.#onMessage(data, isBinary)));
    this.#ws.once('close', () => this.#teardown());
    if (credential) this.#serial.run(() => this.#login(credential));
    else this.#auth.armGrace(this.#deps.options.authGraceMs);
  }

  close(code: number, reason: string): void {
    closeSocket(this.#ws, code, reason);
    this.#teardown();
  }

  async revalidate(): Promise<void> {
    if (this.#closed || !this.#auth.principal) return;
    const p = await this.#auth.revalidate();
    if (p && !this.#closed && !this.#auth.permits('sandboxes:exec', { sandboxId: this.#req.sandboxId })) {
      this.#refuse(CLOSE.FORBIDDEN, 'AUTHORIZATION_ERROR', 'missing required scope sandboxes:exec');
    }
  }

  #send(msg: TerminalServerMessage): void {
    if (isOpen(this.#ws)) this.#ws.send(JSON.stringify(msg));
  }

  /** Tells the client why (as an error message), then closes with `code`. */
  #refuse(code: number, errorCode: WsErrorCode, message: string): void {
    this.#send(errorMessage(errorCode, message));
    this.close(code, message.slice(0, 120));
  }

  async #onMessage(data: RawData, isBinary: boolean): Promise<void> {
    if (this.#closed) return;
    if (this.#state === 'auth') {
      const parsed = isBinary ? null : parseMessage(TERMINAL_MESSAGES, toBuffer(data).toString('utf8'));
      if (!parsed?.ok || parsed.message.type !== 'auth') this.close(CLOSE.FORBIDDEN, CLOSE_REASON.authRequired);
      else await this.#login(credentialOf(parsed.message));
      return;
    }
    if (isBinary) {
      this.#input(toBuffer(data));
      return;
    }
    const parsed = parseMessage(TERMINAL_MESSAGES, toBuffer(data).toString('utf8'));
    if (!parsed.ok) {
      this.#send(parsed.error);
      return;
    }
    const m = parsed.message;
    switch (m.type) {
      case 'auth': {
        const p = await this.#auth.renew(credentialOf(m));
        if (p) this.#send(authenticatedMessage(p));
        return;
      }
      case 'resize':
        this.#size = { cols: m.cols, rows: m.rows };
        if (this.#handle) await this.#resize(this.#handle);
        return;
      case 'ping':
        this.#send({ type: 'pong' });
        return;
    }
  }

  async #login(credential: Credential): Promise<void> {
    const p = await this.#auth.login(credential);
    if (!p || this.#closed) return;
    this.#send(authenticatedMessage(p));
    if (!this.#auth.permits('sandboxes:exec', { sandboxId: this.#req.sandboxId })) {
      this.#refuse(CLOSE.FORBIDDEN, 'AUTHORIZATION_ERROR', 'missing required scope sandboxes:exec');
      return;
    }
    this.#state = 'starting';
    // Not awaited: input and resizes that arrive while the shell starts are handled (buffered) meanwhile.
    this.#open(p).catch((err: unknown) => {
      this.#deps.logger.error({ err, sandboxId: this.#req.sandboxId }, 'terminal failed');
      this.#refuse(CLOSE.INTERNAL, 'INTERNAL_ERROR', 'terminal failed');
    });
  }

  #input(buf: Buffer): void {
    if (this.#state === 'starting') {
      this.#earlyBytes += buf.length;
      if (this.#earlyBytes > MAX_EARLY_INPUT_BYTES) this.close(CLOSE.TOO_SLOW, 'too much input before the shell started');
      else this.#early.push(buf);
      return;
    }
    const stdin = this.#handle?.stdin;
    if (this.#state !== 'running' || !stdin || stdin.destroyed) return;
    if (!stdin.write(buf)) {
      // Backpressure to the client: stop reading its frames until the process takes more.
      this.#gate.hold('stdin');
      stdin.once('drain', () => this.#gate.release('stdin'));
    }
  }

  async #resize(h: ExecHandle): Promise<void> {
    if (!this.#size || !h.resize) return;
    try {
      await h.resize(this.#size.cols, this.#size.rows);
    } catch (err) {
      // The process may have just ended; the exit message follows.
      this.#deps.logger.debug({ err, sandboxId: this.#req.sandboxId }, 'terminal resize failed');
    }
  }

  async #open(p: Principal): Promise<void> {
    const { sandboxId } = this.#req;
    const caller = { workspace: p.workspace, actor: actorOf(p) };
    let session: ShellSession | null;
    try {
      session = await this.#deps.shells.open(caller, sandboxId, { shell: this.#req.query.cmd ?? 'sh', signal: this.#gone.signal });
    } catch (err) {
      // The checks execute makes: the caller's sandbox (404 otherwise), allowExec (recorded as
      // `exec_denied` when refused), and running. Anything else is the terminal failing.
      if (!isDirectorError(err)) throw err;
      if (err.code === 'NOT_FOUND') this.#refuse(CLOSE.NOT_FOUND, 'NOT_FOUND', `sandbox ${sandboxId} not found`);
      else if (err.code === 'AUTHORIZATION_ERROR')
        this.#refuse(CLOSE.FORBIDDEN, 'AUTHORIZATION_ERROR', "execution is disabled by this sandbox's security policy");
      else if (err.code === 'CONFLICT') this.#refuse(CLOSE.CONFLICT, 'CONFLICT', `sandbox ${sandboxId} is not running`);
      else throw err;
      return;
    }
    if (!session) return;
    const h = session.process;
    this.#handle = h;
    this.#pipeOutput(h);
    await this.#resize(h);
    this.#state = 'running';
    for (const buf of this.#early) this.#input(buf);
    this.#early = [];
    const result = await session.exited;
    this.#state = 'done';
    if (this.#closed) return;
    this.#send({ type: 'exit', exitCode: result.exitCode });
    this.close(CLOSE.NORMAL, 'exited');
  }

  /** Process output → binary frames, pausing the process while the client has a backlog. */
  #pipeOutput(h: ExecHandle): void {
    const out = h.stdout;
    const sent = () => {
      if (out.isPaused() && this.#ws.bufferedAmount < OUTPUT_LOW_BYTES) out.resume();
    };
    out.on('data', (chunk: Buffer) => {
      if (!isOpen(this.#ws)) return;
      this.#ws.send(chunk, { binary: true }, sent);
      if (this.#ws.bufferedAmount > OUTPUT_HIGH_BYTES) out.pause();
    });
  }

  #teardown(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#gone.abort();
    this.#auth.dispose();
    this.#early = [];
    const h = this.#handle;
    if (h && this.#state !== 'done') {
      // The process ends with the socket; its output is drained so the stream can finish.
      h.stdout.resume();
      h.kill().catch((err: unknown) => this.#deps.logger.warn({ err, sandboxId: this.#req.sandboxId }, 'terminal: kill failed'));
    }
    this.#onGone();
  }
}
