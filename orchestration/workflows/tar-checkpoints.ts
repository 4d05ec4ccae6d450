/**
 * A small {@link WorkflowCheckpoints} over the runtime alone, used until the checkpoints area
 * (`orchestration/checkpoints/`) is wired in its place. A checkpoint is a tar of each writable
 * path of the sandbox (its `allowedPaths`; `/tmp` is scratch and not kept), read through the
 * runtime's FileTransfer (so the tar guard applies: links, devices and oversize are refused),
 * stored under the data dir with the run's data beside it. Restoring empties those paths in
 * the sandbox and extracts the tars back, so exactly the checkpoint's files are there after it.
 *
 * Layout: `<dir>/<sessionId>/<checkpointId>/{meta.json, 0.tar, 1.tar ...}`, written to a
 * temporary directory and renamed into place, so a crash mid-capture leaves no half checkpoint.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import posix from 'node:path/posix';
import { pipeline } from 'node:stream/promises';
import type { Clock } from '../../core/clock.ts';
import { DirectorError, notFound } from '../../core/errors.ts';
import { newId } from '../../core/ids.ts';
import type { Caller } from '../../runtime/sandbox/manager.ts';
import type { FileTransfer } from '../../runtime/sandbox/transfer.ts';
import type { RunSandboxes, StepExecutor, WorkflowCheckpoints } from './ports.ts';

interface Meta {
  id: string;
  workspace: string;
  sessionId: string;
  sandboxId: string;
  name: string;
  description: string;
  data: Record<string, unknown>;
  paths: string[];
  createdMs: number;
}

/** Empties a directory (dot files included) as the sandbox user; globs that match nothing stay literal and `rm -f` ignores them. */
const EMPTY_DIR = 'cd -- "$1" && rm -rf -- ./* ./.[!.]* ./..?*';

export class TarCheckpoints implements WorkflowCheckpoints {
  readonly #files: Pick<FileTransfer, 'downloadTar' | 'upload'>;
  readonly #executor: StepExecutor;
  readonly #sandboxes: Pick<RunSandboxes, 'byId'>;
  readonly #dir: string;
  readonly #clock: Clock;
  readonly #timeoutMs: number;

  constructor(d: {
    files: Pick<FileTransfer, 'downloadTar' | 'upload'>;
    executor: StepExecutor;
    sandboxes: Pick<RunSandboxes, 'byId'>;
    dir: string;
    clock: Clock;
    /** Timeout of the command that empties a path before a restore (at most DIRECTOR_MAX_EXEC_TIMEOUT_MS). Default 30000. */
    timeoutMs?: number;
  }) {
    this.#files = d.files;
    this.#executor = d.executor;
    this.#sandboxes = d.sandboxes;
    this.#dir = d.dir;
    this.#clock = d.clock;
    this.#timeoutMs = d.timeoutMs ?? 30_000;
  }

  #paths(caller: Caller, sandboxId: string): string[] {
    const rec = this.#sandboxes.byId(sandboxId);
    if (!rec || rec.workspace !== caller.workspace) throw notFound('sandbox', sandboxId);
    return rec.spec.securityPolicy.allowedPaths;
  }

  async capture(caller: Caller, sessionId: string, sandboxId: string, name: string, description: string, data: Record<string, unknown>) {
    const paths = this.#paths(caller, sandboxId);
    const id = newId('ckp');
    const final = path.join(this.#dir, sessionId, id);
    const tmp = `${final}.partial`;
    await mkdir(tmp, { recursive: true, mode: 0o700 });
    try {
      for (const [i, p] of paths.entries()) {
        const tar = await this.#files.downloadTar(caller, sandboxId, p);
        await pipeline(tar, createWriteStream(path.join(tmp, `${i}.tar`), { mode: 0o600 }));
      }
      const meta: Meta = {
        id,
        workspace: caller.workspace,
        sessionId,
        sandboxId,
        name,
        description,
        data,
        paths,
        createdMs: this.#clock.nowMs(),
      };
      await writeFile(path.join(tmp, 'meta.json'), JSON.stringify(meta), { mode: 0o600 });
      await rename(tmp, final);
    } catch (err) {
      await rm(tmp, { recursive: true, force: true });
      throw err;
    }
    return { id };
  }

  async restore(caller: Caller, checkpointId: string, sandboxId: string): Promise<void> {
    const found = await this.#find(checkpointId);
    if (!found || found.meta.workspace !== caller.workspace) throw notFound('checkpoint', checkpointId);
    const { meta, dir } = found;
    const now = this.#paths(caller, sandboxId);
    const missing = meta.paths.filter((p) => !now.includes(p));
    if (missing.length)
      throw new DirectorError(
        'CONFLICT',
        `sandbox ${sandboxId} has no writable ${missing.join(', ')} to restore checkpoint ${checkpointId} into`,
      );
    for (const [i, p] of meta.paths.entries()) {
      const r = await this.#executor.run(caller, sandboxId, {
        command: ['/bin/sh', '-c', EMPTY_DIR, 'restore', p],
        timeout: this.#timeoutMs,
      });
      if (r.exitCode !== 0)
        throw new DirectorError(
          'UNPROCESSABLE',
          `emptying ${p} before the restore failed (exit ${r.exitCode}): ${r.stderr.trim().slice(0, 300)}`,
        );
      await this.#files.upload(caller, sandboxId, posix.dirname(p), createReadStream(path.join(dir, `${i}.tar`)), 'tar');
    }
  }

  /** Removes the stored checkpoints of a session (when it is terminated). */
  async deleteOfSession(sessionId: string): Promise<void> {
    await rm(path.join(this.#dir, sessionId), { recursive: true, force: true });
  }

  async #find(id: string): Promise<{ meta: Meta; dir: string } | null> {
    if (!/^ckp_[A-Za-z0-9_-]{16}$/.test(id)) return null;
    let sessions: string[];
    try {
      sessions = await readdir(this.#dir);
    } catch {
      return null;
    }
    for (const s of sessions) {
      const dir = path.join(this.#dir, s, id);
      try {
        return { meta: JSON.parse(await readFile(path.join(dir, 'meta.json'), 'utf8')) as Meta, dir };
      } catch {
        // not in this session
      }
    }
    return null;
  }
}
