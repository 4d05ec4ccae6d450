import path from 'node:path/posix';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DirectorError, conflict, validationError } from '../../core/errors.ts';
import { guardDownloadTar, readSingleFile, sanitizeUploadTar, UnsafeArchiveError, type SingleFile } from './files.ts';
import { SANDBOX_UID, SANDBOX_USER } from './hardening.ts';
import { engineCall } from './engine-call.ts';
import type { Caller, SandboxManager } from './manager.ts';
import { PolicyViolationError } from './spec.ts';

const SAFE_PATH = /^\/[A-Za-z0-9._@+ /-]*$/;
const MAX_ENTRIES = 10_000;

/**
 * Files in and out of a running sandbox. Both directions run `cat`/`tar` inside the sandbox as
 * its own unprivileged user, so they see exactly what the sandbox sees (tmpfs mounts
 * included) and can write only where the sandbox can. Everything that comes back is treated
 * as hostile: it passes the tar guard (no links, devices, absolute or `..` names, size caps)
 * before it reaches a client or the host.
 */
export class FileTransfer {
  private readonly manager: SandboxManager;
  constructor(manager: SandboxManager) {
    this.manager = manager;
  }

  private target(caller: Caller, id: string, p: string, field = 'path') {
    const rec = this.manager.get(caller, id);
    if (rec.status !== 'running' || !rec.containerId)
      throw conflict(`sandbox ${id} is ${rec.status}; files need a running sandbox`, { status: rec.status });
    if (!SAFE_PATH.test(p) || path.normalize(p) !== p.replace(/(.)\/+$/, '$1'))
      throw validationError(field, 'must be a normalized absolute path', { value: p });
    if (/^\/(proc|sys|dev)(\/|$)/.test(p))
      throw new PolicyViolationError(field, 'kernel and device filesystems are not reachable through the files API');
    return { rec, containerId: rec.containerId, path: path.normalize(p) };
  }

  /** Writes one file (`format: 'file'`) or extracts a tar archive into a directory (`format: 'tar'`). */
  async upload(caller: Caller, id: string, p: string, body: Readable, format: 'file' | 'tar'): Promise<{ path: string; bytes: number }> {
    const t = this.target(caller, id, p);
    if (!t.rec.spec.securityPolicy.allowFilesystem)
      throw new DirectorError('AUTHORIZATION_ERROR', 'this sandbox has no writable filesystem (allowFilesystem=false)', {
        field: 'securityPolicy.allowFilesystem',
      });
    const max = this.manager.deps.config.fileMaxBytes;
    const cmd = format === 'file' ? ['/bin/sh', '-c', 'cat > "$1"', 'upload', t.path] : ['tar', '-x', '-f', '-', '-C', t.path];
    const h = await engineCall(() => this.manager.deps.engine.exec(t.containerId, { cmd, env: {}, user: SANDBOX_USER, stdin: true }));
    let bytes = 0;
    let tooLarge = false;
    const counter = new PassThrough();
    counter.on('data', (b: Buffer) => {
      bytes += b.length;
      if (bytes > max && !tooLarge) {
        tooLarge = true;
        counter.destroy(new UnsafeArchiveError('TOO_LARGE', '', `upload exceeds ${max} bytes`));
      }
    });
    const source =
      format === 'tar' ? sanitizeUploadTar(body, { maxBytes: max, maxEntries: MAX_ENTRIES, uid: SANDBOX_UID, gid: SANDBOX_UID }) : body;
    const stderr: Buffer[] = [];
    h.stderr.on('data', (b: Buffer) => stderr.push(b));
    h.stdout.resume();
    try {
      await pipeline(source, counter, h.stdin!);
    } catch (err) {
      await h.kill().catch(() => undefined);
      throw mapArchiveError(err);
    }
    const { exitCode } = await h.wait();
    if (exitCode !== 0)
      throw new DirectorError(
        'UNPROCESSABLE',
        `writing ${t.path} failed in the sandbox: ${Buffer.concat(stderr).toString().trim().slice(0, 300)}`,
        { field: 'path', exitCode },
      );
    return { path: t.path, bytes };
  }

  /** Streams `tar -c` of a path out of the sandbox, through the guard. */
  private async tarOut(caller: Caller, id: string, p: string): Promise<{ tar: Readable; failed: Promise<string | null> }> {
    const t = this.target(caller, id, p);
    const dir = path.dirname(t.path);
    const base = path.basename(t.path) || '.';
    const h = await engineCall(() =>
      this.manager.deps.engine.exec(t.containerId, { cmd: ['tar', '-c', '-f', '-', '-C', dir, '--', base], env: {}, user: SANDBOX_USER }),
    );
    const stderr: Buffer[] = [];
    h.stderr.on('data', (b: Buffer) => stderr.push(b));
    const failed = h
      .wait()
      .then(({ exitCode }) =>
        exitCode === 0 ? null : Buffer.concat(stderr).toString().trim().slice(0, 300) || `tar exited with ${exitCode}`,
      );
    return { tar: h.stdout, failed };
  }

  /** One regular file; a directory, link or device is refused. */
  async downloadFile(caller: Caller, id: string, p: string): Promise<SingleFile> {
    const { tar, failed } = await this.tarOut(caller, id, p);
    try {
      return await readSingleFile(tar, { maxBytes: this.manager.deps.config.fileMaxBytes });
    } catch (err) {
      const why = await failed;
      if (why) throw new DirectorError('NOT_FOUND', `cannot read ${p} in the sandbox: ${why}`, { field: 'path' });
      throw mapArchiveError(err);
    }
  }

  /** A guarded tar stream of a file or directory (links, devices and escapes are refused). */
  async downloadTar(caller: Caller, id: string, p: string): Promise<Readable> {
    const { tar } = await this.tarOut(caller, id, p);
    return guardDownloadTar(tar, { maxBytes: this.manager.deps.config.fileMaxBytes, maxEntries: MAX_ENTRIES });
  }
}

export function mapArchiveError(err: unknown): Error {
  if (err instanceof UnsafeArchiveError) {
    if (err.code === 'TOO_LARGE') return new DirectorError('PAYLOAD_TOO_LARGE', err.message, { field: 'body', reason: err.reason });
    return new DirectorError('UNPROCESSABLE', `refused: ${err.reason}${err.entry ? ` (${err.entry})` : ''}`, {
      field: 'path',
      code: err.code,
      entry: err.entry,
      reason: err.reason,
    });
  }
  return err instanceof Error ? err : new Error(String(err));
}
