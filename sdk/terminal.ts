import { CLOSE, bytesOf, errorOfClose, isErrorMessage, type ErrorMessage } from './socket.ts';
import type { DirectorApiError } from './errors.ts';
import type { Transport, WebSocketLike } from './transport.ts';

export interface TerminalOptions {
  /** `sh` (default) or `bash`: the shells the API offers. */
  shell?: 'sh' | 'bash';
  /** Initial size in character cells. */
  cols?: number;
  rows?: number;
}

/**
 * An interactive shell in a sandbox over the API's terminal socket
 * (`/v1/sandboxes/{id}/terminal`): bytes both ways in binary frames, control (`resize`) as JSON,
 * the exit status in an `exit` message. Input written before the socket is authenticated is
 * kept and sent once it is.
 */
export class Terminal {
  /**
   * The shell's exit code (null when {@link close} ended the session first); rejects with the
   * API's error when the terminal was refused or dropped.
   */
  readonly exited: Promise<number | null>;
  readonly #ws: WebSocketLike;
  readonly #listeners = new Set<(bytes: Uint8Array) => void>();
  #pending: (string | Uint8Array)[] = [];
  #authenticated = false;
  #closedByClient = false;

  private constructor(ws: WebSocketLike, exited: Promise<number | null>) {
    this.#ws = ws;
    this.exited = exited;
    // Callers that only listen for output must not be left with an unhandled rejection.
    this.exited.catch(() => undefined);
  }

  /** Opens the terminal; resolves once the server accepted the credentials. */
  static open(transport: Transport, sandboxId: string, opts: TerminalOptions = {}): Promise<Terminal> {
    const url = transport.wsUrl(`/v1/sandboxes/${encodeURIComponent(sandboxId)}/terminal`, {
      cmd: opts.shell,
      cols: opts.cols,
      rows: opts.rows,
    });
    const ws = transport.openSocket(url);
    ws.binaryType = 'arraybuffer';
    let exitCode: number | null = null;
    let lastError: ErrorMessage | null = null;
    let settleOpen: { resolve: (t: Terminal) => void; reject: (e: DirectorApiError) => void };
    const opened = new Promise<Terminal>((resolve, reject) => (settleOpen = { resolve, reject }));
    let settleExit: { resolve: (code: number | null) => void; reject: (e: DirectorApiError) => void };
    const exited = new Promise<number | null>((resolve, reject) => (settleExit = { resolve, reject }));
    const term = new Terminal(ws, exited);
    ws.onopen = () => ws.send(transport.authMessage());
    ws.onmessage = (ev) => {
      const bytes = bytesOf(ev.data);
      if (bytes) {
        for (const l of term.#listeners) l(bytes);
        return;
      }
      const m = JSON.parse(String(ev.data)) as { type?: string; exitCode?: number };
      if (m.type === 'authenticated') {
        term.#authenticated = true;
        for (const p of term.#pending) ws.send(p);
        term.#pending = [];
        settleOpen.resolve(term);
      } else if (m.type === 'exit') exitCode = Number(m.exitCode);
      else if (isErrorMessage(m)) lastError = m;
    };
    ws.onerror = () => undefined;
    ws.onclose = (ev) => {
      if (exitCode !== null && ev.code === CLOSE.NORMAL) settleExit.resolve(exitCode);
      else if (term.#closedByClient) settleExit.resolve(null);
      else {
        const err = errorOfClose(ev.code, ev.reason, lastError);
        settleExit.reject(err);
        settleOpen.reject(err);
      }
    };
    return opened;
  }

  /** Receives the terminal's output; returns the function that stops it. */
  onData(listener: (bytes: Uint8Array) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Sends keystrokes (Ctrl-C is byte 3, and goes to the sandbox's foreground process like any other). */
  write(data: Uint8Array | string): void {
    const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
    this.#sendOrKeep(bytes);
  }

  /** Tells the sandbox's terminal its new size in character cells. */
  resize(cols: number, rows: number): void {
    this.#sendOrKeep(JSON.stringify({ type: 'resize', cols, rows }));
  }

  /** Ends the session: the server kills the shell. */
  close(): void {
    this.#closedByClient = true;
    this.#ws.close(CLOSE.NORMAL, 'closed by client');
  }

  #sendOrKeep(frame: string | Uint8Array): void {
    if (this.#authenticated && this.#ws.readyState === 1) this.#ws.send(frame);
    else if (!this.#authenticated) this.#pending.push(frame);
  }
}
