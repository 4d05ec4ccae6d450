/**
 * A synchronous tar parser over an async stream of chunks: headers are decoded in place and a
 * file's content is handed over as slices of the chunks it arrived in. It reads what tar-stream's
 * extract (3.2) reads, the same way (ustar with its name prefix, GNU and old-GNU headers, pax and
 * pax-global records, GNU long names and link names, base-256 numbers, UTF-8 fields, the header
 * checksum, zero blocks skipped, "unexpected end of data" for a stream cut inside a block), so
 * the guard in `tar-guard.ts` sees the headers it saw before. One difference, where tar-stream
 * goes wrong: a long-name or pax record of zero or negative size is refused (tar-stream leaves
 * its state half-set and frames what follows by how it is chunked).
 * `test/unit/runtime/tar-parse.test.ts` runs both over the same archives, whole and corrupted.
 *
 * Why not tar-stream: it makes a stream per entry and passes every chunk through callbacks and
 * promises. Parsing and guarding a 1 MB workspace's tar (242 files) took 2.3 ms that way and
 * 0.9 ms this way (same archive, same guard); checkpoints read many small files.
 *
 * Nothing here decides what is safe: the parser only frames the archive. Every header it
 * returns goes through the guard, which refuses names, types, links and sizes as before.
 */
import { BLOCK, paddingBytes as padding } from './tar-format.ts';

/** Largest pax or GNU long-name record accepted (tar-stream's limit). */
export const MAX_LONG_HEADER_BYTES = 4 * 1024 * 1024;

/** The entry types, named as tar-stream names them; null for a type flag tar does not define. */
export type TarType =
  | 'file'
  | 'link'
  | 'symlink'
  | 'character-device'
  | 'block-device'
  | 'directory'
  | 'fifo'
  | 'contiguous-file'
  | 'pax-header'
  | 'pax-global-header'
  | 'gnu-long-link-path'
  | 'gnu-long-path'
  | null;

export interface TarHeader {
  name: string;
  type: TarType;
  mode: number;
  size: number;
  mtime: Date;
  linkname: string | null;
}

/** The error for an input that yields something other than bytes. */
export const NOT_BYTES = 'archive stream yielded a non-byte chunk';

/** A malformed archive (not a refusal of the guard's: the guard reports it as such). */
export class TarFormatError extends Error {
  override readonly name = 'TarFormatError';
}

function toType(flag: number): TarType {
  switch (flag) {
    case 0:
      return 'file';
    case 1:
      return 'link';
    case 2:
      return 'symlink';
    case 3:
      return 'character-device';
    case 4:
      return 'block-device';
    case 5:
      return 'directory';
    case 6:
      return 'fifo';
    case 7:
      return 'contiguous-file';
    case 72:
      return 'pax-header';
    case 55:
      return 'pax-global-header';
    case 27:
      return 'gnu-long-link-path';
    case 28:
    case 30:
      return 'gnu-long-path';
  }
  return null;
}

function indexOf(b: Buffer, byte: number, from: number, end: number): number {
  for (let i = from; i < end; i++) if (b[i] === byte) return i;
  return end;
}

const str = (b: Buffer, off: number, len: number): string => b.toString('utf8', off, indexOf(b, 0, off, off + len));

function parse256(b: Buffer, off: number, len: number): number | null {
  // First byte 0x80: positive, 0xff: two's complement negative (as tar-stream and node-tar read them).
  const positive = b[off] === 0x80;
  if (!positive && b[off] !== 0xff) return null;
  let sum = 0;
  for (let i = off + 1; i < off + len; i++) sum = sum * 256 + (positive ? b[i]! : 0xff - b[i]!);
  return positive ? sum : -sum;
}

/** A numeric field: octal (leading spaces and NULs skipped, up to a space), or base-256. */
function num(b: Buffer, off: number, len: number): number | null {
  if (b[off]! & 0x80) return parse256(b, off, len);
  let i = off;
  const end0 = off + len;
  while (i < end0 && b[i] === 32) i++;
  const end = indexOf(b, 32, i, end0);
  while (i < end && b[i] === 0) i++;
  if (end === i) return 0;
  // UTF-8, as tar-stream decodes it (parseInt skips leading Unicode white space, which decides some fields).
  return parseInt(b.toString('utf8', i, end), 8);
}

function checksum(b: Buffer): number {
  let sum = 8 * 32;
  for (let i = 0; i < 148; i++) sum += b[i]!;
  for (let i = 156; i < BLOCK; i++) sum += b[i]!;
  return sum;
}

const USTAR = Buffer.from('ustar\0', 'latin1');
const GNU = Buffer.from('ustar ', 'latin1');
const GNU_VERSION = Buffer.from(' \0', 'latin1');

