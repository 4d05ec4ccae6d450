import type { Command } from 'commander';
import { DirectorClient } from '../sdk/index.ts';
import { configDir, loadConfig, saveConfig, type StoredConfig } from './config.ts';
import { UsageError } from './errors.ts';
import type { Format } from './output.ts';
import { withProgress } from './progress.ts';

/** The process the CLI runs in (the real one in bin/director.ts). */
export interface Io {
  stdin: NodeJS.ReadStream;
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
  env: NodeJS.ProcessEnv;
  /** Signals that stop long-running commands (follow, exec). */
  onSignal(signal: 'SIGINT' | 'SIGTERM' | 'SIGWINCH', listener: () => void): () => void;
}

/** Options every command takes (declared on the program, accepted anywhere before `--`). */
export interface GlobalOptions {
  url?: string;
  workspace?: string;
  output: Format;
}

const sameUrl = (a: string, b: string) => a.replace(/\/+$/, '').replace(/\/v1$/, '') === b.replace(/\/+$/, '').replace(/\/v1$/, '');

/**
 * What commands share: the process, the stored login, the client built from flags, environment
 * and stored login (in that order), and the exit code of commands that report one of their own.
 */
export class Context {
  readonly io: Io;
  readonly configDir: string;
  /** Set by commands whose exit status is not just success (exec, shell, audit verify). */
  exitCode = 0;

  constructor(io: Io) {
    this.io = io;
    this.configDir = configDir(io.env);
  }

  globals(cmd: Command): GlobalOptions {
    return cmd.optsWithGlobals<GlobalOptions>();
  }

  config(): StoredConfig {
    return loadConfig(this.configDir);
  }

  saveConfig(cfg: StoredConfig): void {
    saveConfig(this.configDir, cfg);
  }

  /** The API address: `--url`, else `DIRECTOR_URL`, else the one logged in to. */
  url(g: GlobalOptions): string {
    const url = g.url ?? this.io.env.DIRECTOR_URL ?? this.config().url;
    if (!url) throw new UsageError('no API address: run `director login --url URL --username NAME`, or set DIRECTOR_URL');
    return url;
  }

  /**
   * A client with credentials: `DIRECTOR_API_KEY` when set, else the stored login (whose
   * refreshed tokens are written back, since refresh tokens are single-use).
   */
  client(g: GlobalOptions): DirectorClient {
    const cfg = this.config();
    const url = this.url(g);
    const workspace = g.workspace ?? this.io.env.DIRECTOR_WORKSPACE ?? cfg.workspace;
    const base = { baseURL: url, ...(workspace ? { workspace } : {}) };
    const apiKey = this.io.env.DIRECTOR_API_KEY;
    if (apiKey) return new DirectorClient({ ...base, token: apiKey });
    if (!cfg.token || !cfg.url || !sameUrl(cfg.url, url)) {
      throw new UsageError(`not logged in to ${url}: run \`director login --url ${url} --username NAME\`, or set DIRECTOR_API_KEY`);
    }
    return new DirectorClient({
      ...base,
      token: cfg.token,
      ...(cfg.tokenExpiresAt ? { tokenExpiresAt: cfg.tokenExpiresAt } : {}),
      ...(cfg.refreshToken ? { refreshToken: cfg.refreshToken } : {}),
      onTokens: (t) =>
        this.saveConfig({
          ...this.config(),
          token: t.token,
          tokenExpiresAt: t.expiresAt,
          refreshToken: t.refreshToken,
          refreshExpiresAt: t.refreshExpiresAt,
        }),
    });
  }

  out(text: string): void {
    this.io.stdout.write(text);
  }

  /** A message for the person at the terminal (stderr). */
  note(text: string): void {
    this.io.stderr.write(`${text}\n`);
  }

  progress<T>(label: string, work: () => Promise<T>): Promise<T> {
    return withProgress(this.io.stderr, label, work);
  }
}
