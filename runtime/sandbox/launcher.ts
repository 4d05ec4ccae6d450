import type { Engine, ExecHandle } from '../engine/engine.ts';
import { SANDBOX_USER } from './hardening.ts';

/**
 * Pre-started exec launchers. Docker spends ~55 ms (runc exec) before a new exec's first
 * byte; a launcher is an exec started ahead of time that waits on stdin for one line, a
 * shell-quoted command, and `exec`s it. Taking an armed launcher makes the first output of an
 * execute arrive in a few ms. One launcher per sandbox (one idle `sh`), re-armed after use.
 * Images without /bin/sh, and commands that cannot travel on one line, use a plain exec.
 *
 * The replacement is started once the command has ended, or after {@link REARM_DELAY_MS} if
 * it is still running, not the moment the command is handed over: while an exec starts in a
 * container, the engine holds back its report that another exec there ended, so re-arming at
 * once delayed a short command's exit status by up to the whole start (about 1 in 10 `echo`s
 * answered after 40–65 ms instead of 5–10 ms). A command that runs longer than the delay
 * gets its replacement while it runs, so the next execute still finds one armed.
 */
export const REARM_DELAY_MS = 20;
const LAUNCHER = ['/bin/sh', '-c', 'IFS= read -r l || exit 125; eval "$l"'];

export const shQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** The one line a launcher evaluates; null when the command cannot be sent on one line. */
export function launchLine(cmd: string[], env: Record<string, string>, workdir: string | undefined): string | null {
  const parts = [...cmd, ...Object.values(env), workdir ?? ''];
  if (parts.some((p) => p.includes('\n') || p.includes('\r') || p.includes('\0'))) return null;
  // Keys are validated upstream; refusing here too keeps the line injection-free on its own.
  if (!Object.keys(env).every((k) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(k))) return null;
  const out: string[] = [];
  if (workdir) out.push(`cd -- ${shQuote(workdir)} || exit 126;`);
  for (const [k, v] of Object.entries(env)) out.push(`export ${k}=${shQuote(v)};`);
  out.push(`exec ${cmd.map(shQuote).join(' ')}`);
  return out.join(' ') + '\n';
}

interface Slot {
  handle: Promise<ExecHandle | null>;
  dead: boolean;
}

export class Launchers {
  private readonly engine: Engine;
  private readonly rearmDelayMs: number;
  private readonly slots = new Map<string, Slot>();
  private readonly unsupported = new Set<string>();
  /** Re-arms waiting for a command to end (or for the delay), by container. */
  private readonly pending = new Map<string, () => void>();

  constructor(engine: Engine, opts: { rearmDelayMs?: number } = {}) {
    this.engine = engine;
    this.rearmDelayMs = opts.rearmDelayMs ?? REARM_DELAY_MS;
  }

  /** Starts a launcher for the container unless one is armed or the image cannot run one. */
  arm(containerId: string): void {
    if (this.slots.has(containerId) || this.unsupported.has(containerId)) return;
    const slot: Slot = { dead: false, handle: Promise.resolve(null) };
    slot.handle = this.engine
      .exec(containerId, { cmd: LAUNCHER, env: {}, user: SANDBOX_USER, stdin: true })
      .then((h) => {
        const died = () => {
          slot.dead = true;
          if (this.slots.get(containerId) === slot) this.slots.delete(containerId);
        };
        h.stdout.once('end', died);
        // An exec that ends before it was used means the image cannot run the launcher.
        void h.wait().then(
          ({ exitCode }) => {
            if (this.slots.get(containerId) === slot && (exitCode === 126 || exitCode === 127)) this.unsupported.add(containerId);
          },
          () => undefined,
        );
        return h;
      })
      .catch(() => {
        slot.dead = true;
        this.slots.delete(containerId);
        return null;
      });
    this.slots.set(containerId, slot);
  }

  /**
   * Takes the armed launcher and hands it the command; null when none is ready (the caller
   * falls back to a plain exec, then calls {@link rearmAfter}). The launcher is re-armed in
   * the background once the command ends or has run for the re-arm delay.
   */
  async take(
    containerId: string,
    cmd: string[],
    env: Record<string, string>,
    workdir: string | undefined,
    stdin: string | undefined,
    opts: { keepStdin?: boolean } = {},
  ): Promise<ExecHandle | null> {
    const line = launchLine(cmd, env, workdir);
    const slot = this.slots.get(containerId);
    if (!slot || line === null) return null;
    this.slots.delete(containerId);
    const h = await slot.handle;
    if (!h || slot.dead || !h.stdin || h.stdin.destroyed) return null;
    h.stdin.write(line);
    if (stdin !== undefined) h.stdin.write(stdin);
    // `keepStdin`: the caller goes on writing (the launcher's `read` took exactly one line).
    if (!opts.keepStdin) h.stdin.end();
    this.rearmAfter(containerId, h);
    return h;
  }

  /** Arms a launcher once `running` has ended or has run for the re-arm delay, whichever is first. */
  rearmAfter(containerId: string, running: ExecHandle): void {
    // A re-arm already waiting for another command is superseded by this one.
    const timer = setTimeout(() => fire(), this.rearmDelayMs);
    timer.unref();
    const fire = () => {
      clearTimeout(timer);
      if (this.pending.get(containerId) !== fire) return;
      this.pending.delete(containerId);
      this.arm(containerId);
    };
    this.pending.set(containerId, fire);
    void running.wait().then(fire, fire);
  }

  /** Forgets a container (stopped or removed); its launcher process dies with it, and no re-arm is left waiting. */
  forget(containerId: string): void {
    this.pending.delete(containerId);
    this.slots.delete(containerId);
    this.unsupported.delete(containerId);
  }
}
