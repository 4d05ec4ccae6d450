/**
 * The compiler's input: everything it needs to know about Director's networks, as plain data.
 * The caller (the runtime) builds it from its records; the compiler never looks anything up.
 */
import { checkCidr, collapseCidrs, formatCidr, parseCidr, parseIp, subtractCidr, cidrContains, type Cidr } from '../policies/address.ts';
import type { NetworkPolicy } from '../policies/network-policy.ts';
import { validationError } from '../core/errors.ts';
import { SHORT_RE } from './names.ts';

/** The Director DNS resolver a network's sandboxes may query (usually on the gateway address). */
export interface DnsResolver {
  address: string;
  /** Port the resolver listens on, udp and tcp. */
  port: number;
}

export interface NetworkInput {
  /** Director network id; informational, never part of an nft name. */
  id: string;
  /** 1-12 of `[a-z0-9]`, unique per table, used in every nft name of the network (see `shortName`). */
  short: string;
  /** Linux bridge name (at most 15 characters); need not exist for the document to apply. */
  bridge: string;
  subnetV4: string;
  subnetV6?: string;
  gatewayV4: string;
  /** Drop everything into, out of and from the bridge to the host, established connections included. */
  isolated: boolean;
  /** null: no policy, everything allowed except the always-denied guards. */
  policy: NetworkPolicy | null;
  /** The only DNS server the network may reach; null: no DNS at all. */
  dns: DnsResolver | null;
}

export interface AlwaysDenied {
  v4: string[];
  v6: string[];
}

/** Token bucket of the drop log, per rule. */
export interface LogRate {
  perSecond: number;
  burst: number;
}

export interface NetfilterInput {
  /** Name of Director's `inet` table (default {@link DEFAULT_TABLE}). */
  table: string;
  networks: NetworkInput[];
  /** Destinations every Director network is denied before any policy rule (see {@link alwaysDeniedRanges}). */
  alwaysDenied: AlwaysDenied;
  logRate?: LogRate;
}

export const DEFAULT_TABLE = 'director';
export const DEFAULT_LOG_RATE: LogRate = { perSecond: 5, burst: 10 };

/**
 * Cloud metadata (169.254.169.254, fd00:ec2::254), loopback, link-local and IPv4-mapped IPv6
 * (which would otherwise be a way around every IPv4 rule).
 */
export const DEFAULT_ALWAYS_DENIED: AlwaysDenied = {
  v4: ['127.0.0.0/8', '169.254.0.0/16'],
  v6: ['::1/128', 'fe80::/10', 'fd00:ec2::254/128', '::ffff:0:0/96'],
};

/**
 * The always-denied ranges minus those an operator explicitly opened (an operator-level setting,
 * never a policy). Opening part of a range keeps the rest denied: opening `169.254.169.254/32`
 * leaves the rest of 169.254.0.0/16 denied.
 */
export function alwaysDeniedRanges(open: readonly string[] = [], base: AlwaysDenied = DEFAULT_ALWAYS_DENIED): AlwaysDenied {
  const opened = open.map((o, i) => {
    const r = checkCidr(o);
    if ('issue' in r) throw validationError(`open[${i}]`, r.issue);
    return r.cidr;
  });
  const minus = (list: string[]): string[] => {
    let cidrs = list.map((t) => parseCidr(t)).filter((c): c is Cidr => c !== null);
    for (const o of opened) cidrs = cidrs.flatMap((c) => subtractCidr(c, o));
    return collapseCidrs(cidrs).map(formatCidr);
  };
  return { v4: minus(base.v4), v6: minus(base.v6) };
}

const TABLE_RE = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;
const BRIDGE_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;

function cidrOf(text: string, family: 4 | 6, field: string): Cidr {
  const r = checkCidr(text);
  if ('issue' in r) throw validationError(field, r.issue);
  if (r.cidr.family !== family) throw validationError(field, `must be an IPv${family} CIDR`);
  return r.cidr;
}

/**
 * Refuses compiler input that nft would reject or that would make two networks share names.
 * Policies are assumed validated (`validateNetworkPolicy`).
 */
export function checkInput(input: NetfilterInput): void {
  if (!TABLE_RE.test(input.table)) throw validationError('table', 'must be a letter then letters, digits or _ (at most 64)');
  input.alwaysDenied.v4.forEach((c, i) => cidrOf(c, 4, `alwaysDenied.v4[${i}]`));
  input.alwaysDenied.v6.forEach((c, i) => cidrOf(c, 6, `alwaysDenied.v6[${i}]`));
  const shorts = new Set<string>();
  const bridges = new Set<string>();
  const subnets: Cidr[] = [];
  input.networks.forEach((n, i) => {
    checkNetwork(n, `networks[${i}]`);
    if (shorts.has(n.short)) throw validationError(`networks[${i}].short`, `"${n.short}" is used twice`);
    if (bridges.has(n.bridge)) throw validationError(`networks[${i}].bridge`, `"${n.bridge}" is used twice`);
    shorts.add(n.short);
    bridges.add(n.bridge);
    // Overlapping subnets would make the cross-network guard ambiguous (and nft refuses them in one interval set).
    for (const [key, text] of [
      ['subnetV4', n.subnetV4],
      ['subnetV6', n.subnetV6],
    ] as const) {
      const c = text === undefined ? null : parseCidr(text);
      if (!c) continue;
      if (subnets.some((o) => cidrContains(o, c) || cidrContains(c, o)))
        throw validationError(`networks[${i}].${key}`, `${text} overlaps another network's subnet`);
      subnets.push(c);
    }
  });
}

export function checkNetwork(n: NetworkInput, at = 'network'): void {
  if (!SHORT_RE.test(n.short)) throw validationError(`${at}.short`, 'must be 1-12 characters of [a-z0-9]');
  if (!BRIDGE_RE.test(n.bridge)) throw validationError(`${at}.bridge`, 'must be a valid interface name (at most 15 characters)');
  const v4 = cidrOf(n.subnetV4, 4, `${at}.subnetV4`);
  if (n.subnetV6 !== undefined) cidrOf(n.subnetV6, 6, `${at}.subnetV6`);
  const gw = parseIp(n.gatewayV4);
  if (!gw || gw.family !== 4 || !cidrContains(v4, { ...gw, len: 32 })) {
    throw validationError(`${at}.gatewayV4`, `must be an IPv4 address inside ${n.subnetV4}`);
  }
  if (n.dns) {
    if (!parseIp(n.dns.address)) throw validationError(`${at}.dns.address`, 'must be an IP address');
    if (!Number.isInteger(n.dns.port) || n.dns.port < 1 || n.dns.port > 65535) throw validationError(`${at}.dns.port`, 'must be 1-65535');
  }
}
