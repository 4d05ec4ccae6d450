/**
 * Every name the compiler gives an nft object, every rule tag (the rule comment) and the log
 * prefix format, in one place: the compiler writes them and the read-back and the deny-log
 * reader parse them, so they cannot drift apart.
 *
 * Per network (`<net>` = `net_<short>`):
 * - entry chains `<net>_out` (forward, from the bridge: egress), `<net>_in` (forward, to the
 *   bridge: ingress), `<net>_host` (input, from the bridge to the host itself), which the verdict
 *   maps jump to; each holds one rule, `goto <net>_<kind>_g<generation>`;
 * - generation chains `<net>_<kind>_g<N>` holding the rules of one version of the network's
 *   policy (a change adds generation N+1 and points the entry chain at it; see `compile.ts`);
 * - named counters `<net>_allowed`, `<net>_denied`;
 * - name sets `<net>_h<hash>_v4` / `_v6`, one per host-name pattern (hash of the pattern), so
 *   rules naming the same host share it and its resolved addresses survive policy changes.
 */
import { createHash } from 'node:crypto';
import type { IpFamily } from '../policies/address.ts';

export const BASE_CHAINS = { forward: 'filter_forward', input: 'filter_input' } as const;
export const MAPS = { out: 'egress_vmap', in: 'ingress_vmap', host: 'host_vmap' } as const;
export const GLOBAL_SETS = {
  bridges: 'bridges',
  subnetsV4: 'subnets_v4',
  subnetsV6: 'subnets_v6',
  deniedV4: 'always_denied_v4',
  deniedV6: 'always_denied_v6',
} as const;

/**
 * Constant sets shared by every network's rules, so that no rule needs an anonymous set: each
 * anonymous set is a set object of its own, and the kernel scans all of a table's sets to name a
 * new one and to resolve a set reference.
 */
export const CONST_SETS = {
  tcpUdp: { name: 'l4_tcp_udp', type: 'inet_proto', elem: ['tcp', 'udp'] },
  dnsPorts: { name: 'dns_ports', type: 'inet_service', elem: [53, 853] },
  icmpAny: { name: 'l4_icmp_any', type: 'inet_proto', elem: ['icmp', 'ipv6-icmp'] },
  ndTypes: { name: 'nd_types', type: 'icmpv6_type', elem: ['nd-neighbor-solicit', 'nd-neighbor-advert'] },
} as const;

/** The three per-network chains; `out`/`in`/`host` also name the hook side in rule tags. */
export type ChainKind = 'out' | 'in' | 'host';
export const CHAIN_KINDS: readonly ChainKind[] = ['out', 'in', 'host'];
export type CounterKind = 'allowed' | 'denied';

export const SHORT_RE = /^[a-z0-9]{1,12}$/;

/** A stable short name for a network id: 8 hex characters of its SHA-256. */
export const shortName = (networkId: string): string => createHash('sha256').update(networkId).digest('hex').slice(0, 8);

export const netPrefix = (short: string): string => `net_${short}`;
/** The entry chain a verdict map jumps to. */
export const chainName = (short: string, kind: ChainKind): string => `net_${short}_${kind}`;
/** The chain holding generation `gen` of the network's rules for one hook side. */
export const genChainName = (short: string, kind: ChainKind, gen: number): string => `net_${short}_${kind}_g${gen}`;
export const counterName = (short: string, kind: CounterKind): string => `net_${short}_${kind}`;
export const nameSetName = (short: string, host: string, family: IpFamily): string =>
  `net_${short}_h${createHash('sha256').update(host).digest('hex').slice(0, 10)}_v${family}`;

export type ParsedName =
  /** `gen` is absent for the entry chain. */
  | { kind: 'chain'; short: string; chain: ChainKind; gen?: number }
  | { kind: 'counter'; short: string; counter: CounterKind }
  | { kind: 'set'; short: string; family: IpFamily };

/** Which network object a table object name is, or null for global and foreign objects. */
export function parseObjectName(name: string): ParsedName | null {
  const m = /^net_([a-z0-9]{1,12})_(out|in|host|allowed|denied|h[0-9a-f]{10}_v(4|6))(?:_g(\d{1,9}))?$/.exec(name);
  if (!m) return null;
  const [, short = '', what = '', fam, gen] = m;
  if (what === 'out' || what === 'in' || what === 'host')
    return gen === undefined ? { kind: 'chain', short, chain: what } : { kind: 'chain', short, chain: what, gen: Number(gen) };
  if (gen !== undefined) return null;
  if (what === 'allowed' || what === 'denied') return { kind: 'counter', short, counter: what };
  return { kind: 'set', short, family: fam === '6' ? 6 : 4 };
}

