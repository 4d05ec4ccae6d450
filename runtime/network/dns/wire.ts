/**
 * A small, strict DNS wire reader. dns-packet decodes A/AAAA data without looking at RDLENGTH,
 * so a crafted record could make it see different addresses than the client's parser does; the
 * rebinding guard and the firewall sets must see exactly what the client will, so upstream
 * replies are walked here, record by record, honouring RDLENGTH.
 */

export class WireFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WireFormatError';
  }
}

export const HEADER_BYTES = 12;
export const TYPE_A = 1;
export const TYPE_AAAA = 28;
export const TYPE_OPT = 41;
export const CLASS_IN = 1;

export type Section = 'answer' | 'authority' | 'additional';

export interface WireRecord {
  section: Section;
  type: number;
  klass: number;
  /** Seconds; values with the top bit set read as 0 (RFC 2181 §8). */
  ttl: number;
  rdata: Buffer;
}

export interface WireQuestion {
  /** Lowercase, labels joined by '.', no trailing dot ('' for the root). */
  name: string;
  type: number;
  klass: number;
}

export interface WireMessage {
  id: number;
  qr: boolean;
  opcode: number;
  tc: boolean;
  rcode: number;
  questions: WireQuestion[];
  records: WireRecord[];
}

const MAX_POINTER_JUMPS = 32;
const MAX_NAME_BYTES = 255;

function need(buf: Buffer, offset: number, bytes: number): void {
  if (offset + bytes > buf.length) throw new WireFormatError('message ends inside a field');
}

/** Reads a possibly compressed name; returns it lowercase and the offset after it. */
export function readName(buf: Buffer, start: number): { name: string; next: number } {
  const labels: string[] = [];
  let offset = start;
  let next = -1;
  let jumps = 0;
  let bytes = 1;
  for (;;) {
    need(buf, offset, 1);
    const len = buf[offset]!;
    if (len === 0) {
      offset += 1;
      break;
    }
    if ((len & 0xc0) === 0xc0) {
      need(buf, offset, 2);
      const target = buf.readUInt16BE(offset) & 0x3fff;
      if (next < 0) next = offset + 2;
      // Only backwards pointers: a forward or self pointer is how loops are built.
      if (target >= offset || ++jumps > MAX_POINTER_JUMPS) throw new WireFormatError('bad compression pointer');
      offset = target;
      continue;
    }
    if ((len & 0xc0) !== 0) throw new WireFormatError('bad label type');
    need(buf, offset + 1, len);
    bytes += len + 1;
    if (bytes > MAX_NAME_BYTES) throw new WireFormatError('name longer than 255 bytes');
    labels.push(buf.toString('latin1', offset + 1, offset + 1 + len).toLowerCase());
    offset += len + 1;
  }
  return { name: labels.join('.'), next: next < 0 ? offset : next };
}

const HOST_LABEL_BYTE = /^[A-Za-z0-9_-]+$/;

/**
 * Reads a query's question name strictly: no compression, every label 1-63 bytes of letters,
 * digits, '-' or '_'. This is what the policy check sees, so a label hiding a '.' or odd bytes
 * (`"api.example" . "test"`) cannot make the checked name differ from the one forwarded.
 * Returns the name in its original case.
 */
export function readQueryName(buf: Buffer, start: number): { name: string; next: number } {
  const labels: string[] = [];
  let offset = start;
  let bytes = 1;
  for (;;) {
    need(buf, offset, 1);
    const len = buf[offset]!;
    if (len === 0) return { name: labels.join('.'), next: offset + 1 };
    if (len > 63) throw new WireFormatError('compressed or over-long label in the question');
    need(buf, offset + 1, len);
    bytes += len + 1;
    if (bytes > MAX_NAME_BYTES) throw new WireFormatError('name longer than 255 bytes');
    const label = buf.toString('latin1', offset + 1, offset + 1 + len);
    if (!HOST_LABEL_BYTE.test(label)) throw new WireFormatError('label with characters outside letters, digits, "-" and "_"');
    labels.push(label);
    offset += len + 1;
  }
}

/** Walks a whole message: header, questions, then every record of every section. */
export function readMessage(buf: Buffer): WireMessage {
  need(buf, 0, HEADER_BYTES);
  const flags = buf.readUInt16BE(2);
  const counts = [buf.readUInt16BE(4), buf.readUInt16BE(6), buf.readUInt16BE(8), buf.readUInt16BE(10)] as const;
  let offset = HEADER_BYTES;
  const questions: WireQuestion[] = [];
  for (let i = 0; i < counts[0]; i++) {
    const { name, next } = readName(buf, offset);
    need(buf, next, 4);
    questions.push({ name, type: buf.readUInt16BE(next), klass: buf.readUInt16BE(next + 2) });
    offset = next + 4;
  }
  const records: WireRecord[] = [];
  const sections: [Section, number][] = [
    ['answer', counts[1]],
    ['authority', counts[2]],
    ['additional', counts[3]],
  ];
  for (const [section, n] of sections) {
    for (let i = 0; i < n; i++) {
      const { next } = readName(buf, offset);
      need(buf, next, 10);
      const type = buf.readUInt16BE(next);
      const rdlength = buf.readUInt16BE(next + 8);
      need(buf, next + 10, rdlength);
      if ((type === TYPE_A && rdlength !== 4) || (type === TYPE_AAAA && rdlength !== 16)) {
        throw new WireFormatError(`address record with RDLENGTH ${rdlength}`);
      }
      const rawTtl = buf.readUInt32BE(next + 4);
      records.push({
        section,
        type,
        klass: buf.readUInt16BE(next + 2),
        ttl: rawTtl > 0x7fffffff ? 0 : rawTtl,
        rdata: buf.subarray(next + 10, next + 10 + rdlength),
      });
      offset = next + 10 + rdlength;
    }
  }
  return {
    id: buf.readUInt16BE(0),
    qr: (flags & 0x8000) !== 0,
    opcode: (flags >> 11) & 0xf,
    tc: (flags & 0x0200) !== 0,
    rcode: flags & 0xf,
    questions,
    records,
  };
}

/** Text form of an A/AAAA RDATA: dotted quad, or RFC 5952 IPv6 (`::ffff:a.b.c.d` for mapped). */
export function formatAddress(rdata: Buffer): string {
  if (rdata.length === 4) return [...rdata].join('.');
  const groups = Array.from({ length: 8 }, (_, i) => rdata.readUInt16BE(i * 2));
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${[...rdata.subarray(12)].join('.')}`;
  }
  let best = { at: -1, len: 0 };
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > best.len && j - i >= 2) best = { at: i, len: j - i };
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best.at < 0) return hex.join(':');
  return `${hex.slice(0, best.at).join(':')}::${hex.slice(best.at + best.len).join(':')}`;
}
