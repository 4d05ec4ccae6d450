/**
 * A listing of a sandbox mount as the sandbox itself reports it (`find -xdev` + `stat`, run as the
 * sandbox user by `mount-sync.ts`), parsed strictly. The listing is hostile input: every line must
 * have the exact shape, every name must pass the same name check as tar entries (no control
 * characters, `..`, absolute names), every entry's parent must be a directory listed before it,
 * no path twice, and the count is capped. What a lying sandbox can achieve with a well-formed
 * listing is a wrong checkpoint of its own files, nothing more (see `tree-plan.ts`).
 */
import { safeSegments, UnsafeArchiveError } from './tar-guard.ts';

export type ListedKind = 'file' | 'directory' | 'symlink' | 'fifo' | 'socket' | 'device' | 'unknown';

export interface ListedEntry {
  /** Relative to the mount, components joined by '/'; '' for the mount's root. */
  readonly path: string;
  readonly kind: ListedKind;
  /** Permission bits (0o7777). */
  readonly mode: number;
  readonly ino: number;
  readonly nlink: number;
  readonly size: number;
  readonly mtimeS: number;
  readonly ctimeS: number;
}

export interface Listing {
  /** The sandbox's clock (seconds) just before it listed: changes after it have a ctime at or after it. */
  listedAtS: number;
  /** In `find` order: the root first, every directory before what it holds. */
  entries: readonly ListedEntry[];
}

/** The `stat -c` format of a listing line (busybox and GNU stat agree on these fields). */
export const STAT_FORMAT = '%f %i %h %s %Y %Z %n';

const LINE = /^([0-9a-f]{1,8}) (\d{1,20}) (\d{1,20}) (\d{1,20}) (-?\d{1,20}) (-?\d{1,20}) (\.|\.\/.+)$/;
const TIME_LINE = /^T (\d{1,20})$/;

const KIND: Record<number, ListedKind> = {
  0o100000: 'file',
  0o040000: 'directory',
  0o120000: 'symlink',
  0o010000: 'fifo',
  0o140000: 'socket',
  0o020000: 'device',
  0o060000: 'device',
};

/** Thrown for a listing that is not what the script prints (a name with a newline, a faked line). */
export class ListingError extends UnsafeArchiveError {
  constructor(entry: string, reason: string) {
    super('UNSAFE_ARCHIVE', entry, reason);
    this.name = 'ListingError';
  }
}

/**
 * Parses the listing lines (without the end marker). `maxEntries` caps the entries (TOO_LARGE
 * beyond). Throws a ListingError (or the name check's UnsafeArchiveError) for anything else.
 */
export function parseListing(lines: readonly string[], maxEntries: number): Listing {
  const listedAtS = parseListingTime(lines[0]);
  const entries: ListedEntry[] = [];
  const kinds = new Map<string, ListedKind>();
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const m = LINE.exec(line);
    if (!m) throw new ListingError(line.slice(0, 200), 'malformed listing line (a file name with a line break?)');
    if (entries.length >= maxEntries) throw new UnsafeArchiveError('TOO_LARGE', '', `more than ${maxEntries} entries`);
    const name = m[7]!;
    const path = name === '.' ? '' : safeSegments(name.slice(2)).join('/');
    if (path === '' && entries.length > 0) throw new ListingError(name, 'the root listed twice');
    if (path !== '' && entries.length === 0) throw new ListingError(name, 'listing does not start with the root');
    if (kinds.has(path)) throw new ListingError(name, 'path listed twice');
    const slash = path.lastIndexOf('/');
    if (path !== '' && kinds.get(slash < 0 ? '' : path.slice(0, slash)) !== 'directory')
      throw new ListingError(name, 'parent not listed as a directory before it');
    const raw = Number.parseInt(m[1]!, 16);
    const kind = KIND[raw & 0o170000] ?? 'unknown';
    if (path === '' && kind !== 'directory') throw new ListingError(name, 'the root is not a directory');
    kinds.set(path, kind);
    entries.push({
      path,
      kind,
      mode: raw & 0o7777,
      ino: Number(m[2]),
      nlink: Number(m[3]),
      size: Number(m[4]),
      mtimeS: Number(m[5]),
      ctimeS: Number(m[6]),
    });
  }
  if (entries.length === 0) throw new ListingError('', 'listing is empty (the mount root is missing)');
  return { listedAtS, entries };
}

/** The sandbox time of a listing's first line (`T <seconds>`). */
export function parseListingTime(line: string | undefined): number {
  const time = TIME_LINE.exec(line ?? '');
  if (!time) throw new ListingError('', 'listing does not start with the sandbox time');
  return Number(time[1]);
}

/** Longest listing line accepted (a 4096-byte name plus the fields). */
export const MAX_LINE_BYTES = 4096 + 128;
/** Most bytes a listing may take: some 335 a line at 200,000 entries (Director's cap per mount). */
export const MAX_LISTING_BYTES = 64 * 1024 * 1024;

/** The output ended before the listing's marker line; `empty`: nothing at all came. */
export class ListingEnded extends Error {
  readonly empty: boolean;
  constructor(empty: boolean) {
    super('the listing ended before its marker');
    this.empty = empty;
  }
}

