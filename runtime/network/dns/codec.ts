/**
 * Queries in, replies out: parses a client's query (dns-packet plus a strict question-name
 * check), builds the sanitized query sent upstream and the replies Director writes itself.
 */
import {
  decode,
  encode,
  CHECKING_DISABLED,
  DNSSEC_OK,
  RECURSION_AVAILABLE,
  RECURSION_DESIRED,
  TRUNCATED_RESPONSE,
  type Packet,
  type RecordType,
} from 'dns-packet';
import { CLASS_IN, HEADER_BYTES, readQueryName, type WireMessage } from './wire.ts';

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 } as const;

/** Query types Director resolves; everything else (ANY, AXFR, NULL, PTR ...) is refused. */
export const SUPPORTED_QTYPES: ReadonlyMap<number, string> = new Map([
  [1, 'A'],
  [28, 'AAAA'],
  [5, 'CNAME'],
  [16, 'TXT'],
  [15, 'MX'],
  [33, 'SRV'],
  [65, 'HTTPS'],
]);

const OTHER_QTYPES: ReadonlyMap<number, string> = new Map([
  [2, 'NS'],
  [6, 'SOA'],
  [10, 'NULL'],
  [12, 'PTR'],
  [13, 'HINFO'],
  [43, 'DS'],
  [48, 'DNSKEY'],
  [64, 'SVCB'],
  [99, 'SPF'],
  [251, 'IXFR'],
  [252, 'AXFR'],
  [255, 'ANY'],
  [257, 'CAA'],
]);

/** Mnemonic of a query type, or RFC 3597's `TYPEnnn`. */
export const qtypeName = (qtype: number): string => SUPPORTED_QTYPES.get(qtype) ?? OTHER_QTYPES.get(qtype) ?? `TYPE${qtype}`;

/** The EDNS payload size Director advertises upstream (the DNS flag day 2020 value). */
export const UPSTREAM_UDP_PAYLOAD_BYTES = 1232;
const MAX_CLIENT_UDP_BYTES = 4096;
const MIN_UDP_BYTES = 512;

export interface ParsedQuery {
  id: number;
  /** The question name in the client's case, without a trailing dot. */
  wireName: string;
  /** Lowercase {@link wireName}: what the policy is checked against. */
  name: string;
  qtype: number;
  qclass: number;
  opcode: number;
  rd: boolean;
  cd: boolean;
  /** The client's EDNS record, if it sent one. */
  edns: { udpPayloadBytes: number; dnssecOk: boolean } | null;
}

export type ParseResult =
  | { ok: true; query: ParsedQuery }
  /** `id` is null when no reply should be sent at all (no header, or the packet is a response). */
  | { ok: false; id: number | null; issue: string };

/** Parses one client query. Never throws. */
export function parseQuery(buf: Buffer): ParseResult {
  if (buf.length < HEADER_BYTES) return { ok: false, id: null, issue: 'shorter than a DNS header' };
  const id = buf.readUInt16BE(0);
  const flags = buf.readUInt16BE(2);
  // Never answer a response: two resolvers must not be able to bounce packets forever.
  if ((flags & 0x8000) !== 0) return { ok: false, id: null, issue: 'is a response, not a query' };
  if (buf.readUInt16BE(4) !== 1) return { ok: false, id, issue: 'not exactly one question' };
  if (buf.readUInt16BE(6) !== 0 || buf.readUInt16BE(8) !== 0) return { ok: false, id, issue: 'query carries answer or authority records' };
  let packet: ReturnType<typeof decode>;
  let question: { name: string; next: number };
  try {
    packet = decode(buf);
    question = readQueryName(buf, HEADER_BYTES);
  } catch (err) {
    return { ok: false, id, issue: err instanceof Error ? err.message : 'undecodable' };
  }
  const extra = packet.additionals ?? [];
  if (extra.length > 1 || extra.some((r) => r.type !== 'OPT')) return { ok: false, id, issue: 'additional records other than one OPT' };
  const opt = extra[0];
  const edns = opt?.type === 'OPT' ? { udpPayloadBytes: opt.udpPayloadSize, dnssecOk: opt.flag_do } : null;
  return {
    ok: true,
    query: {
      id,
      wireName: question.name,
      name: question.name.toLowerCase(),
      qtype: buf.readUInt16BE(question.next),
      qclass: buf.readUInt16BE(question.next + 2),
      opcode: (flags >> 11) & 0xf,
      rd: (flags & RECURSION_DESIRED) !== 0,
      cd: (flags & CHECKING_DISABLED) !== 0,
      edns,
    },
  };
}

/** dns-packet lacks mnemonics for some types (HTTPS); its `UNKNOWN_nnn` form encodes any. */
const encodableType = (qtype: number): RecordType => `UNKNOWN_${qtype}` as RecordType;

/**
 * The query sent upstream: a fresh packet holding only the checked question (and an OPT
 * record without options when the client used EDNS), so nothing else the client put in its
 * packet leaves the host.
 */
export function encodeUpstreamQuery(q: ParsedQuery, id: number): Buffer {
  const packet: Packet = {
    type: 'query',
    id,
    flags: (q.rd ? RECURSION_DESIRED : 0) | (q.cd ? CHECKING_DISABLED : 0),
    questions: [{ name: q.wireName, type: encodableType(q.qtype), class: 'IN' }],
    additionals: q.edns
      ? [
          {
            type: 'OPT',
            name: '.',
            udpPayloadSize: UPSTREAM_UDP_PAYLOAD_BYTES,
            extendedRcode: 0,
            ednsVersion: 0,
            flags: q.edns.dnssecOk ? DNSSEC_OK : 0,
            flag_do: q.edns.dnssecOk,
            options: [],
          },
        ]
      : [],
  };
  return encode(packet);
}

/** A reply Director writes itself: header, the question (when known), no records. */
/** `rcode` is numeric (see {@link RCODE}) so an upstream rcode can be kept. */
export function encodeReply(q: ParsedQuery | null, id: number, rcode: number, opts: { truncated?: boolean } = {}): Buffer {
  return encode({
    type: 'response',
    id,
    flags:
      (rcode & 0xf) |
      RECURSION_AVAILABLE |
      (q?.rd ? RECURSION_DESIRED : 0) |
      (q?.cd ? CHECKING_DISABLED : 0) |
      (opts.truncated ? TRUNCATED_RESPONSE : 0),
    questions: q ? [{ name: q.wireName, type: encodableType(q.qtype), class: 'IN' }] : [],
  });
}

/** Largest UDP reply the client accepts: its EDNS size (512-4096) or 512 without EDNS. */
export const clientUdpLimitBytes = (q: ParsedQuery): number =>
  q.edns ? Math.min(Math.max(q.edns.udpPayloadBytes, MIN_UDP_BYTES), MAX_CLIENT_UDP_BYTES) : MIN_UDP_BYTES;

/** A copy of `buf` with the message id replaced. */
export function withId(buf: Buffer, id: number): Buffer {
  const out = Buffer.from(buf);
  out.writeUInt16BE(id, 0);
  return out;
}

/** Whether an upstream message answers `q` as sent with `id`. */
export const answersQuery = (m: WireMessage, q: ParsedQuery, id: number): boolean =>
  m.id === id &&
  m.qr &&
  m.opcode === 0 &&
  m.questions.length === 1 &&
  m.questions[0]!.name === q.name &&
  m.questions[0]!.type === q.qtype &&
  m.questions[0]!.klass === CLASS_IN;
