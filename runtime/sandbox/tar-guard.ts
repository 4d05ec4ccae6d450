/**
 * The one place that decides whether a tar entry may pass. Everything a sandbox hands back
 * (and every archive a client uploads) is hostile: only regular files and directories with
 * safe relative names get through, within byte and entry caps. `files.ts` builds the upload,
 * download and extraction paths on top of `guardedEntries`; checkpoints read a sandbox's tree
 * through `guardedTree`, which also passes links as records (their target as text, never
 * followed, never written anywhere on the host). The archive is framed by `tar-parse.ts`, which
 * decides nothing: every header it reads is judged here.
 */
import { NOT_BYTES, parseTar, TarFormatError, type TarHeader } from './tar-parse.ts';

export type UnsafeArchiveCode = 'UNSAFE_ARCHIVE' | 'NOT_A_FILE' | 'TOO_LARGE';

/** Longest entry name accepted, in UTF-8 bytes (Linux PATH_MAX). */
export const MAX_PATH_BYTES = 4096;
/** Longest single path component accepted, in UTF-8 bytes (Linux NAME_MAX). */
export const MAX_COMPONENT_BYTES = 255;
/**
 * Raw tar bytes allowed per entry on top of content: header, padding and a pax/GNU long-name
 * record. Caps what the parser buffers for headers, which `maxBytes` alone does not bound.
 */
const RAW_OVERHEAD_PER_ENTRY_BYTES = 10 * 1024;
/** Offending names are kept this long at most in errors, so a hostile name cannot flood logs. */
const MAX_REPORTED_NAME_CHARS = 256;

/** A refused archive, file name or stream. `entry` is the offending name ('' for the whole archive). */
export class UnsafeArchiveError extends Error {
  readonly code: UnsafeArchiveCode;
  readonly entry: string;
  readonly reason: string;
  constructor(code: UnsafeArchiveCode, entry: string, reason: string, options?: { cause?: unknown }) {
    const shown = entry.slice(0, MAX_REPORTED_NAME_CHARS);
    super(shown ? `${reason}: ${JSON.stringify(shown)}` : reason, options);
    this.name = 'UnsafeArchiveError';
    this.code = code;
    this.entry = shown;
    this.reason = reason;
  }
}

export interface GuardLimits {
  /** Cap on the summed content size of all entries, in bytes. */
  maxBytes: number;
  /** Cap on the number of entries (files and directories). */
  maxEntries: number;
}

export interface GuardOptions extends GuardLimits {
  /** Code used to refuse links, devices and fifos; readSingleFile reports them as NOT_A_FILE. */
  nonRegularCode?: UnsafeArchiveCode;
}

export interface GuardedEntry {
  /** Normalized relative path: components joined by '/', no '.', no trailing slash. */
  path: string;
  segments: string[];
  type: 'file' | 'directory';
  /** Content size in bytes (0 for directories). */
  size: number;
  /** Permission bits as found in the archive, file-type bits removed. */
  mode: number;
  mtime: Date;
  /** The entry's content (exactly `size` bytes); what the consumer leaves unread is skipped. */
  stream: AsyncIterable<Buffer>;
}

/** {@link guardedTree}'s options: files of at most `wholeUpTo` bytes also come whole (`content`). */
export interface TreeGuardOptions extends GuardOptions {
  wholeUpTo?: number;
}

/**
 * An entry of a sandbox's tree as {@link guardedTree} passes it: a file or directory as in
 * {@link GuardedEntry}, or a link as a record. `symlink`: `linkname` is its target, as text (any
 * target, absolute or outside the tree: it is never resolved). `hardlink`: `linkname` is the
 * normalized path of a file that came earlier in the same archive (the tree's own content).
 */
export interface TreeEntry {
  path: string;
  segments: string[];
  type: 'file' | 'directory' | 'symlink' | 'hardlink';
  /** The link's target; null for files and directories. */
  linkname: string | null;
  /** Content size in bytes (0 for directories). */
  size: number;
  /** Permission bits as found in the archive, file-type bits removed. */
  mode: number;
  mtime: Date;
  /** The entry's content (exactly `size` bytes); what the consumer leaves unread is skipped. */
  stream: AsyncIterable<Buffer>;
  /** A file's whole content, when it has at most {@link TreeGuardOptions.wholeUpTo} bytes, or none (no stream to read). */
  content?: Buffer;
}

const CONTROL_CHARS = /[\u0001-\u001f\u007f]/;
/** Largest mtime the 11-digit octal header field holds, in seconds. */
const MAX_MTIME_S = 0o77777777777;

/**
 * Splits a tar entry name into safe components, refusing anything that could name a path
 * outside the destination. Empty and '.' components are dropped, so `./` yields [].
 */
