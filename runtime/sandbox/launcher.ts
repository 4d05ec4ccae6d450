import type { Engine, ExecHandle } from '../engine/engine.ts';
import { SANDBOX_USER } from './hardening.ts';

/**
 * Pre-started exec launchers. Docker spends ~55 ms (runc exec) before a new exec's first
 * byte; a launcher is an exec started ahead of time that waits on stdin for one line, a
 * shell-quoted command, and `exec`s it. Taking an armed launcher makes the first output of an
 * execute arrive in a few ms. One launcher per sandbox (one idle `sh`), re-armed after use.
 * Images without /bin/sh, and commands that cannot travel on one line, use a plain exec.
 */
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
  private readonly slots = new Map<string, Slot>();
  private readonly unsupported = new Set<string>();

  constructor(engine: Engine) {
    this.engine = engine;
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
   * falls back to a plain exec). The launcher is re-armed in the background.
   */
  async take(containerId: string, cmd: string[], env: Record<string, string>, workdir: string | undefined, stdin: string | undefined): Promise<ExecHandle | null> {
    const line = launchLine(cmd, env, workdir);
    const slot = this.slots.get(containerId);
    if (!slot || line === null) return null;
    this.slots.delete(containerId);
    const h = await slot.handle;
    if (!h || slot.dead || !h.stdin || h.stdin.destroyed) return null;
    h.stdin.write(line);
    if (stdin !== undefined) h.stdin.write(stdin);
    h.stdin.end();
    this.arm(containerId);
    return h;
  }

  /** Forgets a container (stopped or removed); its launcher process dies with it. */
  forget(containerId: string): void {
    this.slots.delete(containerId);
    this.unsupported.delete(containerId);
  }
}
