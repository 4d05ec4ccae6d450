/**
 * Commands of a MountSync run on this host instead of in a sandbox (unit tests of the checkpoint
 * reader over a temp directory standing for the mount), and Director's agent binary to run there
 * as the tree tool.
 */
import { execFileSync, spawn } from 'node:child_process';
import path from 'node:path';
import type { ExecHandle } from '../../runtime/engine/engine.ts';
import type { ExecOpener } from '../../runtime/sandbox/mount-sync.ts';

/** An opener that spawns each command here with `env` (and as `uid`, when given). */
export function localOpener(env: { PATH: string }, opts: { uid?: number } = {}): ExecOpener {
  return (_containerId, cmd) => {
    const ids = opts.uid === undefined ? {} : { uid: opts.uid, gid: opts.uid };
    const child = spawn(cmd[0]!, cmd.slice(1), { env, stdio: ['pipe', 'pipe', 'pipe'], ...ids });
    const exit = new Promise<{ exitCode: number; timedOut: boolean }>((resolve) =>
      child.once('close', (code) => resolve({ exitCode: code ?? -1, timedOut: false })),
    );
    const h: ExecHandle = {
      id: 'local',
      stdout: child.stdout,
      stderr: child.stderr,
      stdin: child.stdin,
      started: Promise.resolve(),
      wait: () => exit,
      kill: () => Promise.resolve(void child.kill('SIGKILL')),
    };
    return Promise.resolve(h);
  };
}

/** The agent binary, built when its sources changed (as the integration tests build it). */
export const agentBinary = (() => {
  let built: string | null = null;
  return () =>
    (built ??= execFileSync(path.resolve(import.meta.dirname, '../../images/agent/build.sh'), {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    }).trim());
})();
