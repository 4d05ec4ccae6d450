/**
 * A sandbox's writable mounts, read out and put back (checkpoints), each in one exec of
 * `tree-script.ts` running as the sandbox user: it sees exactly what the sandbox sees and can
 * change only what the sandbox could. What comes back is hostile: the listing is parsed strictly
 * (`tree-listing.ts`) and the files pass the tar guard (`guardedTree`: no escaping names, links
 * only as records, devices and fifos refused, byte and entry caps); a sandbox that stops or
 * stalls the exec is killed at the deadline.
 *
 * One exec per mount and direction: the script lists the mount, waits for the host's answer on
 * stdin (which paths to read; or the staged tree and the plan), then streams the tar out or swaps
 * the staged tree in. So an unchanged mount costs one listing and no file content.
 */
import { randomBytes } from 'node:crypto';
import type { Writable } from 'node:stream';
import { DirectorError, conflict } from '../../core/errors.ts';
import type { ExecHandle } from '../engine/engine.ts';
import type { SandboxRecord } from '../store/sandboxes.ts';
import { packTree, UnsafeArchiveError, type TreePackEntry } from './files.ts';
import { SANDBOX_UID } from './hardening.ts';
import { drained, guardedTree, type TreeEntry } from './tar-guard.ts';
import { ListingEnded, ParsedListings, scanUpTo, type Listing } from './tree-listing.ts';
import { planText, type RestorePlan, type WantedEntry } from './tree-plan.ts';
import { STAGE_PREFIX, TREE_SCRIPT } from './tree-script.ts';
import { mapArchiveError } from './transfer.ts';

export interface SyncLimits {
  /** Entries a mount may hold (listing and archive). */
  maxEntries: number;
  /** The exec is killed past this (a sandbox can stop its own reader). */
  timeoutMs: number;
}

export interface CaptureOptions extends SyncLimits {
  /**
   * Given the listing, the files and symlinks to read (mount-relative paths from the listing) and
   * the most content bytes they may hold. Throwing stops the capture (the exec is killed).
   */
  select(listing: Listing): Promise<{ paths: string[]; maxBytes: number }> | { paths: string[]; maxBytes: number };
  /**
   * Each entry read, in archive order; a file's `stream` must be consumed (unless it came whole).
   * Hard links name an earlier file.
   */
  onEntry(e: TreeEntry): Promise<void>;
  /** Files of at most this many bytes come whole (`content`, no stream to read); default none. */
  wholeUpTo?: number;
  /**
   * The caller's `select` will pick every file and symlink of the listing (nothing to reuse,
   * nothing excluded: a mount's first capture). Through the agent the reader then sends them
   * all right after the listing (`tree capture-all`), without waiting for the host's answer; a
   * `select` that picks fewer after all fails the capture.
   */
  readAll?: boolean;
}

export interface CaptureResult {
  listing: Listing;
  /** Asked for but not in the archive: removed, replaced or made unreadable after the listing. */
  missing: string[];
}

/** A wanted entry with what the host needs to send it. */
export interface SyncWanted extends WantedEntry {
  size?: number;
  target?: string;
  mtimeS?: number;
  content?: () => Promise<Buffer | AsyncIterable<unknown>>;
}

export interface RestoreOptions<W extends SyncWanted> extends SyncLimits {
  /** Given the listing, what to change. */
  plan(listing: Listing): RestorePlan<W>;
  /** Remove the staged leftovers at once (true), or keep the swap undoable until {@link MountSync.finish}. */
  commit: boolean;
}

export interface RestoreResult<W extends SyncWanted> {
  plan: RestorePlan<W>;
  /** The stage directory inside the mount (needed by {@link MountSync.finish} when not committed). */
  stage: string;
}

/** A restore that failed; `reverted` says the mount is as it was before. */
export class RestoreFailedError extends DirectorError {}

