/**
 * Read-back: the policy actually in force, parsed from `nft -j list table inet <name>`, not
 * from what was requested. Match expressions are parsed from the kernel's rules; the rule
 * comment (also stored in the kernel) only ties nft rules back to the policy rule index and
 * keeps the host-name pattern, which the kernel does not otherwise know. Only the generation
 * of chains the entry chains go to counts; one not yet retired is ignored.
 *
 * Besides the policy's rules and guards, the read-back keeps each chain in force rule by rule in
 * the kernel's order with its matches ({@link TableView.kernel}), and the same as steps a reader
 * can follow ({@link NetworkView.evaluation}); `verdict.ts` evaluates a packet against them.
 */
import { formatCidr, parseCidr, parseIp } from '../policies/address.ts';
import type { PolicyMode, PortSpec } from '../policies/network-policy.ts';
import {
  GLOBAL_SETS,
  GUARD_LEVEL,
  MAPS,
  parseObjectName,
  parseRuleComment,
  parseTag,
  type ChainKind,
  type Guard,
  type Level,
} from './names.ts';

export interface Counts {
  packets: number;
  bytes: number;
}

export interface RuleView {
  index: number;
  action: 'allow' | 'deny';
  /** A deny compiled for audit mode: logged and counted, not dropped. */
  audit: boolean;
  protocol: 'tcp' | 'udp' | 'icmp' | 'all';
  /** Canonical CIDR, host-name pattern, or `@<set>` when the pattern did not fit the comment. */
  source?: string;
  destination?: string;
  port?: PortSpec;
  /** Name sets the rule matches against. */
  sets: string[];
  logged: boolean;
  /** Sum of the rule's per-rule counters; null when the policy turned them off. */
  counter: Counts | null;
}

export interface GuardView {
  chain: ChainKind;
  guard: Guard;
  verdict: Verdict | null;
  logged: boolean;
  counter: Counts | null;
}

export interface SetElementView {
  addr: string;
  timeoutS: number | null;
  expiresS: number | null;
}
export interface NameSetView {
  name: string;
  family: 4 | 6;
  host: string | null;
  elements: SetElementView[];
}

/** One match of a kernel rule: `ip daddr 10.0.0.0/8`, `meta oifname != dir-1a2b3c4d`, `tcp dport 8000-8100`. */
export interface MatchView {
  /** `ip daddr`, `ip6 saddr`, `tcp dport`, `udp dport`, `th dport`, `meta l4proto`, `meta oifname`, `meta iifname`, `ct state`, `icmpv6 type`. */
  left: string;
  op: '==' | '!=' | 'in';
  /** Canonical CIDR (`1.2.3.4/32`), `@set`, a name (interface, protocol), a port, a port range, or a list. */
  right: string | number | { from: number; to: number } | string[];
}

/** One rule of a chain in force, as the kernel holds it. */
export interface KernelRule {
  tag: string;
  matches: MatchView[];
  /** null: no verdict (a log rule), evaluation goes on. */
  verdict: Verdict | null;
}

/** One step of a chain as packets meet it: a guard or a policy rule, with the kernel rules that make it up. */
export interface StepView {
  /** `operator`: Director's guards and the operator's settings, which no policy can reopen; `network`: the network's own (isolation, its policy, the default). */
  level: Level;
  kind: 'guard' | 'rule' | 'default';
  tag: string;
  guard?: Guard;
  /** The policy rule (`outbound[2]`). */
  rule?: string;
  /** `audit`: a deny in audit mode (logged and counted, then let through). */
  action: 'allow' | 'deny' | 'audit';
  /** Each kernel rule's matches in nft's words (`ip daddr 10.0.0.0/8 tcp dport 443`); `any` for none. */
  match: string[];
  logged: boolean;
}

export interface NetworkView {
  short: string;
  /** Bridge the egress verdict map sends to this network's chain; null when no element does. */
  bridge: string | null;
  isolated: boolean;
  /** null: no policy (the network's chains end in accept). */
  mode: PolicyMode | null;
  /** Whether the default deny is logged (always true in audit mode); null without a policy. */
  logging: boolean | null;
  outbound: RuleView[];
  inbound: RuleView[];
  /** The compiler's own rules, in chain order (out, in, host). */
  guards: GuardView[];
  counters: { allowed: Counts | null; denied: Counts | null };
  sets: Record<string, NameSetView>;
  /** The generation of chains in force (that the egress entry chain goes to); null when none is. */
  generation: number | null;
  /** Every generation with chains in the kernel, ascending: the one in force and any replaced one not yet retired. */
  generations: number[];
  /** The chains in force in evaluation order: egress, ingress and sandbox → host. */
  evaluation: { outbound: StepView[]; inbound: StepView[]; host: StepView[] };
}