/** Decodes a header block; null for a zero block. */
function decode(b: Buffer): TarHeader | null {
  const sum = checksum(b);
  // Only the checksum's own initial value: a zero block.
  if (sum === 8 * 32) return null;
  if (sum !== num(b, 148, 8)) throw new TarFormatError('Invalid tar header. Maybe the tar is corrupted or it needs to be gunzipped?');
  const flag = b[156] === 0 ? 0 : b[156]! - 48;
  let name = str(b, 0, 100);
  if (b.compare(USTAR, 0, 6, 257, 263) === 0) {
    if (b[345]) name = `${str(b, 345, 155)}/${name}`;
  } else if (!(b.compare(GNU, 0, 6, 257, 263) === 0 && b.compare(GNU_VERSION, 0, 2, 263, 265) === 0)) {
    throw new TarFormatError('Invalid tar header: unknown format.');
  }
  // tar-stream means to read an old tar's `name/` of type 0 as a directory but does not (it
  // computes the type first): such an entry is a file named `name`, as it always was here.
  return {
    name,
    type: toType(flag),
    mode: num(b, 100, 8) ?? 0,
    size: num(b, 124, 12) ?? NaN,
    mtime: new Date(1000 * (num(b, 136, 12) ?? NaN)),
    linkname: b[157] === 0 ? null : str(b, 157, 100),
  };
}

/** Pax records (`<len> <key>=<value>\n`), read as tar-stream reads them. */
function decodePax(b: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let rest = b;
  while (rest.length) {
    let i = 0;
    while (i < rest.length && rest[i] !== 32) i++;
    const len = parseInt(rest.toString('utf8', 0, i), 10);
    if (!len) return out;
    // subarray, as tar-stream: a negative length counts from the end (what it yields, the guard judges).
    const rec = rest.subarray(i + 1, len - 1).toString('utf8');
    const eq = rec.indexOf('=');
    if (eq === -1) return out;
    out[rec.slice(0, eq)] = rec.slice(eq + 1);
    const next = rest.subarray(len);
    // Not reached (a record that does not shorten the rest has no `=` in it), kept so that no
    // input can make this loop run forever on the server's thread.
    if (next.length >= rest.length) return out;
    rest = next;
  }
  return out;
}

/** The chunks not parsed yet, pulled from the input as the parser needs them. */
class Source {
  readonly #it: AsyncIterator<unknown>;
  readonly #o: ParseOptions;
  #bufs: Buffer[] = [];
  #avail = 0;
  #seen = 0;
  #ended = false;

  constructor(input: AsyncIterable<unknown>, o: ParseOptions) {
    this.#it = input[Symbol.asyncIterator]();
    this.#o = o;
  }

  get available(): number {
    return this.#avail;
  }

