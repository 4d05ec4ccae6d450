/**
 * "Would this connection get through?", answered from the rules read back from the kernel
 * (`readback.ts`), not from the stored request. Pure: the caller gathers the read-back, the host's
 * own addresses and the subnet → bridge routes of Director's networks.
 *
 * A query is a new connection (conntrack state `new`) from or to a sandbox of one network. It is
 * walked through the chain the kernel would send it to (egress, ingress, or sandbox → host for an
 * address of the host itself), rule by rule in the kernel's order, each match evaluated against
 * the packet and the sets as they are now; the first rule with a verdict decides. For a host name,
 * the Director resolver's decision comes first ({@link nameVerdict} over the read-back rules),
 * then the packet, whose address is in every name set whose pattern matches the name (the
 * resolver feeds each of them an answer) and, when `address` is given, is that address.
 */
import { cidrContains, parseCidr, parseIp, type IpAddress } from '../policies/address.ts';
import { hostMatches } from '../policies/hostname.ts';
import type { PolicyRule, RuleDirection } from '../policies/network-policy.ts';
import { nameVerdict, type PolicyOrder } from '../policies/rule-order.ts';
import { GUARD_LEVEL, parseTag, type ChainKind, type Guard, type Level } from './names.ts';
import type { KernelRule, MatchView, NetworkView, RuleView, TableView } from './readback.ts';

export interface VerdictQuery {
  direction: RuleDirection;
  protocol: 'tcp' | 'udp' | 'icmp';
  /** The far end's address: destination of outbound traffic, source of inbound. */
  address?: string;
  /** The far end's host name (outbound: resolved by the Director resolver first). */
  host?: string;
  /** Destination port (tcp and udp). */
  port?: number;
  /** The sandbox's own address; without it, a rule restricted to some sandboxes' addresses does not match. */
  sandboxAddress?: string;
}

export interface VerdictContext {
  /** Addresses of the host itself (not loopback): traffic to them goes to the input hook, the `host` chain. */
  hostAddresses: readonly string[];
  /** Director's networks: a destination in one of their subnets leaves through its bridge. */
  routes: readonly { subnet: string; bridge: string }[];
  /** How the resolver orders the stored policy's rules (null: the network has no policy). */
  order: PolicyOrder | null;
  /** Whether the network has the Director resolver (`enableDNS`). */
  resolver: boolean;
}

export interface DecidedBy {
  level: Level;
  /** `guard`: one of Director's guards; `rule`: a policy rule; `default`: no rule matched (the policy's default, or `open` without a policy). */
  kind: 'guard' | 'rule' | 'default';
  /** The kernel rule tag (`o.range`, `o2`). */
  tag: string;
  guard?: Guard;
  /** `outbound[2]`. */
  rule?: string;
}

export interface Verdict {
  /** What the rules decide. */
  verdict: 'allow' | 'deny';
  /** Whether the connection gets through: also true for a deny in audit mode (logged and counted, then let through). */
  passes: boolean;
  decidedBy: DecidedBy;
  /** The policy rule that decided, as read back. */
  rule?: RuleView;
  /** The chain that decided: `out` (egress), `in` (ingress) or `host` (sandbox → host). */
  chain: ChainKind;
  /** The generation of chains in force that was evaluated. */
  generation: number | null;
  /** For a host name: whether the Director resolver answers it, and the rule that decided. */
  resolver?: { answers: boolean; reason?: 'not_allowed' | 'denied_by_rule' | 'no_resolver' | 'isolated'; decidedBy: DecidedBy | null };
  /** The address evaluated (null: a host name alone, evaluated as IPv4 to an address only its answers hold). */
  address: string | null;
}

interface Packet {
  family: 4 | 6;
  l4: 'tcp' | 'udp' | 'icmp' | 'ipv6-icmp';
  saddr: IpAddress | null;
  daddr: IpAddress | null;
  /** The far end's name, on the side given: an address of that end is in every name set whose pattern matches it. */
  name: { field: 'saddr' | 'daddr'; host: string } | null;
  dport: number | null;
  iifname: string;
  oifname: string;
}

/** A bridge no Director network uses: where traffic to the rest of the world goes. */
const UPLINK = '';

const fieldOf = (left: string): { family: 4 | 6; field: 'saddr' | 'daddr' } | null => {
  const m = /^(ip|ip6) (saddr|daddr)$/.exec(left);
  return m ? { family: m[1] === 'ip' ? 4 : 6, field: m[2] as 'saddr' | 'daddr' } : null;
};