export interface TableView {
  table: string;
  networks: Record<string, NetworkView>;
  bridges: string[];
  subnets: string[];
  alwaysDenied: string[];
  /** Elements of every set that is not a network's name set (addresses as canonical CIDRs, or `a-b` ranges). */
  elements: Record<string, (string | number)[]>;
  /** Per network short: the chains in force, rule by rule in the kernel's order. */
  kernel: Record<string, Record<ChainKind, KernelRule[]>>;
}

type Verdict = 'accept' | 'drop' | 'return';
type Json = Record<string, unknown>;

const obj = (v: unknown): Json => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : {});

/** A set element / match right-hand side as canonical CIDR text. */
function cidrText(v: unknown): string | null {
  if (typeof v === 'string') {
    const ip = parseIp(v);
    return ip ? formatCidr({ ...ip, len: ip.family === 4 ? 32 : 128 }) : null;
  }
  const p = obj(obj(v).prefix);
  if (typeof p.addr === 'string' && typeof p.len === 'number') {
    const c = parseCidr(`${p.addr}/${p.len}`);
    return c ? formatCidr(c) : null;
  }
  return null;
}

interface ParsedRule {
  tag: string;
  matches: MatchView[];
  host: string | null;
  verdict: Verdict | null;
  logged: boolean;
  counter: Counts | null;
  protocol: RuleView['protocol'];
  port?: PortSpec;
  saddr?: string;
  daddr?: string;
  sets: string[];
  /** Target of a `goto` (the entry chain's one rule). */
  goto?: string;
}

function parseRule(rule: Json): ParsedRule {
  const { tag, host } = parseRuleComment(typeof rule.comment === 'string' ? rule.comment : '');
  const out: ParsedRule = { tag, matches: [], host, verdict: null, logged: false, counter: null, protocol: 'all', sets: [] };
  for (const e of Array.isArray(rule.expr) ? (rule.expr as unknown[]) : []) {
    const ex = obj(e);
    for (const v of ['accept', 'drop', 'return'] as const) if (v in ex) out.verdict = v;
    if ('goto' in ex) out.goto = String(obj(ex.goto).target);
    if ('log' in ex) out.logged = true;
    if ('counter' in ex && typeof ex.counter === 'object' && ex.counter !== null) {
      const c = obj(ex.counter);
      out.counter = { packets: Number(c.packets ?? 0), bytes: Number(c.bytes ?? 0) };
    }
    const m = obj(ex.match);
    if ('match' in ex) out.matches.push(matchView(m));
    if (m.op !== '==') continue;
    const left = obj(m.left);
    const pl = obj(left.payload);
    const metaKey = obj(left.meta).key;
    if ((pl.protocol === 'ip' || pl.protocol === 'ip6') && (pl.field === 'saddr' || pl.field === 'daddr')) {
      const key = pl.field;
      if (typeof m.right === 'string' && m.right.startsWith('@')) {
        out.sets.push(m.right.slice(1));
        out[key] = host ?? m.right;
      } else {
        out[key] = cidrText(m.right) ?? JSON.stringify(m.right);
      }
    } else if ((pl.protocol === 'tcp' || pl.protocol === 'udp') && pl.field === 'dport') {
      out.protocol = pl.protocol;
      const range = obj(m.right).range;
      out.port = Array.isArray(range) ? { from: Number(range[0]), to: Number(range[1]) } : Number(m.right);
    } else if (metaKey === 'l4proto') {
      const r = m.right;
      out.protocol = r === 'tcp' || r === 'udp' ? r : 'icmp';
    }
  }
  return out;
}

const ADDRESS_FIELDS = new Set(['ip saddr', 'ip daddr', 'ip6 saddr', 'ip6 daddr']);

/** A set element or match value as text: canonical CIDR for addresses, `a-b` for a range, else as is. */
function valueText(v: unknown, address: boolean): string | number {
  if (typeof v === 'number') return v;
  if (typeof v === 'string') return address && !v.startsWith('@') ? (cidrText(v) ?? v) : v;
  const range = obj(v).range;
  if (Array.isArray(range)) return `${String(valueText(range[0], address))}-${String(valueText(range[1], address))}`;
  return (address ? cidrText(v) : null) ?? JSON.stringify(v);
}

function matchView(m: Json): MatchView {
  const left = obj(m.left);
  const pl = obj(left.payload);
  const l =
    'payload' in left
      ? `${String(pl.protocol)} ${String(pl.field)}`
      : 'meta' in left
        ? `meta ${String(obj(left.meta).key)}`
        : 'ct' in left
          ? `ct ${String(obj(left.ct).key)}`
          : JSON.stringify(left);
  const op = m.op === '!=' || m.op === 'in' ? m.op : '==';
  const range = obj(m.right).range;
  let right: MatchView['right'];
  if (Array.isArray(m.right)) right = m.right.map(String);
  else if (Array.isArray(range) && !ADDRESS_FIELDS.has(l)) right = { from: Number(range[0]), to: Number(range[1]) };
  else right = valueText(m.right, ADDRESS_FIELDS.has(l));
  return { left: l, op, right };
}