interface Run {
  h: ExecHandle;
  stderr: () => string;
  /** The stdout bytes before the line that is `marker` (see scanUpTo). */
  upTo(marker: string, maxLines: number): Promise<Buffer>;
  /** The stdout bytes after the marker. */
  rest(): AsyncIterable<Buffer>;
  done: Promise<number>;
  /** Stops the process if it has not ended (and everything of the run). */
  close(): void;
  /**
   * The run's answer is complete before the process ended: it is left to end by itself (its
   * output read and dropped, the deadline still stopping one that runs on), and close() then
   * does nothing. Stopping it costs more than its end: a scan of the sandbox's processes in the
   * agent, an engine call or a second exec without one.
   */
  detach(): void;
}

/** Starts a command in a container as the sandbox user with stdin open (the runtime's `Executor.open`). */
export type ExecOpener = (containerId: string, cmd: string[], opts?: OpenOptions) => Promise<ExecHandle>;

export interface OpenOptions {
  /** Killed in the sandbox past this, even when Director is gone (through the agent). */
  timeoutMs?: number;
  /**
   * Through the agent: the process runs to its end (or its timeout) if Director's connection
   * to the agent is lost, as a `docker exec` runs on when Director dies.
   */
  finishOnDisconnect?: boolean;
  /** Through the agent: output it may send ahead of the reader (see `AgentExecOptions`). */
  outputWindowBytes?: number;
  /**
   * `cmd` is the agent binary's `tree` (`[binary, 'tree', ...]`): through the agent it runs in a
   * fork of the agent, without execve (the same code, ~0.6 ms less; docs/agent.md). Elsewhere
   * (`docker exec`, the launcher) the binary is exec'd as the command says.
   */
  agentTree?: boolean;
}

export interface MountSyncOptions {
  /**
   * The sandboxes' own kernel clock (ms since the epoch), when they run on this host's kernel (a
   * local engine): a listing's time is then read here just before its exec starts, a lower bound
   * of when it listed, instead of by a `date` process in the sandbox (one process less per
   * capture, and a time the sandbox cannot overstate). Not an injectable clock: it must be the
   * clock that stamps the sandbox's files.
   */
  kernelClockMs?: () => number;
  /**
   * The path of Director's agent binary inside the container, when it has one (mounted
   * read-only by the engine): a capture or restore then runs as one process, `AGENT tree
   * capture|restore` (images/agent/tree.c), with the script's protocol, output and exit
   * statuses, instead of sh, find, stat, xargs and tar (and tar, mv, rm on restore). The
   * `commit` and `undo` that end an uncommitted restore stay the script's (the stage has its
   * layout). Null or absent: the script alone.
   */
  treeTool?: (containerId: string) => string | null;
}

/** Output a capture's reader may send ahead of the host (the agent's default is 256 KiB). */
const CAPTURE_WINDOW_BYTES = 1024 * 1024;

/** Containers remembered as having an older agent binary (see MountSync.refused). */
const MAX_REFUSALS = 4096;

/** How long after Director's own deadline the sandbox kills a tree script itself. */
const SANDBOX_DEADLINE_GRACE_MS = 1000;

export class MountSync {
  private readonly open: ExecOpener;
  private readonly kernelClockMs: (() => number) | null;
  private readonly treeTool: (containerId: string) => string | null;
  /**
   * Containers whose agent binary refused a mode (a build older than it): not asked for it
   * again (a container keeps the binary it started with). Bounded: forgotten past
   * {@link MAX_REFUSALS} (asking again costs one refused process).
   */
  private readonly refused = new Map<string, 'capture-all' | 'tree'>();
  /**
   * The last listing of each container's mount, parsed (an unchanged mount's comes again as the
   * same frozen entries: see ParsedListings). A container that ended keeps its listings until
   * they are pushed out (ids are never reused).
   */
  private readonly listings = new ParsedListings();
  constructor(open: ExecOpener, opts: MountSyncOptions = {}) {
    this.open = open;
    this.kernelClockMs = opts.kernelClockMs ?? null;
    this.treeTool = opts.treeTool ?? (() => null);
  }