function inCidrText(addr: IpAddress, text: string): boolean {
  const dash = text.indexOf('-');
  if (dash > 0) {
    const lo = parseIp(text.slice(0, dash).replace(/\/\d+$/, ''));
    const hi = parseIp(text.slice(dash + 1).replace(/\/\d+$/, ''));
    return !!lo && !!hi && lo.family === addr.family && lo.value <= addr.value && addr.value <= hi.value;
  }
  const c = parseCidr(text);
  return c !== null && cidrContains(c, { ...addr, len: addr.family === 4 ? 32 : 128 });
}

class Evaluator {
  private readonly table: TableView;
  private readonly net: NetworkView;
  constructor(table: TableView, net: NetworkView) {
    this.table = table;
    this.net = net;
  }

  private inSet(set: string, value: string | number | IpAddress, name: Packet['name'] | null): boolean {
    const named = this.net.sets[set];
    if (named) {
      if (name && named.host !== null && hostMatches(named.host, name.host)) return true;
      return typeof value === 'object' && named.elements.some((e) => inCidrText(value, e.addr));
    }
    const elements = this.table.elements[set];
    if (!elements) throw new Error(`the read-back has no set ${set}`);
    if (typeof value === 'object') return elements.some((e) => typeof e === 'string' && inCidrText(value, e));
    return elements.some((e) => e === value);
  }

  /** Whether one match holds for the packet; a match on something unknown (no sandbox address) does not. */
  private holds(m: MatchView, p: Packet): boolean {
    const eq = (v: boolean) => (m.op === '!=' ? !v : v);
    const setName = typeof m.right === 'string' && m.right.startsWith('@') ? m.right.slice(1) : null;
    const addr = fieldOf(m.left);
    if (addr) {
      if (addr.family !== p.family) return false;
      const value = p[addr.field];
      const name = p.name?.field === addr.field ? p.name : null;
      if (setName !== null) return eq(value === null ? this.inSet(setName, '', name) : this.inSet(setName, value, name));
      if (value === null) return false;
      return eq(typeof m.right === 'string' && inCidrText(value, m.right));
    }
    const port = /^(tcp|udp|th) dport$/.exec(m.left);
    if (port) {
      if (p.dport === null || (port[1] !== 'th' && port[1] !== p.l4) || (p.l4 !== 'tcp' && p.l4 !== 'udp')) return false;
      if (setName !== null) return eq(this.inSet(setName, p.dport, null));
      const r = m.right;
      const hit =
        typeof r === 'number' ? r === p.dport : typeof r === 'object' && !Array.isArray(r) && r.from <= p.dport && p.dport <= r.to;
      return eq(hit);
    }
    if (m.left === 'meta l4proto') return eq(setName !== null ? this.inSet(setName, p.l4, null) : m.right === p.l4);
    if (m.left === 'meta oifname' || m.left === 'meta iifname') {
      const ifname = m.left === 'meta oifname' ? p.oifname : p.iifname;
      return eq(setName !== null ? this.inSet(setName, ifname, null) : m.right === ifname);
    }
    // A new connection is neither established nor related, and carries no ICMPv6 neighbour discovery.
    if (m.left === 'ct state' || m.left === 'icmpv6 type') return m.op === '!=';
    throw new Error(`cannot evaluate the match ${m.left} ${m.op} ${JSON.stringify(m.right)}`);
  }

  run(rules: readonly KernelRule[], p: Packet): KernelRule | null {
    return rules.find((r) => r.verdict !== null && r.matches.every((m) => this.holds(m, p))) ?? null;
  }
}

function decided(tag: string): DecidedBy {
  const t = parseTag(tag);
  if (t?.kind === 'rule') return { level: 'network', kind: 'rule', tag, rule: `${t.direction}[${t.index}]` };
  if (t?.kind === 'guard')
    return { level: GUARD_LEVEL[t.guard], kind: t.guard === 'default' || t.guard === 'open' ? 'default' : 'guard', tag, guard: t.guard };
  throw new Error(`the read-back has a rule tagged ${tag}`);
}

/** The read-back's outbound rules as policy rules, in the kernel's order, for the resolver's decision. */
const asRules = (views: readonly RuleView[]): { rules: PolicyRule[]; index: number[] } => ({
  rules: views.map((v) => {
    const r: PolicyRule = { action: v.action, protocol: v.protocol };
    if (v.source !== undefined) r.source = v.source;
    // A pattern too long for the rule comment reads back as `@set`: it names no host here.
    if (v.destination !== undefined) r.destination = v.destination.startsWith('@') ? '@' : v.destination;
    if (v.port !== undefined) r.port = v.port;
    return r;
  }),
  index: views.map((v) => v.index),
});

