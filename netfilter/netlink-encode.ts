/**
 * Policy changes straight to the kernel: a per-network document encoded as one nf_tables netlink
 * batch, the messages `nft` itself would send for it. Pure: bytes in, bytes out; sending a batch
 * is `netlink-helpers.ts`.
 *
 * Why: every `nft -f` first downloads every chain, set and object of every table (its cache)
 * before it sends anything. With 500 networks that is about 8 ms of each change, and starting
 * the process costs another 3 ms; the kernel's own work for a 100-rule change is about 9 ms.
 *
 * Only the shapes a policy generation uses are encoded: regular chains (add, flush), name sets
 * (add), rules (add, insert) built from the matches and statements `rules.ts` emits. Anything else
 * throws {@link Unencodable} and the caller applies the document through `nft` instead. Each
 * shape is encoded exactly as nft 1.0.6 encodes it (same expressions, registers and order, with
 * the protocol dependencies nft adds), and an integration test compares the kernel's bytecode
 * listing of a table built this way with one built by `nft` after every step of a network's life.
 */
import { endianness } from 'node:os';
import { parseIp } from '../policies/address.ts';
import { shapeReaders, type NftCommand, type NftDocument, type NftExpr } from './json.ts';

export class Unencodable extends Error {}

// linux/netfilter/nfnetlink.h, nf_tables.h
const NFNL_SUBSYS_NFTABLES = 10;
const NFNL_MSG_BATCH_BEGIN = 0x10;
const NFNL_MSG_BATCH_END = 0x11;
const NFT_MSG = { newChain: 3, newRule: 6, delRule: 8, newSet: 9 } as const;
const NLM_F_REQUEST = 0x1;
const NLM_F_CREATE = 0x400;
const NLM_F_APPEND = 0x800;
const NLA_F_NESTED = 0x8000;
const NLMSG_ERROR = 2;
const NFPROTO_INET = 1;
const NFPROTO = { 4: 2, 6: 10 } as const;
const REG_VERDICT = 0;
const REG_1 = 1;
const CMP = { eq: 0, neq: 1, lte: 3, gte: 5 } as const;
const META = { iifname: 6, oifname: 7, nfproto: 15, l4proto: 16 } as const;
const BASE = { network: 1, transport: 2 } as const;
const VERDICT = { drop: 0, accept: 1, jump: -3, goto: -4, return: -5 } as const;
const L4 = { icmp: 1, tcp: 6, udp: 17, 'ipv6-icmp': 58 } as const;
const CT_STATE = { invalid: 1, established: 2, related: 4, new: 8, untracked: 64 } as const;
const SET_TIMEOUT = 0x10;
const SET_KEY = { ipv4_addr: { type: 7, len: 4 }, ipv6_addr: { type: 8, len: 16 } } as const;
const IFNAMSIZ = 16;
const NFT_NAME_MAXLEN = 256;
const COMMENT_MAX = 128;

// ---- the writer: one growing buffer, nested lengths patched when a nest ends ----

class Writer {
  buf = Buffer.allocUnsafe(1 << 16);
  pos = 0;

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  private head(type: number, len: number): void {
    this.room((len + 3) & ~3);
    this.buf.writeUInt16LE(len, this.pos);
    this.buf.writeUInt16LE(type, this.pos + 2);
  }

  private pad(len: number): void {
    const end = this.pos + ((len + 3) & ~3);
    this.buf.fill(0, this.pos + len, end);
    this.pos = end;
  }

  u32(type: number, n: number): void {
    this.head(type, 8);
    this.buf.writeInt32BE(n, this.pos + 4);
    this.pos += 8;
  }

  u64(type: number, n: number): void {
    this.head(type, 12);
    this.buf.writeBigUInt64BE(BigInt(n), this.pos + 4);
    this.pos += 12;
  }

  /** A string; `nul` adds the terminating NUL most string attributes carry. */
  str(type: number, s: string, nul = true): void {
    const len = 4 + s.length + (nul ? 1 : 0);
    this.head(type, len);
    this.buf.write(s, this.pos + 4, 'latin1');
    if (nul) this.buf[this.pos + 4 + s.length] = 0;
    this.pad(len);
  }

  bytes(type: number, b: Uint8Array): void {
    const len = 4 + b.length;
    this.head(type, len);
    this.buf.set(b, this.pos + 4);
    this.pad(len);
  }

  /** Opens a nested attribute; {@link end} with what this returns closes it. */
  begin(type: number): number {
    this.head(type | NLA_F_NESTED, 4);
    const at = this.pos;
    this.pos += 4;
    return at;
  }