export function safeSegments(name: string): string[] {
  const refuse = (reason: string) => new UnsafeArchiveError('UNSAFE_ARCHIVE', name, reason);
  if (name.includes('\0')) throw refuse('NUL byte in name');
  // A backslash is a separator on Windows clients, so `..\x` would escape there.
  if (name.includes('\\')) throw refuse('backslash in name');
  if (CONTROL_CHARS.test(name)) throw refuse('control character in name');
  if (name.startsWith('/')) throw refuse('absolute path');
  if (Buffer.byteLength(name) > MAX_PATH_BYTES) throw refuse('name too long');
  const segments = name.split('/').filter((s) => s !== '' && s !== '.');
  for (const s of segments) {
    if (s === '..') throw refuse('parent-directory (..) component');
    if (Buffer.byteLength(s) > MAX_COMPONENT_BYTES) throw refuse('name component too long');
  }
  return segments;
}

interface PathNode {
  kind: 'file' | 'directory';
  children: Map<string, PathNode>;
}

/**
 * The names seen so far, as a trie so memory stays linear in the total name length. Refuses
 * an entry under a file (`x` then `x/y`), a file over anything, and a directory over a file.
 */
class PathTree {
  private readonly root: PathNode = { kind: 'directory', children: new Map() };

  /** Returns why the entry conflicts with an earlier one, or null after recording it. */
  add(segments: string[], kind: PathNode['kind']): string | null {
    let node = this.root;
    for (const seg of segments.slice(0, -1)) {
      let child = node.children.get(seg);
      if (child?.kind === 'file') return 'a parent of this entry is a file';
      if (!child) node.children.set(seg, (child = { kind: 'directory', children: new Map() }));
      node = child;
    }
    const last = segments[segments.length - 1]!;
    const existing = node.children.get(last);
    if (existing && (kind === 'file' || existing.kind === 'file')) return 'duplicate entry';
    if (!existing) node.children.set(last, { kind, children: new Map() });
    return null;
  }
}

