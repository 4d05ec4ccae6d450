/**
 * Named network namespaces (`ip netns`), the one place that knows how a command is run inside
 * one. Tests and benchmarks apply Director's table inside a namespace to filter real traffic away
 * from the host's own rules; the runtime uses the host's namespace (no name).
 */
import { statSync } from 'node:fs';

/** The command line that runs `cmd args` inside the named namespace, or unchanged without a name. */
export function inNetns(netns: string | undefined, cmd: string, args: readonly string[]): [string, string[]] {
  return netns ? ['ip', ['netns', 'exec', netns, cmd, ...args]] : [cmd, [...args]];
}

/**
 * The identity of a named namespace: the inode of `/run/netns/NAME`, which changes when the
 * namespace is deleted and made again under the same name. 0 for the host's namespace (no name),
 * null when the named one does not exist.
 */
export function netnsId(netns: string | undefined): number | null {
  if (!netns) return 0;
  try {
    return statSync(`/run/netns/${netns}`).ino;
  } catch {
    return null;
  }
}