  end(at: number): void {
    this.buf.writeUInt16LE(this.pos - at, at);
  }

  /** NFTA_DATA_VALUE inside a nest of `type`. */
  data(type: number, value: Uint8Array): void {
    const at = this.begin(type);
    this.bytes(1, value);
    this.end(at);
  }

  message(type: number, flags: number, seq: number, family: number, resId: number, body: () => void): void {
    this.room(20);
    const at = this.pos;
    this.buf.fill(0, at, at + 20);
    this.buf.writeUInt16LE(type, at + 4);
    this.buf.writeUInt16LE(flags, at + 6);
    this.buf.writeUInt32LE(seq, at + 8);
    this.buf.writeUInt8(family, at + 16);
    this.buf.writeUInt16BE(resId, at + 18);
    this.pos += 20;
    body();
    this.buf.writeUInt32LE(this.pos - at, at);
  }
}

function name(v: unknown, what: string): string {
  if (typeof v !== 'string' || v.length === 0 || v.length >= NFT_NAME_MAXLEN || !/^[\x21-\x7e]+$/.test(v))
    throw new Unencodable(`${what}: ${JSON.stringify(v)}`);
  return v;
}

// ---- expressions: NFTA_LIST_ELEM { NFTA_EXPR_NAME, NFTA_EXPR_DATA { ... } } ----

function expr(w: Writer, kind: string, body: () => void): void {
  const elem = w.begin(1);
  w.str(1, kind);
  const d = w.begin(2);
  body();
  w.end(d);
  w.end(elem);
}
const metaLoad = (w: Writer, key: number) => expr(w, 'meta', () => (w.u32(2, key), w.u32(1, REG_1)));
const cmp = (w: Writer, op: number, value: Uint8Array) => expr(w, 'cmp', () => (w.u32(1, REG_1), w.u32(2, op), w.data(3, value)));
const payloadLoad = (w: Writer, base: number, offset: number, len: number) =>
  expr(w, 'payload', () => (w.u32(1, REG_1), w.u32(2, base), w.u32(3, offset), w.u32(4, len)));
const bitwise = (w: Writer, mask: Uint8Array) =>
  expr(
    w,
    'bitwise',
    () => (w.u32(1, REG_1), w.u32(2, REG_1), w.u32(3, mask.length), w.data(4, mask), w.data(5, new Uint8Array(mask.length))),
  );
const lookup = (w: Writer, set: string, setId: number | undefined) =>
  expr(w, 'lookup', () => {
    w.u32(2, REG_1);
    w.str(1, set);
    if (setId !== undefined) w.u32(4, setId);
  });
function verdict(w: Writer, code: number, chain?: string): void {
  expr(w, 'immediate', () => {
    w.u32(1, REG_VERDICT);
    const d = w.begin(2);
    const v = w.begin(2);
    w.u32(1, code);
    if (chain !== undefined) w.str(2, chain);
    w.end(v);
    w.end(d);
  });
}
const u8 = (n: number): Uint8Array => Uint8Array.of(n);
const be16 = (n: number): Uint8Array => Uint8Array.of(n >> 8, n & 0xff);
function hostU32(n: number): Uint8Array {
  const b = Buffer.alloc(4);
  if (endianness() === 'LE') b.writeUInt32LE(n);
  else b.writeUInt32BE(n);
  return b;
}

const { obj, only } = shapeReaders(Unencodable);

/** One rule's state: what its earlier matches established, so a dependency is added once (as nft does). */
interface Rule {
  w: Writer;
  setIds: Map<string, number>;
  nfproto: 4 | 6 | null;
  l4: number | null;
}

interface Field {
  deps: (r: Rule) => void;
  base: number;
  offset: number;
  len: number;
  kind: 'addr' | 'port' | 'u8';
}
function nfprotoDep(family: 4 | 6): (r: Rule) => void {
  return (r) => {
    if (r.nfproto === family) return;
    r.nfproto = family;
    metaLoad(r.w, META.nfproto);
    cmp(r.w, CMP.eq, u8(NFPROTO[family]));
  };
}
function l4Dep(proto: number): (r: Rule) => void {
  return (r) => {
    if (r.l4 === proto) return;
    r.l4 = proto;
    metaLoad(r.w, META.l4proto);
    cmp(r.w, CMP.eq, u8(proto));
  };
}
const addrField = (family: 4 | 6, offset: number): Field => ({
  deps: nfprotoDep(family),
  base: BASE.network,
  offset,
  len: family === 4 ? 4 : 16,
  kind: 'addr',
});
const FIELDS: Record<string, Field> = {
  'ip saddr': addrField(4, 12),
  'ip daddr': addrField(4, 16),
  'ip6 saddr': addrField(6, 8),
  'ip6 daddr': addrField(6, 24),
  'tcp dport': { deps: l4Dep(L4.tcp), base: BASE.transport, offset: 2, len: 2, kind: 'port' },
  'udp dport': { deps: l4Dep(L4.udp), base: BASE.transport, offset: 2, len: 2, kind: 'port' },
  'th dport': { deps: () => undefined, base: BASE.transport, offset: 2, len: 2, kind: 'port' },
  'icmpv6 type': {
    deps: (r) => (nfprotoDep(6)(r), l4Dep(L4['ipv6-icmp'])(r)),
    base: BASE.transport,
    offset: 0,
    len: 1,
    kind: 'u8',
  },
};