  /** Lists `mount` and reads the files `select` picks, through the guard. */
  async capture(rec: SandboxRecord, mount: string, o: CaptureOptions): Promise<CaptureResult> {
    const tool = this.toolOf(rec);
    // An agent binary built before `capture-all` refuses it: `capture` then.
    if (tool && o.readAll && this.refused.get(rec.containerId!) !== 'capture-all') {
      try {
        return await this.captureWith(rec, mount, o, tool, true);
      } catch (err) {
        if (!(err instanceof ToolMissing)) throw err;
        this.remember(rec, 'capture-all');
      }
    }
    try {
      return await this.captureWith(rec, mount, o, tool, false);
    } catch (err) {
      // An agent binary built before its `tree` mode refuses it: the script then.
      if (!(err instanceof ToolMissing)) throw err;
      this.remember(rec, 'tree');
      return this.captureWith(rec, mount, o, null, false);
    }
  }

  /** The tree tool of the sandbox's container, unless its binary refused `tree` before. */
  private toolOf(rec: SandboxRecord): string | null {
    if (!rec.containerId || this.refused.get(rec.containerId) === 'tree') return null;
    return this.treeTool(rec.containerId);
  }

  private remember(rec: SandboxRecord, mode: 'capture-all' | 'tree'): void {
    if (!rec.containerId) return;
    if (this.refused.size >= MAX_REFUSALS) this.refused.clear();
    this.refused.set(rec.containerId, mode);
  }

  private async captureWith(
    rec: SandboxRecord,
    mount: string,
    o: CaptureOptions,
    tool: string | null,
    all: boolean,
  ): Promise<CaptureResult> {
    const marker = `--director-${randomBytes(12).toString('hex')}--`;
    const nowS = this.kernelClockMs ? Math.floor(this.kernelClockMs() / 1000) : null;
    const args = [all ? 'capture-all' : 'capture', mount, marker, ...(nowS === null ? [] : [String(nowS)])];
    const run = await this.start(rec, args, o.timeoutMs, tool);
    try {
      const stdin = run.h.stdin!;
      stdin.on('error', () => undefined);
      // `capture-all` reads no answer: its input ends now.
      if (all) stdin.end();
      const listed = await this.listing(run, marker, o.maxEntries, rec, mount, tool !== null);
      const listing = nowS === null ? listed : { ...listed, listedAtS: nowS };
      const { paths, maxBytes } = await o.select(listing);
      const asked = new Map<string, 'file' | 'symlink'>();
      // (Nothing asked, as for an unchanged mount: no map of the listing is built.)
      const kinds = paths.length ? new Map(listing.entries.map((e) => [e.path, e.kind])) : null;
      for (const p of paths) {
        const k = kinds!.get(p);
        if (k !== 'file' && k !== 'symlink') throw new Error(`capture asked for ${p}, which is not a listed file or symlink`);
        asked.set(p, k);
      }
      if (all && asked.size !== listing.entries.filter((e) => e.kind === 'file' || e.kind === 'symlink').length)
        throw new Error('a capture of every file picked only some of them');
      // `0`: nothing to read, the script ends without starting `xargs` and `tar`. The capture is
      // complete with the listing: the reader's end is not waited for (it ends by itself).
      if (!all) stdin.end(Buffer.from(paths.length ? `1\n${paths.map((p) => `./${p}\0`).join('')}` : '0\n'));
      if (!paths.length) {
        run.detach();
        return { listing, missing: [] };
      }
      const got = new Set<string>();
      for await (const e of guardedTree(run.rest(), { maxBytes, maxEntries: paths.length, wholeUpTo: o.wholeUpTo ?? -1 })) {
        const want = asked.get(e.path);
        const fits = want === 'symlink' ? e.type === 'symlink' : e.type === 'file' || e.type === 'hardlink';
        if (!want || got.has(e.path) || !fits)
          throw new UnsafeArchiveError('UNSAFE_ARCHIVE', e.path, 'entry the capture did not ask for (changed while it was read?)');
        got.add(e.path);
        await o.onEntry(e);
      }
      const code = await run.done;
      const missing = paths.filter((p) => !got.has(p));
      // xargs answers 123 when tar failed on some path (removed or unreadable since the listing): those are `missing`.
      if (code !== 0 && !(code === 123 && missing.length)) throw this.failed(run, `reading ${mount}`, code);
      return { listing, missing };
    } catch (err) {
      throw this.mapError(err, run, mount);
    } finally {
      run.close();
    }
  }

