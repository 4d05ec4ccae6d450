/**
 * Killing every process of a container that carries a marker in its environment, from inside the
 * container (a POSIX sh, /proc, `tr` and `grep`): for an engine whose /proc is not this host's, and
 * for what a workflow attempt left behind after a restart. Engine-neutral: the caller runs
 * {@link killMarkedCommand} as an exec in the container, as the user who owns the processes.
 */

/**
 * The script: `$1` is the environment line to look for (`NAME=value`); prints how many processes
 * it killed. Each marked process is stopped (SIGSTOP) as it is found, the scan repeats until it
 * finds no new one (a stopped process cannot fork), and only then are they all killed: killed one
 * by one while the others ran, a shell whose child died first would run its next command, and a
 * parent could fork a child the scan has already passed (`/proc` lists pids in text order, so a
 * child may come before its parent) which then lives on.
 */
export const KILL_MARKED_SCRIPT = [
  'm="$1"; all=" "',
  'while :; do',
  '  new=""',
  '  for d in /proc/[0-9]*; do',
  '    p=${d#/proc/}',
  '    case "$all" in *" $p "*) continue ;; esac',
  `    if tr '\\000' '\\n' < "$d/environ" 2>/dev/null | grep -qxF "$m"; then kill -STOP "$p" 2>/dev/null && new="$new$p "; fi`,
  '  done',
  '  [ -z "$new" ] && break',
  '  all="$all$new"',
  'done',
  'n=0',
  'for p in $all; do kill -KILL "$p" 2>/dev/null && n=$((n + 1)); done',
  'echo "$n"',
].join('\n');

/** The exec's argv: kills every process whose environment holds `name=value`. */
export const killMarkedCommand = (name: string, value: string): string[] => [
  '/bin/sh',
  '-c',
  KILL_MARKED_SCRIPT,
  'kill',
  `${name}=${value}`,
];
