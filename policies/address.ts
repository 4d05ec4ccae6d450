/**
 * IP addresses and CIDR prefixes as exact numbers (bigint), so containment and equality do not
 * depend on how a human or nft spelled an address. Shared by the policy validator and the
 * netfilter compiler and read-back, which all need the same canonical text form.
 */
import { isIPv4, isIPv6 } from 'node:net';

export type IpFamily = 4 | 6;

export interface IpAddress {
  family: IpFamily;
  /** The address as an unsigned 32- or 128-bit integer. */
  value: bigint;
}

export interface Cidr extends IpAddress {
  /** Prefix length: 0-32 for IPv4, 0-128 for IPv6. */
  len: number;
}

const bits = (family: IpFamily): number => (family === 4 ? 32 : 128);

function parseV4(text: string): bigint | null {
  if (!isIPv4(text)) return null;
  const parts = text.split('.');
  // Leading zeros are refused: some stacks read them as octal, so "010.0.0.1" is ambiguous.
  if (parts.some((p) => p.length > 1 && p.startsWith('0'))) return null;
  return parts.reduce((acc, p) => (acc << 8n) | BigInt(Number(p)), 0n);
}

function parseV6(text: string): bigint | null {
  if (!isIPv6(text) || text.includes('%')) return null;
  let head = text;
  let tail: bigint[] = [];
  const lastColon = text.lastIndexOf(':');
  const dotted = text.slice(lastColon + 1);
  if (dotted.includes('.')) {
    const v4 = parseV4(dotted);
    if (v4 === null) return null;
    tail = [v4 >> 16n, v4 & 0xffffn];
    head = text.slice(0, lastColon + 1);
    if (head.endsWith(':') && !head.endsWith('::')) head = head.slice(0, -1);
  }
  const [left = '', right] = head.split('::');
  const groups = (s: string): bigint[] => (s === '' ? [] : s.split(':').map((g) => BigInt(`0x${g}`)));
  const l = groups(left);
  const r = right === undefined ? [] : groups(right);
  const fill = 8 - l.length - r.length - tail.length;
  if (fill < 0 || (right === undefined && fill !== 0)) return null;
  const all = [...l, ...Array<bigint>(fill).fill(0n), ...r, ...tail];
  return all.reduce((acc, g) => (acc << 16n) | g, 0n);
}

/** Parses a bare IPv4 or IPv6 address (no prefix, no zone); null when invalid. */
export function parseIp(text: string): IpAddress | null {
  const v4 = parseV4(text);
  if (v4 !== null) return { family: 4, value: v4 };
  const v6 = parseV6(text);
  if (v6 !== null) return { family: 6, value: v6 };
  return null;
}

/** Canonical text: dotted quad, or RFC 5952 IPv6 (lowercase, longest zero run compressed). */
export function formatIp(addr: IpAddress): string {
  if (addr.family === 4) {
    return [24n, 16n, 8n, 0n].map((s) => ((addr.value >> s) & 0xffn).toString()).join('.');
  }
  const g = [112n, 96n, 80n, 64n, 48n, 32n, 16n, 0n].map((s) => Number((addr.value >> s) & 0xffffn));
  let best = -1;
  let bestLen = 1; // RFC 5952: a single zero group is never compressed
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (a: number[]) => a.map((n) => n.toString(16)).join(':');
  if (best < 0) return hex(g);
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

/**
 * Checks a CIDR (`10.0.0.0/8`, `2001:db8::/32`) or a bare address (taken as a full-length
 * prefix). Host bits set below the prefix are refused rather than silently cleared, because
 * `10.1.2.3/8` usually means the author meant something else.
 */
export function checkCidr(text: string): { cidr: Cidr } | { issue: string } {
  const slash = text.indexOf('/');
  const addrText = slash < 0 ? text : text.slice(0, slash);
  const addr = parseIp(addrText);
  if (!addr) return { issue: `"${text}" is not an IPv4 or IPv6 address or CIDR` };
  const max = bits(addr.family);
  let len = max;
  if (slash >= 0) {
    const lenText = text.slice(slash + 1);
    if (!/^(0|[1-9][0-9]{0,2})$/.test(lenText) || Number(lenText) > max) {
      return { issue: `"${text}" has an invalid prefix length (0-${max} for IPv${addr.family})` };
    }
    len = Number(lenText);
  }
  const hostMask = (1n << BigInt(max - len)) - 1n;
  if ((addr.value & hostMask) !== 0n) {
    const net = formatCidr({ ...addr, value: addr.value & ~hostMask, len });
    return { issue: `"${text}" has host bits set below the /${len} prefix (did you mean ${net}?)` };
  }
  return { cidr: { ...addr, len } };
}

/** Strict CIDR parse (see {@link checkCidr}); null when invalid. */
export function parseCidr(text: string): Cidr | null {
  const r = checkCidr(text);
  return 'cidr' in r ? r.cidr : null;
}

/** Canonical `addr/len` text, the length always written (`1.2.3.4/32`). */
export function formatCidr(c: Cidr): string {
  return `${formatIp(c)}/${c.len}`;
}

/** Whether `outer` contains `inner` (equal prefixes contain each other). */
export function cidrContains(outer: Cidr, inner: Cidr): boolean {
  if (outer.family !== inner.family || outer.len > inner.len) return false;
  const shift = BigInt(bits(outer.family) - outer.len);
  return outer.value >> shift === inner.value >> shift;
}

/**
 * Drops prefixes contained in another one of the list (and duplicates). nft interval sets refuse
 * overlapping elements in one transaction; CIDRs either nest or are disjoint, so this suffices.
 */
export function collapseCidrs(list: readonly Cidr[]): Cidr[] {
  const sorted = [...list].sort((a, b) => a.len - b.len);
  const out: Cidr[] = [];
  for (const c of sorted) if (!out.some((o) => cidrContains(o, c))) out.push(c);
  return out;
}

/**
 * `outer` minus `inner`, as the fewest prefixes: the sibling of each step down from `outer` to
 * `inner`. Returns `[outer]` when they do not overlap and `[]` when `inner` covers `outer`.
 */
export function subtractCidr(outer: Cidr, inner: Cidr): Cidr[] {
  if (cidrContains(inner, outer)) return [];
  if (!cidrContains(outer, inner)) return [outer];
  const max = bits(outer.family);
  const out: Cidr[] = [];
  for (let len = outer.len + 1; len <= inner.len; len++) {
    const shift = BigInt(max - len);
    const innerNet = (inner.value >> shift) << shift;
    const sibling = innerNet ^ (1n << shift);
    out.push({ family: outer.family, value: sibling, len });
  }
  return out;
}
