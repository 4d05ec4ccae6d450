/**
 * Files in and out of sandboxes as tar streams (the engine's putArchive/getArchive). Pure
 * stream logic: every path runs through the guard in `tar-guard.ts`, so links, devices,
 * absolute or `..` names and oversize archives are refused with an UnsafeArchiveError, and
 * what passes is re-packed with fresh headers rather than forwarded byte for byte.
 */
import { constants as fsConstants } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import tarStream from 'tar-stream';
import {
  checkLimits,
  drained,
  guardedEntries,
  safeSegments,
  UnsafeArchiveError,
  type GuardedEntry,
  type GuardLimits,
} from './tar-guard.ts';
import { encodeHeader, END_OF_ARCHIVE, paddingOf } from './tar-format.ts';

export { UnsafeArchiveError, type UnsafeArchiveCode, type GuardLimits } from './tar-guard.ts';

/** A header as tar-stream's pack takes it. */
type TarHeader = Partial<tarStream.Header> & Pick<tarStream.Header, 'name'>;

/** Largest uid/gid the 6-digit octal ustar field holds. */
const MAX_ID = 0o777777;

export interface PackFileOptions {
  /** Content length in bytes; the content must match it exactly. */
  size: number;
  /** Permission bits; default 0o644. Special bits (setuid, setgid, sticky) are dropped. */
  mode?: number;
  uid: number;
  gid: number;
  /** Modification time in ms since the epoch; default now. */
  mtimeMs?: number;
}

export interface UploadOptions extends GuardLimits {
  /** Owner forced onto every entry. */
  uid: number;
  gid: number;
}

export interface SingleFile {
  name: string;
  size: number;
  mode: number;
  content: Buffer;
}

function checkId(label: string, id: number): void {
  if (!Number.isInteger(id) || id < 0 || id > MAX_ID) throw new RangeError(`${label} must be an integer in 0..${MAX_ID}, got ${id}`);
}

/**
 * An entry's content as Buffers, checked against its declared `size`: a chunk that is not bytes,
 * content past the size (refused before the excess reaches the archive, where it would be parsed
 * as further headers) and content that ends short are errors naming the entry.
 */
async function* exactContent(name: string, size: number, content: AsyncIterable<unknown> | Buffer): AsyncGenerator<Buffer> {
  let written = 0;
  for await (const chunk of Buffer.isBuffer(content) ? [content] : content) {
    if (!(chunk instanceof Uint8Array)) throw new UnsafeArchiveError('UNSAFE_ARCHIVE', name, 'content yielded a non-byte chunk');
    written += chunk.byteLength;
    if (written > size) throw new UnsafeArchiveError('TOO_LARGE', name, `content exceeds the declared size of ${size} bytes`);
    yield Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  }
  if (written < size) throw new UnsafeArchiveError('UNSAFE_ARCHIVE', name, `content ended after ${written} of ${size} declared bytes`);
}

/**
 * Writes one entry into `pack`, resolving when it is complete. Content is counted so a
 * source longer than the declared size is refused before the excess reaches the archive,
 * where it would be parsed as further headers.
 */
function writeEntry(pack: tarStream.Pack, header: TarHeader, content?: AsyncIterable<unknown> | Buffer): Promise<void> {
  const size = header.size ?? 0;
  return new Promise<void>((resolve, reject) => {
    const sink = pack.entry(header, (err) => (err ? reject(err) : resolve()));
    // Failures reach us through the entry callback; an unheard 'error' event would crash.
    sink.on('error', () => {});
    if (content === undefined) return;
    void (async () => {
      for await (const chunk of exactContent(header.name, size, content)) {
        if (!sink.write(chunk)) await drained(sink);
        if (sink.destroyed) return;
      }
      sink.end(null);
    })().catch((err: unknown) => {
      const error = err instanceof Error ? err : new Error(String(err));
      pack.destroy(error);
      reject(error);
    });
  });
}