  /** Pulls chunks until `n` bytes are there; false if the input ended first. */
  async need(n: number): Promise<boolean> {
    if (!(n >= 0)) throw new TarFormatError(`cannot need ${n} bytes`);
    while (this.#avail < n) {
      if (this.#ended) return false;
      let r: IteratorResult<unknown>;
      try {
        r = await this.#it.next();
      } catch (err) {
        this.#ended = true;
        this.#o.onInputError(err);
        throw err;
      }
      if (r.done) {
        this.#ended = true;
        return false;
      }
      const c = r.value;
      if (!(c instanceof Uint8Array)) throw new TarFormatError(NOT_BYTES);
      if (!c.length) continue;
      this.#seen += c.length;
      if (this.#seen > this.#o.capBytes) throw this.#o.tooLarge(this.#o.capBytes);
      this.#bufs.push(Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.byteLength));
      this.#avail += c.length;
    }
    return true;
  }

  /** Takes `n` available bytes: a slice of one chunk when they lie in one, else a copy. */
  take(n: number): Buffer {
    if (!(n >= 0 && n <= this.#avail)) throw new TarFormatError(`cannot take ${n} of ${this.#avail} buffered bytes`);
    if (n === 0) return EMPTY;
    const first = this.#bufs[0]!;
    if (first.length >= n) {
      this.#avail -= n;
      if (first.length === n) this.#bufs.shift();
      else this.#bufs[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const b = this.#bufs[0]!;
      const k = Math.min(b.length, n - off);
      b.copy(out, off, 0, k);
      off += k;
      if (k === b.length) this.#bufs.shift();
      else this.#bufs[0] = b.subarray(k);
    }
    this.#avail -= n;
    return out;
  }

  /** Takes at most `n` available bytes (at least one), from the first chunk only. */
  takeSome(n: number): Buffer {
    return this.take(Math.min(n, this.#bufs[0]!.length));
  }

  /** Stops the input unless it was read to its end (then it is left alone). */
  stop(): void {
    if (this.#ended) return;
    this.#ended = true;
    void Promise.resolve(this.#it.return?.()).catch(() => undefined);
  }
}

/** A parsed entry: its header and, for a file of at most `wholeUpTo` bytes, its content. */
export interface TarEntry {
  header: TarHeader;
  /** The whole content (files up to `wholeUpTo`, and empty entries); null when it is streamed. */
  content: Buffer | null;
  /** The content (exactly `header.size` bytes); what the consumer leaves unread is skipped. */
  stream: AsyncIterable<Buffer>;
}

export interface ParseOptions {
  /** Input bytes allowed (headers, padding and content); past it `tooLarge` is thrown. */
  capBytes: number;
  tooLarge: (cap: number) => Error;
  /** Files of at most this many bytes come whole (`content`); larger ones as a stream. */
  wholeUpTo: number;
  /** Called with an error the input itself threw (before it is rethrown). */
  onInputError: (err: unknown) => void;
}

const EMPTY = Buffer.alloc(0);

async function* onceOf(b: Buffer): AsyncGenerator<Buffer> {
  if (b.length) yield b;
}

const unexpectedEnd = () => new TarFormatError('Unexpected end of data');

/**
 * The entries of the archive `input` carries, in order. Each entry's `stream` must be read
 * before asking for the next entry, or what is left of it is skipped. Stopping early (return or
 * throw in the consumer) stops an input not read to its end.
 */
export async function* parseTar(input: AsyncIterable<unknown>, o: ParseOptions): AsyncGenerator<TarEntry, void, undefined> {
  const src = new Source(input, o);
  let paxGlobal: Record<string, string> | null = null;
  let pax: Record<string, string> | null = null;
  let longPath: string | null = null;
  let longLink: string | null = null;
  const needOrEnd = async (n: number) => {
    if (!(await src.need(n))) throw unexpectedEnd();
  };
  try {
    for (;;) {
      if (!(await src.need(BLOCK))) {
        // As tar-stream: a cut block is an error; a pax or long-name record with no entry after it is not.
        if (src.available) throw unexpectedEnd();
        return;
      }
      const header = decode(src.take(BLOCK));
      if (!header) continue;
      const t = header.type;
      if (t === 'gnu-long-path' || t === 'gnu-long-link-path' || t === 'pax-global-header' || t === 'pax-header') {
        if (!(header.size <= MAX_LONG_HEADER_BYTES)) throw new TarFormatError('Header exceeds max size');
        // Not read as tar-stream reads it (it leaves its state half-set and frames what follows by
        // the chunks it arrives in): refused. No producer writes an empty or negative record.
        if (!(header.size > 0)) throw new TarFormatError(`${t} record of ${header.size} bytes`);
        await needOrEnd(header.size + padding(header.size));
        const body = src.take(header.size);
        src.take(padding(header.size));
        if (t === 'gnu-long-path') longPath = str(body, 0, body.length);
        else if (t === 'gnu-long-link-path') longLink = str(body, 0, body.length);
        else if (t === 'pax-global-header') paxGlobal = decodePax(body);
        else pax = paxGlobal === null ? decodePax(body) : { ...paxGlobal, ...decodePax(body) };
        continue;
      }
      // Only non-empty ones, as tar-stream applies them.
      if (longPath) header.name = longPath;
      if (longLink) header.linkname = longLink;
      longPath = longLink = null;
      if (pax) {
        if (pax.path) header.name = pax.path;
        if (pax.linkpath) header.linkname = pax.linkpath;
        if (pax.size) header.size = parseInt(pax.size, 10);
        pax = null;
      }
      if (!(header.size >= 0)) throw new TarFormatError('Invalid header');
      // A directory's size is not content to read (tar-stream reads on from the next block too).
      if (header.size === 0 || header.type === 'directory') {
        yield { header, content: EMPTY, stream: onceOf(EMPTY) };
        continue;
      }
      const size = header.size;
      if (size <= o.wholeUpTo) {
        await needOrEnd(size);
        const content = src.take(size);
        yield { header, content, stream: onceOf(content) };
        // The padding after it, as for a streamed file (an archive cut inside it fails after the entry).
        await needOrEnd(padding(size));
        src.take(padding(size));
        continue;
      }
      // The file's bytes as they come; after the entry, the same loop skips what its reader left.
      let left = size;
      const rest = async function* () {
        while (left > 0) {
          await needOrEnd(1);
          const b = src.takeSome(left);
          left -= b.length;
          yield b;
        }
      };
      yield { header, content: null, stream: rest() };
      for await (const _ of rest()) void _;
      await needOrEnd(padding(size));
      src.take(padding(size));
    }
  } finally {
    src.stop();
  }
}
