import { lookup as dnsLookup } from 'node:dns/promises';
import { cidrContains, checkCidr, formatIp, parseIp, type Cidr, type IpAddress } from '../../policies/address.ts';
import { parseList } from '../../core/validate.ts';

/**
 * The SSRF guard for webhook targets. A target must be http(s), carry no credentials, and its
 * host must not be, or resolve to, an address inside the operator's own perimeter (loopback,
 * private, link-local, cloud metadata, CGNAT, multicast, ...), in any spelling: IPv4-mapped and
 * NAT64/6to4 forms are judged by the IPv4 address they embed. Operators open ranges explicitly.
 */

/** Why an address is refused. `private`-like classes open with `allowPrivateTargets`; the rest only by CIDR. */
export type AddressClass = 'loopback' | 'private' | 'link-local' | 'cgnat' | 'metadata' | 'unspecified' | 'multicast' | 'reserved';

const OPENED_BY_ALLOW_PRIVATE: ReadonlySet<AddressClass> = new Set(['loopback', 'private', 'link-local', 'cgnat']);

const cidr = (text: string): Cidr => {
  const r = checkCidr(text);
  if (!('cidr' in r)) throw new Error(r.issue);
  return r.cidr;
};

/** Checked in order, so the specific metadata addresses win over the ranges that hold them. */
const FORBIDDEN: readonly { range: Cidr; cls: AddressClass }[] = (
  [
    // Cloud metadata and host endpoints: AWS/GCP/Azure/OCI, AWS ECS, Alibaba, Azure wire server, AWS IPv6.
    ['169.254.169.254/32', 'metadata'],
    ['169.254.170.2/32', 'metadata'],
    ['100.100.100.200/32', 'metadata'],
    ['168.63.129.16/32', 'metadata'],
    ['fd00:ec2::254/128', 'metadata'],
    ['0.0.0.0/8', 'unspecified'],
    ['10.0.0.0/8', 'private'],
    ['100.64.0.0/10', 'cgnat'],
    ['127.0.0.0/8', 'loopback'],
    ['169.254.0.0/16', 'link-local'],
    ['172.16.0.0/12', 'private'],
    ['192.168.0.0/16', 'private'],
    ['224.0.0.0/4', 'multicast'],
    ['240.0.0.0/4', 'reserved'],
    ['::/128', 'unspecified'],
    ['::1/128', 'loopback'],
    ['fe80::/10', 'link-local'],
    ['fec0::/10', 'private'],
    ['fc00::/7', 'private'],
    ['ff00::/8', 'multicast'],
    ['64:ff9b:1::/48', 'private'],
  ] as const
).map(([range, cls]) => ({ range: cidr(range), cls }));

/** IPv6 prefixes that carry an IPv4 address, and where: mapped, compatible, NAT64, 6to4. */
const EMBEDDING: readonly { range: Cidr; shift: bigint }[] = [
  { range: cidr('::ffff:0:0/96'), shift: 0n },
  { range: cidr('::/96'), shift: 0n },
  { range: cidr('64:ff9b::/96'), shift: 0n },
  { range: cidr('2002::/16'), shift: 80n },
];

/** What an operator opened (env `DIRECTOR_WEBHOOK_ALLOW_PRIVATE`, `DIRECTOR_WEBHOOK_ALLOWED_CIDRS`). */
export interface TargetPolicy {
  /** Opens loopback, private, link-local and CGNAT (not metadata, multicast or unspecified). */
  allowPrivateTargets: boolean;
  /** Opens exactly these ranges, whatever they hold. */
  allowedTargetCidrs: readonly Cidr[];
}

export const closedPolicy: TargetPolicy = { allowPrivateTargets: false, allowedTargetCidrs: [] };

/** Parses `DIRECTOR_WEBHOOK_ALLOWED_CIDRS`-style text (comma-separated); throws naming the bad entry. */
export function parseCidrList(text: string, name: string): Cidr[] {
  return parseList(text).map((s) => {
    const r = checkCidr(s);
    if (!('cidr' in r)) throw new Error(`${name}: ${r.issue}`);
    return r.cidr;
  });
}

const host = (a: IpAddress): Cidr => ({ ...a, len: a.family === 4 ? 32 : 128 });