/** Runs `produce` against a fresh pack and exposes the pack as a Node byte stream. */
function packStream(produce: (pack: tarStream.Pack) => Promise<void>): Readable {
  const pack = tarStream.pack();
  produce(pack).then(
    () => pack.finalize(),
    (err: unknown) => pack.destroy(err instanceof Error ? err : new Error(String(err))),
  );
  // tar-stream's pack is a streamx stream; wrapping gives callers (dockerode, fastify) a real
  // Node Readable. Destroying the wrapper destroys the pack, which stops `produce`.
  return Readable.from(pack, { objectMode: false });
}

/**
 * A tar stream holding one regular file, for uploading a single file into a sandbox.
 * `name` must be a safe relative path (no absolute, `..`, NUL, backslash); it throws an
 * UnsafeArchiveError otherwise, and a RangeError on a bad size, uid or gid. Content that is
 * longer or shorter than `opts.size` errors the stream.
 */
export function packFile(name: string, content: Buffer | Readable, opts: PackFileOptions): Readable {
  const segments = safeSegments(name);
  if (segments.length === 0) throw new UnsafeArchiveError('UNSAFE_ARCHIVE', name, 'empty name');
  if (!Number.isSafeInteger(opts.size) || opts.size < 0) throw new RangeError(`size must be a non-negative integer, got ${opts.size}`);
  if (Buffer.isBuffer(content) && content.byteLength !== opts.size)
    throw new RangeError(`size ${opts.size} does not match content length ${content.byteLength}`);
  checkId('uid', opts.uid);
  checkId('gid', opts.gid);
  const header: TarHeader = {
    name: segments.join('/'),
    type: 'file',
    size: opts.size,
    mode: (opts.mode ?? 0o644) & 0o777,
    uid: opts.uid,
    gid: opts.gid,
    mtime: new Date(opts.mtimeMs ?? Date.now()),
  };
  return packStream((pack) => writeEntry(pack, header, content));
}

/** One entry of a tree packed by {@link packTree}. */
export interface TreePackEntry {
  /** Relative path (checked like every tar name). */
  name: string;
  type: 'file' | 'directory' | 'symlink';
  /** Permission bits; special bits are dropped. */
  mode: number;
  /** Files: content length in bytes (the content must match it). */
  size?: number;
  /** Symlinks: the target, as text. */
  linkname?: string;
  mtimeMs?: number;
  /** Files: the content, asked for when the entry is written (so a long tree streams with backpressure). */
  content?: () => Promise<Buffer | AsyncIterable<unknown>>;
}

/**
 * The tar of a whole tree, as chunks, for putting a sandbox's own files back (checkpoint restore):
 * files, directories and symlinks, owned by `uid`/`gid`, with safe names and no special mode bits.
 * The caller makes sure nothing is packed under a symlink's path (the archive is extracted into a
 * fresh directory inside the sandbox, as the sandbox user) and writes the chunks itself (no stream
 * in between). Content that does not match its size, or a failing content source, makes the
 * generator throw; returning it early ends the iteration of `entries`.
 *
 * The headers are written directly (`tar-format.ts`, the same bytes tar-stream writes), and small
 * entries are sent together in chunks of about {@link TREE_CHUNK_BYTES}: a pack stream and a
 * callback per entry cost more than the content of a workspace of small files.
 */
export function packTree(
  entries: Iterable<TreePackEntry> | AsyncIterable<TreePackEntry>,
  opts: { uid: number; gid: number },
): AsyncGenerator<Buffer> {
  checkId('uid', opts.uid);
  checkId('gid', opts.gid);
  return treeChunks(entries, opts);
}

/** Headers and small contents are gathered into chunks of about this many bytes. */
const TREE_CHUNK_BYTES = 64 * 1024;