function setName(v: unknown): string | null {
  return typeof v === 'string' && v.startsWith('@') ? name(v.slice(1), 'set') : null;
}

function address(text: unknown, family: 4 | 6): Buffer {
  const ip = typeof text === 'string' ? parseIp(text) : null;
  if (!ip || ip.family !== family) throw new Unencodable(`not an IPv${family} address: ${JSON.stringify(text)}`);
  const out = Buffer.alloc(family === 4 ? 4 : 16);
  for (let i = out.length - 1, v = ip.value; i >= 0; i--, v >>= 8n) out[i] = Number(v & 0xffn);
  return out;
}

function port(v: unknown): number {
  if (!Number.isInteger(v) || (v as number) < 0 || (v as number) > 65535) throw new Unencodable(`port ${JSON.stringify(v)}`);
  return v as number;
}

function cmpOp(op: unknown): number {
  if (op === '==') return CMP.eq;
  if (op === '!=') return CMP.neq;
  throw new Unencodable(`operator ${String(op)}`);
}

function payloadMatch(r: Rule, field: Field, op: unknown, right: unknown): void {
  const w = r.w;
  const load = (len = field.len) => payloadLoad(w, field.base, field.offset, len);
  const set = setName(right);
  if (set !== null) {
    if (op !== '==' && op !== 'in') throw new Unencodable(`set lookup with ${String(op)}`);
    field.deps(r);
    load();
    lookup(w, set, r.setIds.get(set));
    return;
  }
  const o = cmpOp(op);
  if (field.kind === 'port') {
    if (typeof right === 'number') {
      const p = be16(port(right));
      field.deps(r);
      load();
      cmp(w, o, p);
      return;
    }
    const [kind, body] = only(obj(right));
    if (kind !== 'range' || !Array.isArray(body) || body.length !== 2 || o !== CMP.eq)
      throw new Unencodable(`port match ${JSON.stringify(right)}`);
    const [from, to] = [be16(port(body[0])), be16(port(body[1]))];
    field.deps(r);
    load();
    cmp(w, CMP.gte, from);
    cmp(w, CMP.lte, to);
    return;
  }
  if (field.kind !== 'addr') throw new Unencodable(`${JSON.stringify(right)} against a one-byte field`);
  const family = field.len === 4 ? 4 : 6;
  if (typeof right === 'string') {
    const a = address(right, family);
    field.deps(r);
    load();
    cmp(w, o, a);
    return;
  }
  const [kind, body] = only(obj(right));
  const p = obj(body);
  if (kind !== 'prefix' || !Number.isInteger(p.len) || (p.len as number) < 0 || (p.len as number) > field.len * 8)
    throw new Unencodable(`address match ${JSON.stringify(right)}`);
  const bits = p.len as number;
  const addr = address(p.addr, family);
  field.deps(r);
  if (bits > 0 && bits % 8 === 0) {
    load(bits / 8);
    cmp(w, o, addr.subarray(0, bits / 8));
    return;
  }
  // A prefix not on a byte boundary (or /0): the whole field, masked.
  const mask = new Uint8Array(field.len);
  for (let i = 0; i < bits; i++) mask[i >> 3]! |= 0x80 >> (i & 7);
  load();
  bitwise(w, mask);
  cmp(
    w,
    o,
    addr.map((b, i) => b & mask[i]!),
  );
}