/**
 * Evaluates `q` for the network `short` against the read-back `table`. Throws when the network
 * has no chains in force or the query is malformed (the caller validates requests first).
 */
export function evaluateVerdict(table: TableView, short: string, q: VerdictQuery, ctx: VerdictContext): Verdict {
  const net = table.networks[short];
  const chains = table.kernel[short];
  if (!net || !chains || net.bridge === null) throw new Error(`network ${short} has no chains in force`);
  const address = q.address === undefined ? null : parseIp(q.address);
  if (q.address !== undefined && !address) throw new Error(`${q.address} is not an IP address`);
  const local = q.sandboxAddress === undefined ? null : parseIp(q.sandboxAddress);
  const family: 4 | 6 = address?.family ?? 4;
  const outbound = q.direction === 'outbound';
  const base = { generation: net.generation, address: address ? q.address! : null };
  const rulesByIndex = (ref: string | undefined) => {
    const m = ref ? /^(outbound|inbound)\[(\d+)\]$/.exec(ref) : null;
    return m ? net[m[1] as RuleDirection].find((r) => r.index === Number(m[2])) : undefined;
  };

  let resolver: Verdict['resolver'];
  if (q.host !== undefined && outbound) {
    const isolated = chains.out.find((r) => r.tag === 'o.isolate');
    if (isolated) {
      const by = decided(isolated.tag);
      return {
        ...base,
        verdict: 'deny',
        passes: false,
        decidedBy: by,
        chain: 'out',
        resolver: { answers: false, reason: 'isolated', decidedBy: by },
      };
    }
    if (!ctx.resolver) {
      resolver = { answers: false, reason: 'no_resolver', decidedBy: null };
    } else if (ctx.order !== null) {
      const { rules, index } = asRules(net.outbound);
      const v = nameVerdict(rules, q.host.toLowerCase().replace(/\.$/, ''), ctx.order);
      const by = v.index === null ? null : decided(`o${index[v.index]!}`);
      resolver = v.answer ? { answers: true, decidedBy: by } : { answers: false, reason: v.reason, decidedBy: by };
    } else {
      resolver = { answers: true, decidedBy: null };
    }
    if (!resolver.answers) {
      // Refused: no address to connect to. In audit mode the resolver answers anyway (and reports it).
      const by = resolver.decidedBy ?? { level: 'network' as const, kind: 'default' as const, tag: 'o.default', guard: 'default' as const };
      const rule = rulesByIndex(by.rule);
      return {
        ...base,
        verdict: 'deny',
        passes: net.mode === 'audit' && resolver.reason !== 'no_resolver',
        decidedBy: by,
        ...(rule ? { rule } : {}),
        chain: 'out',
        resolver,
      };
    }
  }

  const toHost =
    outbound && address !== null && ctx.hostAddresses.some((h) => parseIp(h)?.value === address.value && parseIp(h)?.family === family);
  const routeOf = (a: IpAddress | null): string => {
    if (!a) return UPLINK;
    const r = ctx.routes.find((x) => {
      const c = parseCidr(x.subnet);
      return c !== null && cidrContains(c, { ...a, len: a.family === 4 ? 32 : 128 });
    });
    return r?.bridge ?? UPLINK;
  };
  const l4 = q.protocol === 'icmp' ? (family === 4 ? 'icmp' : 'ipv6-icmp') : q.protocol;
  const name = q.host === undefined ? null : { field: outbound ? ('daddr' as const) : ('saddr' as const), host: q.host.toLowerCase() };
  const packet: Packet = {
    family,
    l4,
    saddr: outbound ? local : address,
    daddr: outbound ? address : local,
    name,
    dport: q.protocol === 'icmp' ? null : (q.port ?? null),
    iifname: outbound ? net.bridge : routeOf(address),
    oifname: outbound ? (toHost ? UPLINK : routeOf(address)) : net.bridge,
  };
  const chain: ChainKind = toHost ? 'host' : outbound ? 'out' : 'in';
  const hit = new Evaluator(table, net).run(chains[chain], packet);
  if (!hit) throw new Error(`no rule of chain ${chain} decided: the read-back is incomplete`);
  const by = decided(hit.tag);
  const rule = rulesByIndex(by.rule);
  return {
    ...base,
    verdict: hit.verdict === 'accept' ? 'allow' : 'deny',
    passes: hit.verdict !== 'drop',
    decidedBy: by,
    ...(rule ? { rule } : {}),
    chain,
    ...(resolver ? { resolver } : {}),
  };
}
