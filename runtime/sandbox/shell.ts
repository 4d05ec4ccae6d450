import { finished } from 'node:stream/promises';
import type { Engine, ExecHandle } from '../engine/engine.ts';
import type { EventSink } from '../events.ts';
import type { Caller } from './caller.ts';
import { engineCall } from './engine-call.ts';
import type { Executor } from './execute.ts';
import { SANDBOX_USER } from './hardening.ts';

/** Shells an interactive session may run, by name. Nothing else can be asked for. */
export const SHELLS = { sh: '/bin/sh', bash: '/bin/bash' } as const;
export type ShellName = keyof typeof SHELLS;

export interface ShellDeps {
  executor: Pick<Executor, 'prepare' | 'environmentOf' | 'terminal'>;
  engine: Engine;
  events: EventSink;
}

/** A running interactive shell: a TTY, so everything it prints arrives on `process.stdout`. */
export interface ShellSession {
  /** The process: `stdin` (present), `stdout`, `resize`, `kill`. */
  readonly process: ExecHandle;
  /** Resolves once the shell exited and its output ended (`terminal_closed` is recorded then); never rejects. */
  readonly exited: Promise<{ exitCode: number }>;
}

/**
 * Interactive shells in running sandboxes: the runtime operation behind the WebSocket terminal
 * (and, later, agent tools). A shell runs as the sandbox user with a TTY; opening one passes the
 * same checks as execute, and its opening and closing are recorded (`terminal_opened`,
 * `terminal_closed`).
 */
export class Shells {
  readonly #deps: ShellDeps;

  constructor(deps: ShellDeps) {
    this.#deps = deps;
  }

  /**
   * Opens `shell` in the caller's sandbox. Throws before anything runs, as execute does:
   * NOT_FOUND (another workspace's sandbox too), AUTHORIZATION_ERROR (allowExec false, recorded
   * as `exec_denied`), CONFLICT (not running). When `signal` aborts while the shell starts, the
   * shell is killed, nothing is recorded, and the result is null.
   */
  async open(caller: Caller, sandboxId: string, opts: { shell?: ShellName; signal?: AbortSignal } = {}): Promise<ShellSession | null> {
    const { executor, engine, events } = this.#deps;
    const shell = opts.shell ?? 'sh';
    const cmd = [SHELLS[shell]];
    const { containerId, rec, workdir } = executor.prepare(caller, sandboxId, { command: cmd });
    const env = { ...executor.environmentOf(sandboxId), TERM: 'xterm-256color' };
    const h =
      (await executor.terminal(rec.id, cmd, env, workdir)) ??
      (await engineCall(() =>
        engine.exec(containerId, { cmd, env, user: SANDBOX_USER, tty: true, stdin: true, ...(workdir ? { workdir } : {}) }),
      ));
    if (opts.signal?.aborted) {
      await h.kill().catch(() => undefined);
      return null;
    }
    const started = performance.now();
    const record = (type: string, details: Record<string, unknown>) =>
      events.emit({ type, severity: 'info', workspace: caller.workspace, sandboxId, actor: caller.actor ?? null, details });
    record('terminal_opened', { shell });
    const exited = Promise.all([h.wait().catch(() => ({ exitCode: -1 })), finished(h.stdout).catch(() => undefined)]).then(([result]) => {
      record('terminal_closed', { shell, exitCode: result.exitCode, durationMs: Math.round(performance.now() - started) });
      return result;
    });
    return { process: h, exited };
  }
}
