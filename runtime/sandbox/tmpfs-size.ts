import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Engine, TmpfsMount } from '../engine/engine.ts';

/** Where `images/tmpfs-size/build.sh` puts the helper, relative to the project root. */
export const TMPFS_SIZE_BUILD_OUTPUT = '.state/helpers/director-tmpfs-size';

/** What the warm pool asks to fit a claimed sandbox's `disk` limit. */
export interface TmpfsResizer {
  /** Resizes the container's writable tmpfs mounts to `mounts`' sizes and checks the kernel's mount table says so; throws otherwise. */
  resize(containerId: string, mounts: readonly TmpfsMount[]): Promise<void>;
  /** Starts what a resize needs ahead of the first one (the pool calls it when it starts), so no claim pays for it. */
  warm?(): void;
  /** Lets what {@link warm} started end once the resizes asked for are answered (the pool stopped). */
  close?(): void;
}

/** The running helper process, the answers it owes (in order) and its unread output. */
interface Helper {
  child: ChildProcess;
  pending: Array<{ ok: () => void; fail: (e: Error) => void }>;
  out: string;
}

/**
 * Resizes a running container's tmpfs mounts from the host: the static helper built from
 * `images/tmpfs-size/main.c` joins the container's mount namespace and remounts each path with
 * the new size and Director's flags (nosuid, nodev, noexec when execution is not allowed). A
 * request names the pid and the inode of its mount namespace (`PID MNTNS (PATH SIZE NOEXEC)+`):
 * the helper refuses a pid whose namespace changed (reused), the host's own namespace, a symlink
 * anywhere in a path, and a path that is not a tmpfs mount point.
 * Afterwards the container's mount table (`/proc/PID/mountinfo`, read from the host) must show
 * exactly the size and flags a cold sandbox gets, or the resize counts as failed. Only with a
 * local engine (the container's processes are visible in this host's /proc) and a built helper:
 * {@link localTmpfsResizer} returns null otherwise and `disk` requests are created cold.
 *
 * One helper process serves every resize (`--serve`: a request per line, answered in order), started
 * with the pool ({@link warm}), or at the first resize, and again after it died: a spawn per resize cost 25-40 ms of Director's own event
 * loop (forking a large process), 500 ms for 20 at once. A request not answered within 10 s ends
 * the helper and fails every pending resize.
 */
export class HostTmpfsResizer implements TmpfsResizer {
  readonly #engine: Pick<Engine, 'inspectContainer' | 'hostPid'>;
  readonly #binary: string;
  #helper: Helper | null = null;

  constructor(engine: Pick<Engine, 'inspectContainer' | 'hostPid'>, binary: string) {
    this.#engine = engine;
    this.#binary = binary;
  }

