/**
 * Runs the `director` CLI as a user would: a real child process (`node bin/director.ts`) with its
 * own config directory, against a real server. Long-running commands (`events tail -f`) are
 * spawned and read while they run.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
export const DIRECTOR_BIN = path.join(ROOT, 'bin', 'director.ts');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  input?: string;
  env?: Record<string, string | undefined>;
  cwd?: string;
  timeoutMs?: number;
}

/** A user of the CLI: a config directory of their own (their `~/.config/director`). */
export class CliUser {
  readonly configDir = mkdtempSync(path.join(tmpdir(), 'director-cli-'));
  readonly env: Record<string, string>;
  readonly #children = new Set<ChildProcessWithoutNullStreams>();

  constructor(env: Record<string, string> = {}) {
    const base: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('DIRECTOR_')) base[k] = v;
    this.env = { ...base, DIRECTOR_CONFIG_DIR: this.configDir, NO_COLOR: '1', ...env };
  }

  /** Runs `director ...args` to completion. */
  run(args: string[], opts: RunOptions = {}): Promise<CliResult> {
    const child = this.spawn(args, opts);
    child.stdin.end(opts.input ?? '');
    return new Promise((resolve, reject) => {
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`director ${args.join(' ')} did not finish in ${opts.timeoutMs ?? 60_000} ms; stderr: ${stderr}`));
      }, opts.timeoutMs ?? 60_000);
      child.on('error', reject);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code: code ?? -1, stdout, stderr });
      });
    });
  }

  spawn(args: string[], opts: RunOptions = {}): ChildProcessWithoutNullStreams {
    const env = { ...this.env };
    for (const [k, v] of Object.entries(opts.env ?? {})) {
      if (v === undefined) delete env[k];
      else env[k] = v;
    }
    const child = spawn(process.execPath, [DIRECTOR_BIN, ...args], { cwd: opts.cwd ?? ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] });
    this.#children.add(child);
    child.once('close', () => this.#children.delete(child));
    return child;
  }

  /** Kills what is still running (a failed test's follower) and removes the config directory. */
  cleanup(): void {
    for (const c of this.#children) c.kill('SIGKILL');
    rmSync(this.configDir, { recursive: true, force: true });
  }
}

/** Reads a running child's stdout as it arrives and waits for conditions on it. */
export class Follower {
  text = '';
  stderr = '';
  readonly exited: Promise<number>;
  readonly #child: ChildProcessWithoutNullStreams;
  #waiters = new Set<() => void>();

  constructor(child: ChildProcessWithoutNullStreams) {
    this.#child = child;
    child.stdout.on('data', (d: Buffer) => {
      this.text += d.toString();
      for (const w of this.#waiters) w();
    });
    child.stderr.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => child.on('close', (code, signal) => resolve(code ?? (signal ? 128 : -1))));
  }

  lines(): string[] {
    return this.text.split('\n').filter(Boolean);
  }

  until(pred: (text: string) => boolean, timeoutMs = 20_000): Promise<void> {
    if (pred(this.text)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!pred(this.text)) return;
        done();
        resolve();
      };
      const timer = setTimeout(() => {
        done();
        reject(
          new Error(`output condition not met in ${timeoutMs} ms; stdout: ${this.text.slice(-800)}; stderr: ${this.stderr.slice(-400)}`),
        );
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
    });
  }

  signal(sig: NodeJS.Signals): void {
    this.#child.kill(sig);
  }
}