const matchText = (m: MatchView): string => {
  const r = m.right;
  const right = Array.isArray(r) ? r.join(',') : typeof r === 'object' ? `${r.from}-${r.to}` : String(r);
  return `${m.left} ${m.op === '!=' ? '!= ' : ''}${right}`;
};

const addCounts = (a: Counts | null, b: Counts | null): Counts | null =>
  a && b ? { packets: a.packets + b.packets, bytes: a.bytes + b.bytes } : (a ?? b);

function ruleView(index: number, group: ParsedRule[]): RuleView {
  const verdicts = group.filter((r) => r.verdict !== null);
  const first = verdicts[0] ?? group[0]!;
  const view: RuleView = {
    index,
    action: first.verdict === 'accept' ? 'allow' : 'deny',
    audit: first.verdict === 'return',
    protocol: first.protocol,
    sets: [...new Set(verdicts.flatMap((r) => r.sets))],
    logged: group.some((r) => r.logged),
    counter: verdicts.reduce<Counts | null>((acc, r) => addCounts(acc, r.counter), null),
  };
  const source = verdicts.find((r) => r.saddr)?.saddr;
  const destination = verdicts.find((r) => r.daddr)?.daddr;
  if (source !== undefined) view.source = source;
  if (destination !== undefined) view.destination = destination;
  if (first.port !== undefined) view.port = first.port;
  return view;
}

function emptyNetwork(short: string): NetworkView {
  return {
    short,
    bridge: null,
    isolated: false,
    mode: null,
    logging: null,
    outbound: [],
    inbound: [],
    guards: [],
    counters: { allowed: null, denied: null },
    sets: {},
    generation: null,
    generations: [],
    evaluation: { outbound: [], inbound: [], host: [] },
  };
}

/** A chain's kernel rules as steps: consecutive rules with one tag (a log rule and its drop, one per address family) are one step. */
function steps(rules: ParsedRule[]): StepView[] {
  const out: StepView[] = [];
  for (const r of rules) {
    const t = parseTag(r.tag);
    if (!t) continue;
    let last = out.at(-1);
    if (last?.tag !== r.tag) {
      const guard = t.kind === 'guard' ? t.guard : undefined;
      last = {
        level: guard ? GUARD_LEVEL[guard] : 'network',
        kind: guard === undefined ? 'rule' : guard === 'default' || guard === 'open' ? 'default' : 'guard',
        tag: r.tag,
        ...(guard ? { guard } : {}),
        ...(t.kind === 'rule' ? { rule: `${t.direction}[${t.index}]` } : {}),
        action: 'deny',
        match: [],
        logged: false,
      };
      out.push(last);
    }
    last.logged ||= r.logged;
    if (r.verdict === null) continue;
    last.action = r.verdict === 'accept' ? 'allow' : r.verdict === 'return' ? 'audit' : 'deny';
    last.match.push(r.matches.length ? r.matches.map(matchText).join(' ') : 'any');
  }
  return out;
}