/**
 * Rule tags, written as the rule comment and in the log prefix. A policy rule is `o<index>`
 * (outbound) or `i<index>` (inbound); the compiler's own rules are `<side>.<what>` where side is
 * `o` (egress), `i` (ingress) or `h` (to the host).
 */
export const GUARDS = ['isolate', 'peer', 'range', 'xnet', 'resolver', 'dns', 'established', 'nd', 'host', 'default', 'open'] as const;
export type Guard = (typeof GUARDS)[number];

/**
 * Whose rule it is, outermost first. `operator`: Director's guards and the operator's settings
 * (always-denied ranges and `DIRECTOR_ALWAYS_DENIED_OPEN`, other networks, the host, DNS only to
 * Director's resolver, same-network peers), evaluated before any policy rule, which can only
 * narrow what they leave open. `network`: the network's own: isolation, its policy's rules, the
 * policy's default (or, without a policy, `open`).
 */
export type Level = 'operator' | 'network';
export const GUARD_LEVEL: Record<Guard, Level> = {
  isolate: 'network',
  peer: 'operator',
  range: 'operator',
  xnet: 'operator',
  resolver: 'operator',
  dns: 'operator',
  established: 'network',
  nd: 'operator',
  host: 'operator',
  default: 'network',
  open: 'network',
};
const SIDE: Record<ChainKind, string> = { out: 'o', in: 'i', host: 'h' };

export const guardTag = (chain: ChainKind, guard: Guard): string => `${SIDE[chain]}.${guard}`;
export const ruleTag = (direction: 'outbound' | 'inbound', index: number): string => `${direction === 'outbound' ? 'o' : 'i'}${index}`;

export type ParsedTag =
  { kind: 'rule'; direction: 'outbound' | 'inbound'; index: number } | { kind: 'guard'; chain: ChainKind; guard: Guard };

export function parseTag(tag: string): ParsedTag | null {
  const rule = /^([oi])(\d{1,5})$/.exec(tag);
  if (rule) return { kind: 'rule', direction: rule[1] === 'o' ? 'outbound' : 'inbound', index: Number(rule[2]) };
  const guard = /^([oih])\.([a-z]+)$/.exec(tag);
  if (!guard || !(GUARDS as readonly string[]).includes(guard[2] ?? '')) return null;
  const chain: ChainKind = guard[1] === 'o' ? 'out' : guard[1] === 'i' ? 'in' : 'host';
  return { kind: 'guard', chain, guard: guard[2] as Guard };
}

/** nft stores at most 128 bytes of rule comment. */
export const MAX_COMMENT = 128;

/** The rule comment: the tag, then the host-name pattern when it fits. */
export function ruleComment(tag: string, host?: string): string {
  if (host === undefined) return tag;
  const full = `${tag} ${host}`;
  return Buffer.byteLength(full) <= MAX_COMMENT ? full : tag;
}

export function parseRuleComment(comment: string): { tag: string; host: string | null } {
  const sp = comment.indexOf(' ');
  return sp < 0 ? { tag: comment, host: null } : { tag: comment.slice(0, sp), host: comment.slice(sp + 1) };
}

/**
 * Kernel log prefix of a denied (`dir:`) or audited would-be-denied (`dira:`) packet:
 * `dir:<short>:<tag>: `, e.g. `dir:3f9a01bc:o2: ` or `dira:3f9a01bc:o.default: `.
 */
export const logPrefix = (short: string, tag: string, audit: boolean): string => `${audit ? 'dira' : 'dir'}:${short}:${tag}: `;

export interface ParsedLogPrefix {
  audit: boolean;
  short: string;
  tag: ParsedTag;
}

/** Finds and parses a Director log prefix in a kernel log line; null when there is none. */
export function parseLogLine(line: string): ParsedLogPrefix | null {
  const m = /(?:^|[^a-z])(dira?):([a-z0-9]{1,12}):([a-z0-9.]+): /.exec(line);
  if (!m) return null;
  const tag = parseTag(m[3] ?? '');
  return tag ? { audit: m[1] === 'dira', short: m[2] ?? '', tag } : null;
}
