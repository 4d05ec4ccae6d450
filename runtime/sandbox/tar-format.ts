/**
 * Tar headers written directly (ustar, with a pax record for what ustar cannot hold), for
 * archives Director makes itself from trusted data: the tree a checkpoint restore sends into a
 * sandbox (`packTree`). Going through tar-stream's pack cost a stream and a callback per entry;
 * here a header is a 512-byte block built in place.
 *
 * The bytes are exactly tar-stream's for the same entry (a unit test compares them): the same
 * octal fields, the same ustar name/prefix split, the same pax header (`PaxHeader`, `path=`
 * and `linkpath=` records) when a name is not ASCII or does not fit, or a link target is over
 * 100 bytes, and the same defaults (mode 0 is 0o644 for a file, 0o755 for a directory).
 *
 * Only for writing. Archives that come out of a sandbox are hostile: they are framed by
 * `tar-parse.ts` and judged by the guard (`tar-guard.ts`), never read here.
 */

export const BLOCK = 512;
/** Two zero blocks end an archive. */
export const END_OF_ARCHIVE: Buffer = Buffer.alloc(2 * BLOCK);

export interface HeaderFields {
  /** The name as written (a directory's with its trailing '/'). */
  name: string;
  type: 'file' | 'directory' | 'symlink';
  /** Permission bits (masked to 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  /** Content bytes (files). */
  size: number;
  mtimeMs: number;
  /** Symlinks: the target. */
  linkname?: string;
}

const TYPEFLAG = { file: 0x30, directory: 0x35, symlink: 0x32, pax: 0x78 } as const;
const MAGIC = Buffer.from('ustar\x0000', 'latin1');
const ZEROS = '0000000000000000000';
const SEVENS = '7777777777777777777';
const ZERO_BLOCK = Buffer.alloc(BLOCK);

/** How many bytes pad `size` bytes of content to a whole block. */
export const paddingBytes = (size: number): number => (BLOCK - (size % BLOCK)) % BLOCK;

/** Zero bytes that pad `size` bytes of content to a whole block. */
export const paddingOf = (size: number): Buffer => ZERO_BLOCK.subarray(0, paddingBytes(size));

/** An `n`-digit octal field and its terminating space (all sevens when the value does not fit). */
function octal(value: number, n: number): string {
  const s = value.toString(8);
  return s.length > n ? `${SEVENS.slice(0, n)} ` : `${ZEROS.slice(0, n - s.length)}${s} `;
}

function writeSize(buf: Buffer, size: number): void {
  if (size.toString(8).length > 11) {
    // Base-256 for sizes past 8 GiB, as GNU tar and tar-stream write them.
    buf[124] = 0x80;
    let num = size;
    for (let i = 11; i > 0; i--) {
      buf[124 + i] = num & 0xff;
      num = Math.floor(num / 0x100);
    }
  } else buf.write(octal(size, 11), 124, 'latin1');
}

/** The ustar name and prefix for `name`, or null when it needs a pax record. */
function splitName(full: string): { name: string; prefix: string } | null {
  if (Buffer.byteLength(full) !== full.length) return null; // not ASCII
  let name = full;
  let prefix = '';
  while (name.length > 100) {
    const i = name.indexOf('/');
    if (i === -1) return null;
    prefix += prefix ? `/${name.slice(0, i)}` : name.slice(0, i);
    name = name.slice(i + 1);
  }
  return prefix.length > 155 ? null : { name, prefix };
}

interface Block {
  name: string;
  prefix: string;
  typeflag: number;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeS: number;
  linkname: string;
}

function block(b: Block): Buffer {
  const buf = Buffer.alloc(BLOCK);
  buf.write(b.name, 0, 'utf8');
  buf.write(octal(b.mode & 0o7777, 6), 100, 'latin1');
  buf.write(octal(b.uid, 6), 108, 'latin1');
  buf.write(octal(b.gid, 6), 116, 'latin1');
  writeSize(buf, b.size);
  buf.write(octal(b.mtimeS, 11), 136, 'latin1');
  buf[156] = b.typeflag;
  if (b.linkname) buf.write(b.linkname, 157, 'utf8');
  MAGIC.copy(buf, 257);
  buf.write('000000 ', 329, 'latin1'); // devmajor
  buf.write('000000 ', 337, 'latin1'); // devminor
  if (b.prefix) buf.write(b.prefix, 345, 'latin1');
  // The checksum counts its own field as spaces.
  let sum = 8 * 32;
  for (let i = 0; i < 148; i++) sum += buf[i]!;
  for (let i = 156; i < BLOCK; i++) sum += buf[i]!;
  buf.write(octal(sum, 6), 148, 'latin1');
  return buf;
}

/** A pax record: `<length> <key>=<value>\n`, the length counting itself. */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  const len = Buffer.byteLength(body);
  let digits = Math.floor(Math.log(len) / Math.log(10)) + 1;
  if (len + digits >= Math.pow(10, digits)) digits++;
  return `${len + digits}${body}`;
}

/**
 * The header of one entry: a ustar block, or (name or link target too long, or not ASCII) a pax
 * header block, its records padded to a block, and the entry's block named `PaxHeader`. The
 * entry's content (files) and its {@link paddingOf} follow it.
 */
export function encodeHeader(h: HeaderFields): Buffer {
  const size = h.type === 'file' ? h.size : 0;
  const mode = h.mode || (h.type === 'directory' ? 0o755 : 0o644);
  const mtimeS = (h.mtimeMs / 1000) | 0;
  const linkname = h.linkname ?? '';
  const base = { mode, uid: h.uid, gid: h.gid, mtimeS, typeflag: TYPEFLAG[h.type] };
  const split = splitName(h.name);
  if (split && Buffer.byteLength(linkname) <= 100) return block({ ...base, ...split, size, linkname });
  const records = Buffer.from(paxRecord('path', h.name) + (linkname ? paxRecord('linkpath', linkname) : ''));
  const named = { name: 'PaxHeader', prefix: '', linkname: linkname ? 'PaxHeader' : '' };
  return Buffer.concat([
    block({ ...base, ...named, typeflag: TYPEFLAG.pax, size: records.length }),
    records,
    paddingOf(records.length),
    block({ ...base, ...named, size }),
  ]);
}