/** Parses the output of `nft -j list table inet <table>` into the per-network view. */
export function parseTable(listing: unknown): TableView {
  const items = (Array.isArray(obj(listing).nftables) ? (obj(listing).nftables as unknown[]) : []).map(obj);
  const view: TableView = { table: '', networks: {}, bridges: [], subnets: [], alwaysDenied: [], elements: {}, kernel: {} };
  const net = (short: string): NetworkView => (view.networks[short] ??= emptyNetwork(short));
  const rulesByChain = new Map<string, ParsedRule[]>();
  const hosts = new Map<string, string>();

  for (const item of items) {
    if (item.table) view.table = String(obj(item.table).name);
    if (item.counter) {
      const c = obj(item.counter);
      const parsed = parseObjectName(String(c.name));
      if (parsed?.kind === 'counter')
        net(parsed.short).counters[parsed.counter] = { packets: Number(c.packets ?? 0), bytes: Number(c.bytes ?? 0) };
    }
    if (item.map) {
      const m = obj(item.map);
      if (m.name !== MAPS.out || !Array.isArray(m.elem)) continue;
      for (const e of m.elem as unknown[]) {
        if (!Array.isArray(e)) continue;
        const target = parseObjectName(String(obj(obj(e[1]).jump).target));
        if (target?.kind === 'chain') net(target.short).bridge = String(e[0]);
      }
    }
    if (item.set) {
      const s = obj(item.set);
      const elems = Array.isArray(s.elem) ? (s.elem as unknown[]) : [];
      const name = String(s.name);
      const address = s.type === 'ipv4_addr' || s.type === 'ipv6_addr';
      if (parseObjectName(name) === null) view.elements[name] = elems.map((e) => valueText(e, address));
      if (name === GLOBAL_SETS.bridges) view.bridges = elems.map(String);
      else if (name === GLOBAL_SETS.subnetsV4 || name === GLOBAL_SETS.subnetsV6)
        view.subnets.push(...elems.map(cidrText).filter((x): x is string => !!x));
      else if (name === GLOBAL_SETS.deniedV4 || name === GLOBAL_SETS.deniedV6)
        view.alwaysDenied.push(...elems.map(cidrText).filter((x): x is string => !!x));
      const parsed = parseObjectName(name);
      if (parsed?.kind !== 'set') continue;
      net(parsed.short).sets[name] = {
        name,
        family: parsed.family,
        host: null,
        elements: elems.map((e) => {
          const el = obj(obj(e).elem);
          const val = typeof e === 'string' ? e : String(el.val);
          const num = (v: unknown) => (typeof v === 'number' ? v : null);
          return { addr: val, timeoutS: num(el.timeout), expiresS: num(el.expires) };
        }),
      };
    }
    if (item.chain) {
      const parsed = parseObjectName(String(obj(item.chain).name));
      if (parsed?.kind === 'chain' && parsed.gen !== undefined) {
        const gens = net(parsed.short).generations;
        if (!gens.includes(parsed.gen)) gens.push(parsed.gen);
      }
    }
    if (item.rule) {
      const r = obj(item.rule);
      const chain = String(r.chain);
      const list = rulesByChain.get(chain) ?? [];
      list.push(parseRule(r));
      rulesByChain.set(chain, list);
    }
  }

  // The generation in force is the one the entry chain's first rule goes to; the rules of
  // generations not yet retired are not in force and are left out.
  const inForce = new Set<string>();
  for (const [chain, rules] of rulesByChain) {
    const parsed = parseObjectName(chain);
    const target = rules[0]?.goto;
    if (parsed?.kind !== 'chain' || parsed.gen !== undefined || target === undefined) continue;
    const t = parseObjectName(target);
    if (t?.kind !== 'chain' || t.short !== parsed.short || t.chain !== parsed.chain || t.gen === undefined) continue;
    inForce.add(target);
    if (t.chain === 'out') net(t.short).generation = t.gen;
  }
  for (const [chain, rules] of rulesByChain) {
    const parsed = parseObjectName(chain);
    if (parsed?.kind !== 'chain' || !inForce.has(chain)) continue;
    for (const r of rules) if (r.host) for (const s of r.sets) hosts.set(s, r.host);
    const n = net(parsed.short);
    (view.kernel[parsed.short] ??= { out: [], in: [], host: [] })[parsed.chain] = rules.map((r) => ({
      tag: r.tag,
      matches: r.matches,
      verdict: r.verdict,
    }));
    n.evaluation[parsed.chain === 'out' ? 'outbound' : parsed.chain === 'in' ? 'inbound' : 'host'] = steps(rules);
    const groups = new Map<string, ParsedRule[]>();
    for (const r of rules) groups.set(r.tag, [...(groups.get(r.tag) ?? []), r]);
    for (const [tag, group] of groups) {
      const t = parseTag(tag);
      if (t?.kind === 'rule') {
        n[t.direction].push(ruleView(t.index, group));
        continue;
      }
      if (t?.kind !== 'guard') continue;
      const verdictRule = group.find((r) => r.verdict !== null);
      const g: GuardView = {
        chain: t.chain,
        guard: t.guard,
        verdict: verdictRule?.verdict ?? null,
        logged: group.some((r) => r.logged),
        counter: group.reduce<Counts | null>((acc, r) => addCounts(acc, r.verdict ? r.counter : null), null),
      };
      n.guards.push(g);
      if (t.guard === 'isolate') n.isolated = true;
      if (t.guard === 'default' && t.chain === 'out') {
        n.mode = g.verdict === 'return' ? 'audit' : 'enforce';
        n.logging = g.logged;
      }
    }
  }
  for (const n of Object.values(view.networks)) {
    for (const s of Object.values(n.sets)) s.host = hosts.get(s.name) ?? null;
    n.guards.sort((a, b) => CHAIN_ORDER[a.chain] - CHAIN_ORDER[b.chain]);
    n.generations.sort((a, b) => a - b);
  }
  return view;
}

const CHAIN_ORDER: Record<ChainKind, number> = { out: 0, in: 1, host: 2 };