async function* treeChunks(
  entries: Iterable<TreePackEntry> | AsyncIterable<TreePackEntry>,
  opts: { uid: number; gid: number },
): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let bytes = 0;
  const add = (b: Buffer) => {
    parts.push(b);
    bytes += b.length;
  };
  const take = (): Buffer => {
    const out = parts.length === 1 ? parts[0]! : Buffer.concat(parts, bytes);
    parts = [];
    bytes = 0;
    return out;
  };
  for await (const e of entries) {
    const segments = safeSegments(e.name);
    if (segments.length === 0) throw new UnsafeArchiveError('UNSAFE_ARCHIVE', e.name, 'empty name');
    const name = segments.join('/');
    const base = { mode: e.mode & 0o777, uid: opts.uid, gid: opts.gid, mtimeMs: e.mtimeMs ?? Date.now(), size: 0 };
    if (e.type === 'directory') add(encodeHeader({ ...base, name: `${name}/`, type: 'directory' }));
    else if (e.type === 'symlink') {
      if (!e.linkname || e.linkname.includes('\0')) throw new UnsafeArchiveError('UNSAFE_ARCHIVE', e.name, 'unusable link target');
      add(encodeHeader({ ...base, name, type: 'symlink', linkname: e.linkname }));
    } else {
      const size = e.size ?? 0;
      if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`size must be a non-negative integer, got ${size}`);
      add(encodeHeader({ ...base, name, type: 'file', size }));
      if (size > 0) {
        const content = e.content ? await e.content() : Buffer.alloc(0);
        for await (const buf of exactContent(name, size, content)) {
          if (buf.length >= TREE_CHUNK_BYTES) {
            if (bytes) yield take();
            yield buf;
          } else {
            add(buf);
            if (bytes >= TREE_CHUNK_BYTES) yield take();
          }
        }
        add(paddingOf(size));
      }
    }
    if (bytes >= TREE_CHUNK_BYTES) yield take();
  }
  add(END_OF_ARCHIVE);
  yield take();
}

/** Re-packs guarded entries with headers from `toHeader`; content is copied, never headers. */
function repack(input: Readable, opts: GuardLimits, toHeader: (e: GuardedEntry) => TarHeader): Readable {
  checkLimits(opts);
  return packStream(async (pack) => {
    for await (const e of guardedEntries(input, opts)) {
      await writeEntry(pack, toHeader(e), e.type === 'file' ? e.stream : undefined);
    }
  });
}

const entryName = (e: GuardedEntry) => (e.type === 'directory' ? `${e.path}/` : e.path);

/**
 * Re-packs a client-supplied tar for uploading into a sandbox: regular files and directories
 * only, owned by `opts.uid`/`opts.gid`, permission bits kept but setuid/setgid/sticky dropped.
 * A link, device, fifo, absolute or `..` name, or an archive over `maxBytes` content bytes
 * or `maxEntries` entries errors the stream with an UnsafeArchiveError. Links are refused
 * rather than dropped: a link plus a later file through it would write elsewhere in the
 * container.
 */
export function sanitizeUploadTar(input: Readable, opts: UploadOptions): Readable {
  checkId('uid', opts.uid);
  checkId('gid', opts.gid);
  return repack(input, opts, (e) => ({
    name: entryName(e),
    type: e.type,
    size: e.size,
    mode: e.mode & 0o777,
    uid: opts.uid,
    gid: opts.gid,
    mtime: e.mtime,
  }));
}

/** Download permissions: no special bits, no group/other write, owner always rw (rwx for dirs). */
const downloadMode = (e: GuardedEntry): number => (e.mode & 0o755) | (e.type === 'directory' ? 0o700 : 0o600);

/**
 * Guards a sandbox's tar (getArchive of a directory) before it reaches a client: passes only
 * regular files and directories, re-packed with uid/gid 0, no owner names, masked modes and
 * no link names. Any refused entry, or more than `maxBytes` content bytes or `maxEntries`
 * entries, errors the output with an UnsafeArchiveError.
 */
export function guardDownloadTar(tar: Readable, opts: GuardLimits): Readable {
  return repack(tar, opts, (e) => ({
    name: entryName(e),
    type: e.type,
    size: e.size,
    mode: downloadMode(e),
    uid: 0,
    gid: 0,
    mtime: e.mtime,
  }));
}

