/**
 * The local terminal's output side for an interactive session. Node's `setRawMode(true)` (libuv)
 * switches input to raw but keeps output post-processing with ONLCR on, so every `\n` the remote
 * terminal sends is turned into `\r\n` once more: its `\r\n` line ends reach the screen as
 * `\r\r\n`, and a full-screen program that moves the cursor down with a bare `\n` gets a carriage
 * return it did not ask for. The remote pty already did its own output processing, so the local
 * terminal must pass its bytes through as they are (as ssh does: OPOST off).
 */
import { spawnSync } from 'node:child_process';

/** Runs `stty` on the terminal open as `fd`; its stdout, or null when there is no stty or it failed. */
function stty(fd: number, args: string[]): string | null {
  const r = spawnSync('stty', args, { stdio: [fd, 'pipe', 'ignore'], encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

/**
 * Turns output post-processing off on the terminal behind `out` (when it is one) and returns the
 * function that puts the terminal's settings back as they were. Without `stty` nothing changes.
 */
export function verbatimOutput(out: { isTTY?: boolean; fd?: number }): () => void {
  if (!out.isTTY || typeof out.fd !== 'number') return () => {};
  const fd = out.fd;
  const saved = stty(fd, ['-g']);
  if (saved === null || stty(fd, ['-opost']) === null) return () => {};
  return () => {
    stty(fd, [saved]);
  };
}