/** The IPv4 address an IPv6 address embeds (mapped, compatible, NAT64, 6to4), if any. */
export function embeddedV4(a: IpAddress): IpAddress | null {
  if (a.family !== 6) return null;
  const hit = EMBEDDING.find((e) => cidrContains(e.range, host(a)));
  if (!hit) return null;
  const v4 = (a.value >> hit.shift) & 0xffffffffn;
  // `::` and `::1` sit inside ::/96 but are IPv6's own unspecified and loopback addresses.
  if (hit.range.len === 96 && hit.range.value === 0n && v4 <= 1n) return null;
  return { family: 4, value: v4 };
}

/** The class that makes `a` forbidden, or null for a public address. */
export function classify(a: IpAddress): AddressClass | null {
  const inner = embeddedV4(a);
  if (inner) return classify(inner);
  return FORBIDDEN.find((f) => cidrContains(f.range, host(a)))?.cls ?? null;
}

/** Why `address` may not be a webhook target under `policy`, or null when it may. */
export function refuseAddress(address: string, policy: TargetPolicy): string | null {
  const a = parseIp(address.replace(/%.*$/, ''));
  if (!a) return `"${address}" is not an IP address`;
  const candidates = [a, embeddedV4(a)].filter((x): x is IpAddress => x !== null);
  if (candidates.some((c) => policy.allowedTargetCidrs.some((r) => cidrContains(r, host(c))))) return null;
  const cls = classify(a);
  if (cls === null || (policy.allowPrivateTargets && OPENED_BY_ALLOW_PRIVATE.has(cls))) return null;
  const shown = formatIp(a);
  const inner = embeddedV4(a);
  return `${shown}${inner ? ` (embeds ${formatIp(inner)})` : ''} is a ${cls} address`;
}

export interface ParsedTarget {
  url: URL;
  /** The host without brackets or trailing dot. */
  hostname: string;
  /** Set when the host is an IP literal. */
  literal: IpAddress | null;
}

/** The checks that need no DNS: scheme, credentials, IP-literal hosts, `localhost` names. Returns the issue or the target. */
export function checkUrl(text: string, policy: TargetPolicy): { issue: string } | { target: ParsedTarget } {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return { issue: 'is not an absolute URL' };
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    return { issue: `scheme ${url.protocol.replace(/:$/, '')} is not allowed (http or https only)` };
  if (url.username || url.password) return { issue: 'must not carry credentials (user:password@)' };
  const hostname = url.hostname
    .replace(/^\[|\]$/g, '')
    .replace(/\.$/, '')
    .toLowerCase();
  if (!hostname) return { issue: 'has no host' };
  const literal = parseIp(hostname);
  if (literal) {
    const why = refuseAddress(hostname, policy);
    return why ? { issue: `target ${why}` } : { target: { url, hostname, literal } };
  }
  if (hostname === 'localhost' || hostname.endsWith('.localhost')) {
    if (refuseAddress('127.0.0.1', policy)) return { issue: `target ${hostname} is a loopback name` };
  }
  return { target: { url, hostname, literal: null } };
}

/** `dns.lookup(host, { all: true })`, injectable for tests. */
export type LookupAll = (hostname: string) => Promise<{ address: string; family: number }[]>;
export const systemLookup: LookupAll = (hostname) => dnsLookup(hostname, { all: true, verbatim: true });

/**
 * Resolves a host name and refuses it when any address it resolves to is forbidden (one bad
 * answer is enough: a client may connect to any of them). Returns the addresses.
 */
export async function resolveChecked(
  hostname: string,
  policy: TargetPolicy,
  lookup: LookupAll,
): Promise<{ address: string; family: number }[]> {
  const addrs = await lookup(hostname);
  if (addrs.length === 0) throw new TargetRefusedError(`${hostname} resolves to no address`);
  for (const a of addrs) {
    const why = refuseAddress(a.address, policy);
    if (why) throw new TargetRefusedError(`${hostname} resolves to a forbidden address: ${why}`);
  }
  return addrs;
}

/** A target the guard refused (at delivery time: a DNS answer changed since creation). */
export class TargetRefusedError extends Error {
  override name = 'TargetRefusedError';
}