/**
 * Reads the one regular file of a getArchive stream into memory. The archive must hold
 * exactly one entry: a directory, link, device or fifo is NOT_A_FILE; an unsafe name, a
 * second entry or a malformed archive is UNSAFE_ARCHIVE; a file over `maxBytes` is
 * TOO_LARGE, refused from its header before any content is buffered.
 */
export async function readSingleFile(tar: Readable, opts: { maxBytes: number }): Promise<SingleFile> {
  let file: SingleFile | undefined;
  for await (const e of guardedEntries(tar, { maxBytes: opts.maxBytes, maxEntries: 2, nonRegularCode: 'NOT_A_FILE' })) {
    if (file) throw new UnsafeArchiveError('UNSAFE_ARCHIVE', e.path, 'archive holds more than one entry');
    if (e.type !== 'file') throw new UnsafeArchiveError('NOT_A_FILE', e.path, `${e.type} entry`);
    const chunks: Buffer[] = [];
    for await (const chunk of e.stream) chunks.push(chunk);
    file = { name: e.path, size: e.size, mode: e.mode & 0o777, content: Buffer.concat(chunks) };
  }
  if (!file) throw new UnsafeArchiveError('UNSAFE_ARCHIVE', '', 'archive holds no file');
  return file;
}

/** Ensures `dir` is a real directory (not a link), creating it if absent. */
async function ensureDirectory(dir: string, mode: number, entry: string): Promise<void> {
  let st;
  try {
    st = await fs.lstat(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    // mkdir does not follow a link in the last component: a link planted since lstat is EEXIST.
    await fs.mkdir(dir, { mode });
    return;
  }
  if (st.isDirectory()) return;
  throw new UnsafeArchiveError(
    'UNSAFE_ARCHIVE',
    entry,
    st.isSymbolicLink() ? 'path crosses a symlink on the host' : 'path crosses a non-directory on the host',
  );
}

const WRITE_FLAGS = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW;

async function writeHostFile(target: string, e: GuardedEntry, mode: number): Promise<void> {
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(target, WRITE_FLAGS, mode);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' || code === 'ELOOP')
      throw new UnsafeArchiveError('UNSAFE_ARCHIVE', e.path, 'file already exists on the host', { cause: err });
    throw err;
  }
  try {
    for await (const chunk of e.stream) {
      for (let off = 0; off < chunk.byteLength;) off += (await fh.write(chunk, off)).bytesWritten;
    }
    await fh.utimes(e.mtime, e.mtime);
  } finally {
    await fh.close();
  }
}

/**
 * Extracts a tar into `destDir` on the host with the download guard. Every parent under
 * `destDir` is checked with lstat to be a real directory (a planted symlink is refused, never
 * followed), files are created with O_EXCL|O_NOFOLLOW, and each target is checked to resolve
 * inside `destDir`. Returns the relative paths written, files and directories, in archive
 * order. On refusal, entries already written stay in `destDir`; nothing is written outside.
 */
export async function extractToHost(tar: Readable, destDir: string, opts: GuardLimits): Promise<string[]> {
  const root = await fs.realpath(destDir);
  const prefix = root.endsWith(path.sep) ? root : root + path.sep;
  const written: string[] = [];
  for await (const e of guardedEntries(tar, opts)) {
    const target = path.resolve(root, ...e.segments);
    if (!target.startsWith(prefix)) throw new UnsafeArchiveError('UNSAFE_ARCHIVE', e.path, 'path resolves outside the destination');
    let dir = root;
    for (const seg of e.segments.slice(0, -1)) {
      dir = path.join(dir, seg);
      await ensureDirectory(dir, 0o755, e.path);
    }
    if (e.type === 'directory') await ensureDirectory(target, downloadMode(e), e.path);
    else await writeHostFile(target, e, downloadMode(e));
    written.push(e.path);
  }
  return written;
}