  /**
   * Lists `mount`, stages what `plan` says inside it, and swaps it in by renames; any failure
   * before the end leaves the mount as it was (a RestoreFailedError says whether it could).
   */
  async restore<W extends SyncWanted>(rec: SandboxRecord, mount: string, o: RestoreOptions<W>): Promise<RestoreResult<W>> {
    const tool = this.toolOf(rec);
    try {
      return await this.restoreWith(rec, mount, o, tool);
    } catch (err) {
      // As for a capture: an agent binary without `tree` has refused before doing anything.
      if (!(err instanceof ToolMissing)) throw err;
      this.remember(rec, 'tree');
      return this.restoreWith(rec, mount, o, null);
    }
  }

  private async restoreWith<W extends SyncWanted>(
    rec: SandboxRecord,
    mount: string,
    o: RestoreOptions<W>,
    tool: string | null,
  ): Promise<RestoreResult<W>> {
    const marker = `--director-${randomBytes(12).toString('hex')}--`;
    const stage = `${STAGE_PREFIX}${randomBytes(8).toString('hex')}`;
    const run = await this.start(rec, ['restore', mount, stage, marker, o.commit ? '1' : '0'], o.timeoutMs, tool);
    try {
      const listing = await this.listing(run, marker, o.maxEntries, rec, mount, tool !== null);
      const plan = o.plan(listing);
      // The script may refuse before reading everything (no room to stage): its answer says why.
      const sent = writeAll(run.h.stdin!, packTree(stagedTree(plan, stage), { uid: SANDBOX_UID, gid: SANDBOX_UID })).catch(
        (err: unknown) => err,
      );
      const out: Buffer[] = [];
      for await (const chunk of run.rest()) out.push(chunk);
      const code = await run.done;
      const sendError = await sent;
      const answer = Buffer.concat(out).toString('utf8').trim().split('\n').pop() ?? '';
      if (code === 0 && answer === 'OK') return { plan, stage };
      const why = run.stderr() || `exit ${code}`;
      const unchanged = { sandboxId: rec.id, mount, reverted: true };
      if (code !== 12 && code !== 13) {
        // Nothing was swapped: the script swaps only after the whole archive, `complete` last, arrived.
        if (/no space left|quota/i.test(why))
          throw new RestoreFailedError(
            'PAYLOAD_TOO_LARGE',
            `the files to restore do not fit in ${mount}'s free space; nothing was changed`,
            {
              ...unchanged,
              field: mount,
            },
          );
        if (sendError instanceof Error)
          throw new RestoreFailedError(
            'INTERNAL_ERROR',
            `sending the files for ${mount} failed; nothing was changed: ${sendError.message}`,
            unchanged,
          );
        if (code === 10 || code === 11)
          throw new RestoreFailedError('UNPROCESSABLE', `staging the files in ${mount} failed; nothing was changed: ${why}`, unchanged);
      }
      if (code === 12)
        throw new RestoreFailedError(
          'UNPROCESSABLE',
          `putting the files back in ${mount} failed and was undone; nothing was changed: ${why}`,
          {
            sandboxId: rec.id,
            mount,
            reverted: true,
          },
        );
      if (code === 13)
        throw new RestoreFailedError('INTERNAL_ERROR', `putting the files back in ${mount} failed and could not be fully undone: ${why}`, {
          sandboxId: rec.id,
          mount,
          reverted: false,
          stage,
        });
      throw this.failed(run, `restoring ${mount}`, code);
    } catch (err) {
      throw this.mapError(err, run, mount);
    } finally {
      run.close();
    }
  }

  /** Ends an uncommitted restore: `commit` drops the replaced files, `undo` puts them back. */
  async finish(rec: SandboxRecord, mount: string, stage: string, how: 'commit' | 'undo', timeoutMs: number): Promise<void> {
    const run = await this.start(rec, [how, mount, stage], timeoutMs, null);
    try {
      for await (const _ of run.rest());
      const code = await run.done;
      if (code !== 0) throw this.failed(run, `${how} of the restore of ${mount}`, code);
    } finally {
      run.close();
    }
  }