/**
 * Reads output (`carry`, then chunks from `next`) up to the line that is `marker`: returns the
 * bytes before it (its lines, each with its line break) and what followed it. Scanned for line
 * breaks, not decoded: the caller compares the bytes with a kept listing's before it splits and
 * parses them (see ParsedListings). Hostile output: refused past `maxLines` lines (TOO_LARGE), a
 * line longer than {@link MAX_LINE_BYTES}, or {@link MAX_LISTING_BYTES} in all (TOO_LARGE);
 * {@link ListingEnded} when the output ends first.
 */
export async function scanUpTo(
  carry: Buffer,
  next: () => Promise<IteratorResult<Buffer>>,
  marker: string,
  maxLines: number,
): Promise<{ body: Buffer; rest: Buffer }> {
  const end = Buffer.from(marker, 'utf8');
  const body: Buffer[] = [];
  let bytes = 0;
  let count = 0;
  for (;;) {
    let start = 0;
    let nl: number;
    while ((nl = carry.indexOf(10, start)) >= 0) {
      if (nl - start === end.length && carry.compare(end, 0, end.length, start, nl) === 0) {
        body.push(carry.subarray(0, start));
        return { body: body.length === 1 ? body[0]! : Buffer.concat(body), rest: carry.subarray(nl + 1) };
      }
      if (nl - start > MAX_LINE_BYTES) throw new UnsafeArchiveError('UNSAFE_ARCHIVE', '', 'listing line too long');
      if (++count > maxLines) throw new UnsafeArchiveError('TOO_LARGE', '', `more than ${maxLines - 1} entries`);
      start = nl + 1;
    }
    if (start) {
      body.push(carry.subarray(0, start));
      carry = carry.subarray(start);
      bytes += start;
    }
    if (carry.length > MAX_LINE_BYTES) throw new UnsafeArchiveError('UNSAFE_ARCHIVE', '', 'listing line too long');
    if (bytes > MAX_LISTING_BYTES) throw new UnsafeArchiveError('TOO_LARGE', '', `a listing of more than ${MAX_LISTING_BYTES} bytes`);
    const got = await next();
    if (got.done) throw new ListingEnded(count === 0 && carry.length === 0);
    carry = carry.length ? Buffer.concat([carry, got.value]) : got.value;
  }
}

/**
 * The lines of a listing as the sandbox printed them (each ended by a line break), decoded as
 * UTF-8 and split: the same strings as decoding each line by itself (a line break is never part
 * of a multi-byte sequence).
 */
export function listingLines(body: Buffer): string[] {
  const lines = body.toString('utf8').split('\n');
  // The last line's break leaves an empty string after it (and an empty body one line, empty).
  if (lines.at(-1) === '') lines.pop();
  return lines;
}

/**
 * What a kept listing holds, counted high: a copy of its bytes, and its entries' paths (as
 * two-byte strings, or as slices of the decoded listing: at most 3 bytes a byte with the copy;
 * 4 counted), and 128 bytes an entry object.
 */
export const listingBytes = (body: Buffer, lines: number): number => 4 * body.length + 128 * lines;

/**
 * The last listing parsed under each key (MountSync's: a container's mount), kept: the same bytes
 * next time (every line but the first, the time: a mount that did not change) are neither split
 * nor parsed again, and the listing's `entries` is then the very same frozen array, so callers
 * may compare it by identity (only a kept listing's entries are frozen). A pure function's result
 * kept; bounded by a number of keys and by {@link listingBytes} in all (a hostile sandbox chooses
 * its names' lengths); one listing of more than a quarter of that is not kept. Least recently
 * used out first.
 */
export class ParsedListings {
  readonly #maxKeys: number;
  readonly #maxBytes: number;
  readonly #byKey = new Map<string, { rest: Buffer; entries: readonly ListedEntry[]; bytes: number }>();
  #bytes = 0;

  constructor(maxKeys = 256, maxBytes = 32 * 1024 * 1024) {
    this.#maxKeys = maxKeys;
    this.#maxBytes = maxBytes;
  }

  /** Bytes kept, as {@link listingBytes} counts them. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * parseListing of the lines of `body` (see {@link listingLines}), or the entries of the same
   * bytes after the first line parsed last time under `key`.
   */
  parse(key: string, body: Buffer, maxEntries: number): Listing {
    const last = this.#byKey.get(key);
    const nl = body.indexOf(10);
    // Over the caller's cap, kept or not: parsed (and refused) as any other.
    if (last && nl >= 0 && last.entries.length <= maxEntries && last.rest.equals(body.subarray(nl + 1))) {
      this.#byKey.delete(key);
      this.#byKey.set(key, last);
      return { listedAtS: parseListingTime(body.toString('utf8', 0, nl)), entries: last.entries };
    }
    const lines = listingLines(body);
    const listing = parseListing(lines, maxEntries);
    if (last) this.#forget(key, last);
    const bytes = listingBytes(body, lines.length);
    if (bytes > this.#maxBytes / 4) return listing;
    for (const e of listing.entries) Object.freeze(e);
    Object.freeze(listing.entries);
    // A copy: `body` may be part of a larger buffer (what followed the listing).
    this.#byKey.set(key, { rest: Buffer.from(body.subarray(nl + 1)), entries: listing.entries, bytes });
    this.#bytes += bytes;
    for (const [k, v] of this.#byKey) {
      if (this.#byKey.size <= this.#maxKeys && this.#bytes <= this.#maxBytes) break;
      this.#forget(k, v);
    }
    return listing;
  }

  #forget(key: string, v: { bytes: number }): void {
    this.#byKey.delete(key);
    this.#bytes -= v.bytes;
  }
}
