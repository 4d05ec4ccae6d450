/**
 * A command on a real pseudo-terminal (test/helpers/pty.py, python3's pty): what a person at a
 * terminal emulator types and sees, including raw mode, window size changes and Ctrl-C.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import path from 'node:path';

const DRIVER = path.join(path.dirname(new URL(import.meta.url).pathname), 'pty.py');

export class PtyProcess {
  /** Everything the terminal showed, as text. */
  output = '';
  readonly exited: Promise<number>;
  readonly #child: ChildProcessWithoutNullStreams;
  #waiters = new Set<() => void>();

  constructor(argv: string[], opts: { env: Record<string, string>; cwd: string; rows?: number; cols?: number }) {
    this.#child = spawn('python3', [DRIVER, String(opts.rows ?? 24), String(opts.cols ?? 80), '--', ...argv], {
      env: opts.env,
      cwd: opts.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.#child.stdout.on('data', (d: Buffer) => {
      this.output += d.toString();
      for (const w of this.#waiters) w();
    });
    this.#child.stderr.on('data', (d: Buffer) => (this.output += `[driver] ${d.toString()}`));
    this.exited = new Promise((resolve) => this.#child.on('close', (code) => resolve(code ?? -1)));
  }

  /** Types `text` (`\r` is Enter, `\u0003` Ctrl-C). */
  type(text: string): void {
    this.#child.stdin.write(`${JSON.stringify({ write: text })}\n`);
  }

  /** Changes the window size; the kernel sends SIGWINCH to the program. */
  resize(rows: number, cols: number): void {
    this.#child.stdin.write(`${JSON.stringify({ resize: [rows, cols] })}\n`);
  }

  /** Waits until the screen output matches. */
  until(pattern: RegExp | string, timeoutMs = 20_000): Promise<void> {
    const hit = () => (typeof pattern === 'string' ? this.output.includes(pattern) : pattern.test(this.output));
    if (hit()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!hit()) return;
        done();
        resolve();
      };
      const timer = setTimeout(() => {
        done();
        reject(
          new Error(`terminal never showed ${String(pattern)} in ${timeoutMs} ms; it shows: ${JSON.stringify(this.output.slice(-600))}`),
        );
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
    });
  }

  kill(): void {
    this.#child.kill('SIGKILL');
  }
}
