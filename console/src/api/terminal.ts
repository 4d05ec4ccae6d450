import type { Session } from './session.ts';
import { wsUrl } from './ws-url.ts';

export interface TerminalHandlers {
  onOutput(bytes: Uint8Array): void;
  /** The shell ended (`exit {exitCode}`), or the socket closed: `exitCode` null then. */
  onClose(exitCode: number | null, reason: string): void;
  onReady?(): void;
}

/**
 * One interactive shell over `/v1/sandboxes/{id}/terminal` (api/ws/terminal.ts): the token goes
 * in the first `auth` message, keystrokes as binary frames, `resize {cols, rows}` as JSON. A
 * refreshed access token is sent as `auth` while the shell runs.
 */
export class TerminalSocket {
  readonly #ws: WebSocket;
  readonly #session: Session;
  readonly #encoder = new TextEncoder();
  readonly #onToken = () => {
    const t = this.#session.token;
    if (t && this.#ws.readyState === WebSocket.OPEN) this.#ws.send(JSON.stringify({ type: 'auth', token: t }));
  };
  /** Keystrokes typed before the server accepted the token (a binary frame before that closes the socket). */
  #early: Uint8Array<ArrayBuffer>[] = [];
  #ready = false;
  #exitCode: number | null = null;
  #error: string | null = null;

  constructor(session: Session, sandboxId: string, size: { cols: number; rows: number }, h: TerminalHandlers) {
    this.#session = session;
    const q = new URLSearchParams({ cmd: 'sh', cols: String(size.cols), rows: String(size.rows) });
    const ws = new WebSocket(wsUrl(`/v1/sandboxes/${encodeURIComponent(sandboxId)}/terminal?${q.toString()}`, location));
    ws.binaryType = 'arraybuffer';
    this.#ws = ws;
    ws.onopen = () => {
      const t = session.token;
      if (t) ws.send(JSON.stringify({ type: 'auth', token: t }));
    };
    ws.onmessage = (ev: MessageEvent) => {
      if (ev.data instanceof ArrayBuffer) {
        h.onOutput(new Uint8Array(ev.data));
        return;
      }
      let m: { type?: string; exitCode?: number; message?: string };
      try {
        m = JSON.parse(String(ev.data)) as typeof m;
      } catch {
        return;
      }
      if (m.type === 'authenticated' && !this.#ready) {
        this.#ready = true;
        for (const b of this.#early.splice(0)) ws.send(b);
        h.onReady?.();
      } else if (m.type === 'exit' && typeof m.exitCode === 'number') this.#exitCode = m.exitCode;
      else if (m.type === 'error') this.#error = m.message ?? 'error';
    };
    ws.onclose = (ev: CloseEvent) => {
      session.removeEventListener('token', this.#onToken);
      h.onClose(this.#exitCode, this.#error ?? (ev.reason || `closed (${ev.code})`));
    };
    session.addEventListener('token', this.#onToken);
  }

  input(data: string): void {
    const bytes = this.#encoder.encode(data);
    if (!this.#ready) this.#early.push(bytes);
    else if (this.#ws.readyState === WebSocket.OPEN) this.#ws.send(bytes);
  }

  resize(cols: number, rows: number): void {
    if (this.#ready && this.#ws.readyState === WebSocket.OPEN) this.#ws.send(JSON.stringify({ type: 'resize', cols, rows }));
  }

  close(): void {
    this.#session.removeEventListener('token', this.#onToken);
    this.#ws.close(1000, 'closed by the user');
  }
}