/** Throws a RangeError unless both limits are non-negative integers (NaN would disable a cap). */
export function checkLimits(limits: GuardLimits): void {
  for (const key of ['maxBytes', 'maxEntries'] as const) {
    const v = limits[key];
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${key} must be a non-negative integer, got ${v}`);
  }
}

/** The raw-stream cap for given limits: content plus per-entry header overhead. */
export const rawCapBytes = (limits: GuardLimits): number => limits.maxBytes + (limits.maxEntries + 2) * RAW_OVERHEAD_PER_ENTRY_BYTES;

/** What `drained` needs of a writable; fits streamx's (tar-stream) and Node's. */
export interface Drainable {
  readonly destroyed: boolean;
  on(name: 'drain' | 'close', fn: () => void): unknown;
  off(name: 'drain' | 'close', fn: () => void): unknown;
}

/** Resolves once `w` can take more data or is gone. */
export function drained(w: Drainable): Promise<void> {
  if (w.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      w.off('drain', done);
      w.off('close', done);
      resolve();
    };
    w.on('drain', done);
    w.on('close', done);
  });
}

function entryType(header: TarHeader, name: string, code: UnsafeArchiveCode, links: boolean): TreeEntry['type'] {
  switch (header.type) {
    case 'file':
    case 'contiguous-file': // GNU tar treats type 7 as a regular file
      return 'file';
    case 'directory':
      return 'directory';
    case 'link':
      if (links) return 'hardlink';
      throw new UnsafeArchiveError(code, name, 'hardlink entry');
    case 'symlink':
      if (links) return 'symlink';
      throw new UnsafeArchiveError(code, name, 'symlink entry');
    case 'character-device':
    case 'block-device':
      throw new UnsafeArchiveError(code, name, 'device entry');
    case 'fifo':
      throw new UnsafeArchiveError(code, name, 'fifo entry');
    case 'pax-header':
    case 'pax-global-header':
    case 'gnu-long-path':
    case 'gnu-long-link-path':
    case null:
    default:
      // Long-name and pax records are consumed by the parser; anything else is unknown.
      throw new UnsafeArchiveError(code, name, `unsupported entry type ${String(header.type)}`);
  }
}

function entryMtime(header: TarHeader): Date {
  const ms = header.mtime.getTime();
  if (!Number.isFinite(ms)) return new Date(0);
  return new Date(Math.min(Math.max(ms, 0), MAX_MTIME_S * 1000));
}

/**
 * Parses `input` as tar and yields only entries that pass the guard; the first refusal throws
 * an UnsafeArchiveError (a parse failure is UNSAFE_ARCHIVE 'malformed tar archive'; an error
 * from `input` itself is rethrown as is). The archive root (`./`) is skipped. Each yielded
 * entry's stream must be consumed before the next `next()`, or what is left of it is skipped.
 * Stopping early or failing stops an `input` not read to its end (a Node stream is destroyed;
 * one read to its end is left alone). Throws a RangeError on bad limits.
 */
export function guardedEntries(input: AsyncIterable<unknown>, opts: GuardOptions): AsyncGenerator<GuardedEntry, void, undefined> {
  // Without links, only files and directories are ever yielded.
  return guard(input, opts, false) as AsyncGenerator<GuardedEntry, void, undefined>;
}

/**
 * {@link guardedEntries} for reading a sandbox's own tree (checkpoints): symlinks and hard links
 * pass as records instead of being refused. A symlink's target is checked only as text (at most
 * 4096 bytes, no control characters); a hard link must name a file that came earlier in the
 * archive. Both are leaves: an entry under a link's path is refused like one under a file.
 * Devices, fifos and unknown types are still refused.
 */
export function guardedTree(input: AsyncIterable<unknown>, opts: TreeGuardOptions): AsyncGenerator<TreeEntry, void, undefined> {
  return guard(input, opts, true);
}

function linkTarget(header: TarHeader, name: string, type: TreeEntry['type'], files: Set<string> | null): string | null {
  if (type !== 'symlink' && type !== 'hardlink') return null;
  const target = header.linkname ?? '';
  if (header.size !== 0) throw new UnsafeArchiveError('UNSAFE_ARCHIVE', name, 'link entry carries data');
  if (target === '' || Buffer.byteLength(target) > MAX_PATH_BYTES || CONTROL_CHARS.test(target) || target.includes('\0'))
    throw new UnsafeArchiveError('UNSAFE_ARCHIVE', name, 'unusable link target');
  if (type === 'symlink') return target;
  const to = safeSegments(target).join('/');
  if (!files?.has(to)) throw new UnsafeArchiveError('UNSAFE_ARCHIVE', name, 'hard link to a file not earlier in the archive');
  return to;
}

async function* guard(input: AsyncIterable<unknown>, opts: TreeGuardOptions, links: boolean): AsyncGenerator<TreeEntry, void, undefined> {
  checkLimits(opts);
  const state: { inputError: unknown } = { inputError: undefined };
  const entriesOf = parseTar(input, {
    capBytes: rawCapBytes(opts),
    tooLarge: (cap) => new UnsafeArchiveError('TOO_LARGE', '', `archive stream exceeds ${cap} bytes`),
    wholeUpTo: opts.wholeUpTo ?? -1,
    onInputError: (err) => (state.inputError = err),
  });
  const tree = new PathTree();
  // Files seen so far, for hard links (only when links pass).
  const files = links ? new Set<string>() : null;
  let entries = 0;
  let bytes = 0;
  try {
    for await (const { header, content, stream } of entriesOf) {
      const name = header.name;
      if (++entries > opts.maxEntries) throw new UnsafeArchiveError('TOO_LARGE', name, `more than ${opts.maxEntries} entries`);
      const segments = safeSegments(name);
      const type = entryType(header, name, opts.nonRegularCode ?? 'UNSAFE_ARCHIVE', links);
      const size = type === 'file' ? header.size : 0;
      if (type === 'directory' && header.size !== 0) throw new UnsafeArchiveError('UNSAFE_ARCHIVE', name, 'directory entry carries data');
      if (segments.length === 0) {
        if (type !== 'directory') throw new UnsafeArchiveError('UNSAFE_ARCHIVE', name, 'empty name');
        continue;
      }
      const linkname = linkTarget(header, name, type, files);
      bytes += size;
      if (bytes > opts.maxBytes) throw new UnsafeArchiveError('TOO_LARGE', name, `archive content exceeds ${opts.maxBytes} bytes`);
      const conflict = tree.add(segments, type === 'directory' ? 'directory' : 'file');
      if (conflict) throw new UnsafeArchiveError('UNSAFE_ARCHIVE', name, conflict);
      const path = segments.join('/');
      if (type === 'file') files?.add(path);
      yield {
        path,
        segments,
        type,
        linkname,
        size,
        mode: header.mode & 0o7777,
        mtime: entryMtime(header),
        stream: content ? stream : guardedContent(stream, state),
        ...(type === 'file' && content ? { content } : {}),
      };
    }
  } catch (err) {
    throw refusal(err, state);
  }
}

/** A failure of the parse (or of `input`) as the guard reports it. */
function refusal(err: unknown, state: { inputError: unknown }): unknown {
  if (err instanceof UnsafeArchiveError || (state.inputError !== undefined && err === state.inputError)) return err;
  if (err instanceof TarFormatError && err.message === NOT_BYTES) return new UnsafeArchiveError('UNSAFE_ARCHIVE', '', NOT_BYTES);
  return new UnsafeArchiveError('UNSAFE_ARCHIVE', '', 'malformed tar archive', { cause: err });
}

/** A streamed file's content, its failures reported as the guard reports those of headers. */
async function* guardedContent(stream: AsyncIterable<Buffer>, state: { inputError: unknown }): AsyncGenerator<Buffer> {
  try {
    yield* stream;
  } catch (err) {
    throw refusal(err, state);
  }
}