  async resize(containerId: string, mounts: readonly TmpfsMount[]): Promise<void> {
    if (mounts.length === 0) return;
    const pid = (await this.#engine.hostPid?.(containerId)) ?? (await this.#engine.inspectContainer(containerId))?.pid;
    if (!pid) throw new Error(`container ${containerId} is not running`);
    const mntns = await this.#mountNamespace(containerId, pid);
    await this.#ask([String(pid), String(mntns), ...mounts.flatMap((m) => [m.path, String(m.sizeBytes), m.noexec ? '1' : '0'])]);
    // Read synchronously: a procfs file is the kernel's, answered in microseconds, while the promise
    // read is several round trips through libuv's 4 threads, which 20 claims at once queued
    // 25-40 ms deep each.
    const problems = checkMountinfo(readFileSync(`/proc/${pid}/mountinfo`, 'utf8'), mounts);
    if (problems.length) throw new Error(`tmpfs resize not in force: ${problems.join('; ')}`);
  }

  /**
   * Starts the helper now: forking it costs Director's event loop ~30 ms, which the first burst of
   * claims paid when it was started by the first resize.
   */
  warm(): void {
    this.#helper ??= this.#start();
  }

  /** Closes the helper's input: it answers what it was asked, then exits. A later resize starts another. */
  close(): void {
    const h = this.#helper;
    this.#helper = null;
    h?.child.stdin?.end();
  }

  /**
   * The inode of `pid`'s mount namespace, read while `pid` is known to be the container's init:
   * `hostPid` answers a pid only while it is in the container's cgroups, and is asked again after
   * the read, so a pid reused meanwhile by another process is caught. The helper joins the
   * namespace only if `/proc/PID/ns/mnt` is still this one.
   */
  async #mountNamespace(containerId: string, pid: number): Promise<number> {
    let ino: number;
    try {
      ino = statSync(`/proc/${pid}/ns/mnt`).ino;
    } catch {
      throw new Error(`container ${containerId}'s init (pid ${pid}) is gone`);
    }
    if (this.#engine.hostPid && (await this.#engine.hostPid(containerId)) !== pid)
      throw new Error(`container ${containerId}'s init is no longer pid ${pid}`);
    return ino;
  }

  /** Sends one request to the helper (started if none runs) and waits for its answer. */
  #ask(args: string[]): Promise<void> {
    if (args.some((a) => !/^[A-Za-z0-9/._@+-]+$/.test(a))) return Promise.reject(new Error(`bad resize arguments ${JSON.stringify(args)}`));
    const h = this.#helper ?? this.#start();
    return new Promise<void>((ok, fail) => {
      const timer = setTimeout(() => this.#end(h, new Error('the tmpfs resizer did not answer within 10 s')), 10_000);
      h.pending.push({
        ok: () => (clearTimeout(timer), ok()),
        fail: (e) => (clearTimeout(timer), fail(e)),
      });
      h.child.stdin!.write(`${args.join(' ')}\n`);
    });
  }

  #start(): Helper {
    const child = spawn(this.#binary, ['--serve'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const h: Helper = { child, pending: [], out: '' };
    this.#helper = h;
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      h.out += chunk;
      for (let nl = h.out.indexOf('\n'); nl >= 0; nl = h.out.indexOf('\n')) {
        const line = h.out.slice(0, nl);
        h.out = h.out.slice(nl + 1);
        const waiter = h.pending.shift();
        if (line === 'ok') waiter?.ok();
        else waiter?.fail(new Error(`tmpfs resize failed: ${line.replace(/^err /, '')}`));
      }
    });
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr = (stderr + c).slice(-500)));
    child.stdin.on('error', () => undefined);
    child.on('error', (err) => this.#end(h, err));
    child.on('exit', (code) => this.#end(h, new Error(`the tmpfs resizer exited (${code}): ${stderr.trim()}`)));
    // Never what keeps Director running: its stdin closes when Director exits, and it ends.
    child.unref();
    for (const s of [child.stdin, child.stdout, child.stderr]) (s as unknown as { unref?: () => void } | null)?.unref?.();
    return h;
  }

  /** Ends `h` (if it is still the current helper's) and fails what it had pending. */
  #end(h: Helper, err: Error): void {
    if (this.#helper === h) this.#helper = null;
    if (h.child.exitCode === null && !h.child.killed) h.child.kill('SIGKILL');
    for (const w of h.pending.splice(0)) w.fail(err);
  }
}

/** Differences between a container's mount table and the tmpfs mounts it should have (empty: none). */
export function checkMountinfo(mountinfo: string, mounts: readonly TmpfsMount[]): string[] {
  const byPath = new Map<string, { opts: Set<string>; fstype: string; superOpts: Set<string> }>();
  for (const line of mountinfo.split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!pre || !post) continue;
    const f = pre.split(' ');
    // ID, parent, major:minor, root, mount point, mount options: a line short of them is not the kernel's.
    if (f.length < 6) continue;
    const [fstype, , superOpts] = post.split(' ');
    byPath.set(f[4]!, { opts: new Set(f[5]!.split(',')), fstype: fstype!, superOpts: new Set((superOpts ?? '').split(',')) });
  }
  const problems: string[] = [];
  for (const m of mounts) {
    const got = byPath.get(m.path);
    if (!got || got.fstype !== 'tmpfs') {
      problems.push(`${m.path} is not a tmpfs mount`);
      continue;
    }
    const want = ['nosuid', 'nodev', m.readOnly ? 'ro' : 'rw'];
    for (const o of want) if (!got.opts.has(o)) problems.push(`${m.path} lacks ${o}`);
    if (got.opts.has('noexec') !== m.noexec) problems.push(`${m.path} noexec=${got.opts.has('noexec')}, expected ${m.noexec}`);
    const kib = Math.ceil(m.sizeBytes / 4096) * 4;
    if (!got.superOpts.has(`size=${kib}k`)) problems.push(`${m.path} size is not ${kib}k`);
  }
  return problems;
}

/** A resizer for a local engine with the helper built under `root` (or at `binary`); null otherwise. */
export function localTmpfsResizer(
  engine: Pick<Engine, 'inspectContainer' | 'hostPid' | 'local'>,
  root: string,
  binary?: string,
): TmpfsResizer | null {
  const bin = binary ?? path.resolve(root, TMPFS_SIZE_BUILD_OUTPUT);
  if (engine.local !== true || process.getuid?.() !== 0 || !existsSync(bin)) return null;
  return new HostTmpfsResizer(engine, bin);
}