  /** Runs the script with `args`, or `tool tree ...args` (the same in one process) when the container has the tool. */
  private async start(rec: SandboxRecord, args: string[], timeoutMs: number, tool: string | null): Promise<Run> {
    if (rec.status !== 'running' || !rec.containerId)
      throw conflict(`sandbox ${rec.id} is ${rec.status}; its files need it running`, { status: rec.status });
    // A restore, and the commit or undo that ends one, must not stop half-way through its swap
    // when Director dies or shuts down: it finishes in the sandbox (issue 15: never mixed).
    // The sandbox's own deadline comes a little after ours, so while Director lives its timer
    // decides (and names) a timeout; it is the backstop once Director is gone.
    // The same protocol, output and exit statuses either way (images/agent/tree.c).
    const cmd = tool ? [tool, 'tree', ...args] : ['/bin/sh', '-c', TREE_SCRIPT, 'director-tree', ...args];
    const capture = args[0] === 'capture' || args[0] === 'capture-all';
    const h = await this.open(rec.containerId, cmd, {
      timeoutMs: timeoutMs + SANDBOX_DEADLINE_GRACE_MS,
      finishOnDisconnect: !capture,
      // A capture's output is read as fast as it comes (the guard, the blob store): fewer grants.
      ...(capture ? { outputWindowBytes: CAPTURE_WINDOW_BYTES } : {}),
      ...(tool ? { agentTree: true } : {}),
    });
    const err: Buffer[] = [];
    let errBytes = 0;
    h.stderr.on('data', (b: Buffer) => {
      // Kept short: a hostile sandbox controls what its tools print.
      if (errBytes < 4096) err.push(b);
      errBytes += b.length;
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      void h.kill().catch(() => undefined);
      h.stdout.destroy(new DirectorError('UNPROCESSABLE', `the sandbox did not finish within ${timeoutMs} ms`, { sandboxId: rec.id }));
    }, timeoutMs);
    timer.unref();
    const it = h.stdout[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    let carry: Buffer = Buffer.alloc(0);
    let exited = false;
    let detached = false;
    const done = h.wait().then(
      (r) => (timedOut ? -2 : r.exitCode),
      () => -1,
    );
    void done.then(() => (exited = true));
    return {
      h,
      stderr: () =>
        Buffer.concat(err)
          .toString('utf8')
          .replace(/[^\x20-\x7e\n]/g, '?')
          .trim()
          .slice(0, 500),
      async upTo(marker, maxLines) {
        const { body, rest } = await scanUpTo(carry, () => it.next(), marker, maxLines);
        carry = rest;
        return body;
      },
      async *rest() {
        if (carry.length) yield carry;
        carry = Buffer.alloc(0);
        for (;;) {
          const next = await it.next();
          if (next.done) return;
          yield next.value;
        }
      },
      done,
      close() {
        if (detached) return;
        clearTimeout(timer);
        // A run that did not reach its end (an error on our side) must not leave the script behind.
        if (!exited) void h.kill().catch(() => undefined);
        h.stdin?.destroy();
        h.stdout.destroy();
      },
      detach() {
        detached = true;
        void done.then(() => clearTimeout(timer));
        void (async () => {
          for (;;) if ((await it.next()).done) return;
        })().catch(() => undefined);
      },
    };
  }

  private async listing(
    run: Run,
    marker: string,
    maxEntries: number,
    rec: SandboxRecord,
    mount: string,
    viaTool: boolean,
  ): Promise<Listing> {
    let body: Buffer;
    try {
      body = await run.upTo(marker, maxEntries + 1);
    } catch (err) {
      if (err instanceof ListingEnded) {
        const code = await run.done;
        // Exit 2 with nothing printed: the binary has no `tree` mode (its usage message).
        if (viaTool && code === 2 && err.empty) throw new ToolMissing();
        throw this.failed(run, `listing ${mount}`, code);
      }
      throw err;
    }
    return this.listings.parse(`${rec.containerId}\n${mount}`, body, maxEntries);
  }

  private failed(run: Run, what: string, code: number): DirectorError {
    if (code === -2) return new DirectorError('UNPROCESSABLE', `${what} did not finish in time`, { field: 'sandbox' });
    return new DirectorError('UNPROCESSABLE', `${what} failed in the sandbox (exit ${code}): ${run.stderr() || 'no message'}`, {
      exitCode: code,
    });
  }

  private mapError(err: unknown, run: Run, mount: string): Error {
    if (err instanceof DirectorError) return err;
    if (err instanceof UnsafeArchiveError) {
      const mapped = mapArchiveError(err);
      if (mapped instanceof DirectorError && mapped.details) mapped.details.field = mount;
      return mapped;
    }
    if (run.h.stdout.destroyed && run.h.stdout.errored instanceof DirectorError) return run.h.stdout.errored;
    return err instanceof Error ? err : new Error(String(err));
  }
}

class ToolMissing extends Error {}

/**
 * Writes `chunks` into `w` and ends it; on a failure `w` is destroyed and the error thrown. (Not
 * `pipeline`: its clean-up made an abort exception, with its stack, for every restore.)
 */
async function writeAll(w: Writable, chunks: AsyncGenerator<Buffer>): Promise<void> {
  let failed: Error | null = null;
  w.on('error', (err: Error) => (failed ??= err));
  try {
    for await (const c of chunks) {
      if (!w.write(c)) await drained(w);
      if (w.destroyed || failed) break;
    }
    if (w.destroyed || failed) throw failed ?? w.errored ?? new Error('the input was closed before the archive was sent');
    w.end();
  } catch (err) {
    w.destroy();
    await chunks.return(undefined);
    throw err;
  }
}

/** Small files whose content is asked for ahead of the packer (their reads overlap). */
const READ_AHEAD = 32;
const READ_AHEAD_MAX_BYTES = 256 * 1024;

/** The stage directory's tree: itself, the plan, `o/<dir>` for every changed directory, `t/...` the staged entries, `complete`. */
function* stagedTree<W extends SyncWanted>(plan: RestorePlan<W>, stage: string): Generator<TreePackEntry> {
  const text = Buffer.from(planText(plan));
  yield { name: stage, type: 'directory', mode: 0o700 };
  yield { name: `${stage}/plan`, type: 'file', mode: 0o600, size: text.length, content: () => Promise.resolve(text) };
  const dirs = new Set<string>();
  const need = (root: 'o' | 't', dir: string) => {
    const parts = dir ? dir.split('/') : [];
    for (let i = 0; i <= parts.length; i++) dirs.add([stage, root, ...parts.slice(0, i)].join('/'));
  };
  for (const d of plan.dirs) {
    need('o', d.dir);
    if (d.add.length) need('t', d.dir);
  }
  for (const name of [...dirs].sort()) yield { name, type: 'directory', mode: 0o700 };
  const small = plan.stage.filter((w) => w.kind === 'file' && w.content && (w.size ?? 0) <= READ_AHEAD_MAX_BYTES);
  const started = new Map<W, Promise<Buffer | AsyncIterable<unknown>>>();
  let next = 0;
  let at = 0;
  for (const w of plan.stage) {
    const name = `${stage}/t/${w.path}`;
    const mtimeMs = (w.mtimeS ?? 0) * 1000 || undefined;
    if (w.kind === 'directory') yield { name, type: 'directory', mode: (w.mode & 0o777) | 0o700, ...(mtimeMs ? { mtimeMs } : {}) };
    else if (w.kind === 'symlink') yield { name, type: 'symlink', mode: 0o777, linkname: w.target ?? '', ...(mtimeMs ? { mtimeMs } : {}) };
    else {
      let content = w.content;
      if (content && small[at] === w) {
        at++;
        for (; next < small.length && next < at + READ_AHEAD; next++) {
          const p = small[next]!.content!();
          p.catch(() => undefined); // read later by the packer, which reports the failure
          started.set(small[next]!, p);
        }
        const p = started.get(w)!;
        started.delete(w);
        content = () => p;
      }
      yield {
        name,
        type: 'file',
        mode: w.mode & 0o777,
        size: w.size ?? 0,
        ...(content ? { content } : {}),
        ...(mtimeMs ? { mtimeMs } : {}),
      };
    }
  }
  // Last: the script swaps nothing unless the whole archive arrived (a cut stream can end on an entry boundary).
  yield { name: `${stage}/complete`, type: 'file', mode: 0o600, size: 0 };
}