function metaMatch(r: Rule, key: unknown, op: unknown, right: unknown): void {
  if (key !== 'iifname' && key !== 'oifname' && key !== 'l4proto') throw new Unencodable(`meta ${String(key)}`);
  const w = r.w;
  const set = setName(right);
  if (set !== null) {
    if (op !== '==' && op !== 'in') throw new Unencodable(`set lookup with ${String(op)}`);
    metaLoad(w, META[key]);
    lookup(w, set, r.setIds.get(set));
    return;
  }
  const o = cmpOp(op);
  if (key === 'l4proto') {
    const proto = typeof right === 'string' && Object.hasOwn(L4, right) ? L4[right as keyof typeof L4] : undefined;
    if (proto === undefined) throw new Unencodable(`l4proto ${JSON.stringify(right)}`);
    metaLoad(w, META.l4proto);
    cmp(w, o, u8(proto));
    if (o === CMP.eq) r.l4 = proto;
    return;
  }
  if (typeof right !== 'string' || right.length === 0 || right.length >= IFNAMSIZ || right.includes('*') || !/^[\x21-\x7e]+$/.test(right)) {
    throw new Unencodable(`interface name ${JSON.stringify(right)}`);
  }
  const ifname = new Uint8Array(IFNAMSIZ);
  Buffer.from(ifname.buffer).write(right, 'latin1');
  metaLoad(w, META[key]);
  cmp(w, o, ifname);
}

function statement(r: Rule, e: NftExpr): void {
  const w = r.w;
  const [kind, body] = only(e);
  switch (kind) {
    case 'match': {
      const m = obj(body);
      const [lk, lb] = only(obj(m.left));
      const l = obj(lb);
      if (lk === 'payload') {
        const field = FIELDS[`${String(l.protocol)} ${String(l.field)}`];
        if (!field || Object.keys(l).length !== 2) throw new Unencodable(`payload ${JSON.stringify(l)}`);
        payloadMatch(r, field, m.op, m.right);
        return;
      }
      if (lk === 'meta' && Object.keys(l).length === 1) {
        metaMatch(r, l.key, m.op, m.right);
        return;
      }
      if (
        lk === 'ct' &&
        l.key === 'state' &&
        Object.keys(l).length === 1 &&
        m.op === 'in' &&
        Array.isArray(m.right) &&
        m.right.length > 0
      ) {
        let bits = 0;
        for (const s of m.right) {
          const bit = typeof s === 'string' && Object.hasOwn(CT_STATE, s) ? CT_STATE[s as keyof typeof CT_STATE] : undefined;
          if (bit === undefined) throw new Unencodable(`ct state ${JSON.stringify(s)}`);
          bits |= bit;
        }
        expr(w, 'ct', () => (w.u32(2, 0), w.u32(1, REG_1)));
        bitwise(w, hostU32(bits));
        cmp(w, CMP.neq, hostU32(0));
        return;
      }
      throw new Unencodable(`match ${JSON.stringify(m.left)}`);
    }
    case 'counter':
      if (body === null) expr(w, 'counter', () => undefined);
      // The object's name goes without a NUL here, as libnftnl sends it.
      else expr(w, 'objref', () => (w.u32(1, 1), w.str(2, name(body, 'counter'), false)));
      return;
    case 'limit': {
      const b = obj(body);
      if (!Number.isInteger(b.rate) || !Number.isInteger(b.burst) || b.per !== 'second' || Object.keys(b).length !== 3)
        throw new Unencodable(`limit ${JSON.stringify(b)}`);
      expr(w, 'limit', () => (w.u64(1, b.rate as number), w.u64(2, 1), w.u32(3, b.burst as number), w.u32(4, 0), w.u32(5, 0)));
      return;
    }
    case 'log': {
      const b = obj(body);
      if (Object.keys(b).length !== 1 || typeof b.prefix !== 'string' || !/^[\x20-\x7e]{1,127}$/.test(b.prefix))
        throw new Unencodable(`log ${JSON.stringify(b)}`);
      expr(w, 'log', () => w.str(2, b.prefix as string));
      return;
    }
    case 'accept':
    case 'drop':
    case 'return':
      if (body !== null) throw new Unencodable(`${kind} with a body`);
      verdict(w, VERDICT[kind]);
      return;
    case 'jump':
    case 'goto':
      verdict(w, VERDICT[kind], name(obj(body).target, 'chain'));
      return;
    default:
      throw new Unencodable(`statement ${kind}`);
  }
}

function comment(v: unknown): Uint8Array | null {
  if (v === undefined) return null;
  if (typeof v !== 'string' || !/^[\x20-\x7e]*$/.test(v) || v.length >= COMMENT_MAX) throw new Unencodable(`comment ${JSON.stringify(v)}`);
  // NFTNL_UDATA_RULE_COMMENT: type 0, one length byte, the string with its NUL.
  const out = new Uint8Array(v.length + 3);
  out[1] = v.length + 1;
  Buffer.from(out.buffer).write(v, 2, 'latin1');
  return out;
}

function command(w: Writer, c: NftCommand, seq: number, setIds: Map<string, number>): void {
  const [verb, what] = only(c);
  const [kind, raw] = only(obj(what));
  const b = obj(raw);
  if (b.family !== 'inet') throw new Unencodable(`family ${String(b.family)}`);
  const table = name(b.table, 'table');
  const known = (keys: string[]) => {
    for (const k of Object.keys(b)) if (!keys.includes(k)) throw new Unencodable(`${verb} ${kind}: field ${k}`);
  };
  const msg = (type: number, flags: number, body: () => void) =>
    w.message((NFNL_SUBSYS_NFTABLES << 8) | type, NLM_F_REQUEST | flags, seq, NFPROTO_INET, 0, () => {
      w.str(1, table);
      body();
    });
  switch (`${verb} ${kind}`) {
    case 'add chain': {
      known(['family', 'table', 'name']);
      const chain = name(b.name, 'chain');
      msg(NFT_MSG.newChain, NLM_F_CREATE, () => w.str(3, chain));
      return;
    }
    case 'flush chain': {
      known(['family', 'table', 'name']);
      const chain = name(b.name, 'chain');
      msg(NFT_MSG.delRule, 0, () => w.str(2, chain));
      return;
    }
    case 'add set': {
      known(['family', 'table', 'name', 'type', 'flags']);
      const key = Object.hasOwn(SET_KEY, String(b.type)) ? SET_KEY[b.type as keyof typeof SET_KEY] : undefined;
      if (!key || !Array.isArray(b.flags) || b.flags.length !== 1 || b.flags[0] !== 'timeout')
        throw new Unencodable(`set ${JSON.stringify(b)}`);
      const set = name(b.name, 'set');
      const id = setIds.size + 1;
      setIds.set(set, id);
      msg(NFT_MSG.newSet, NLM_F_CREATE, () => {
        w.str(2, set);
        w.u32(3, SET_TIMEOUT);
        w.u32(4, key.type);
        w.u32(5, key.len);
        w.u32(10, id);
        // NFTNL_UDATA_SET_KEYBYTEORDER: big endian, as nft records it for address keys.
        w.bytes(13, Uint8Array.of(0, 4, ...hostU32(2)));
      });
      return;
    }
    case 'add rule':
    case 'insert rule': {
      known(['family', 'table', 'chain', 'comment', 'expr']);
      if (!Array.isArray(b.expr) || b.expr.length === 0) throw new Unencodable('rule without expr');
      const chain = name(b.chain, 'chain');
      const note = comment(b.comment);
      const flags = NLM_F_CREATE | (verb === 'add' ? NLM_F_APPEND : 0);
      msg(NFT_MSG.newRule, flags, () => {
        w.str(2, chain);
        const list = w.begin(4);
        const r: Rule = { w, setIds, nfproto: null, l4: null };
        for (const e of b.expr as NftExpr[]) statement(r, e);
        w.end(list);
        if (note) w.bytes(7, note);
      });
      return;
    }
    default:
      throw new Unencodable(`command ${verb} ${kind}`);
  }
}

/**
 * One transaction: BATCH_BEGIN, one message per command (seq = its index + 1), BATCH_END.
 * Throws {@link Unencodable} for a document with anything this does not cover.
 */
export function encodeDocument(doc: NftDocument): Buffer {
  const w = new Writer();
  const setIds = new Map<string, number>();
  const batch = (type: number, seq: number) => w.message(type, NLM_F_REQUEST, seq, 0, NFNL_SUBSYS_NFTABLES, () => undefined);
  batch(NFNL_MSG_BATCH_BEGIN, 0);
  doc.nftables.forEach((c, i) => command(w, c, i + 1, setIds));
  batch(NFNL_MSG_BATCH_END, doc.nftables.length + 1);
  return w.buf.subarray(0, w.pos);
}

/** Errors the kernel answered, as `{ seq, errno }` (seq = command index + 1). */
export function parseReplies(buf: Buffer): { seq: number; errno: number }[] {
  const out: { seq: number; errno: number }[] = [];
  for (let o = 0; o + 16 <= buf.length;) {
    const len = buf.readUInt32LE(o);
    if (len < 16 || o + len > buf.length) break;
    if (buf.readUInt16LE(o + 4) === NLMSG_ERROR && len >= 36) {
      const err = buf.readInt32LE(o + 16);
      // The original message's header follows the error code.
      if (err !== 0) out.push({ seq: buf.readUInt32LE(o + 20 + 8), errno: -err });
    }
    o += (len + 3) & ~3;
  }
  return out;
}
