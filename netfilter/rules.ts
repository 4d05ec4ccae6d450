/**
 * The rules of one network's three chains, in evaluation order:
 *
 * egress (`out`, forward from the bridge): isolate → same-network peers → always-denied ranges
 * → other Director networks → DNS only to the resolver → [policy: established/related → the
 * policy's rules in the order written (first match decides) → default deny] or [no policy: accept].
 * ingress (`in`, forward to the bridge): isolate → from other Director networks → [policy:
 * established/related → the rules in order → default deny] or [no policy: accept].
 * A stored policy kept `deny-first` (see `policies/rule-order.ts`) has its deny rules first.
 * host (`host`, input from the bridge): isolate → established/related → IPv6 neighbour
 * discovery → the resolver → drop everything else.
 *
 * Isolation is first, ahead of any conntrack accept, so it also cuts established connections.
 * A logged drop is two rules: `limit` stops a rule when the rate is exceeded, so it cannot share
 * a rule with the drop; the log rule (no verdict) precedes the counting, dropping one.
 * Audit mode turns a policy deny into log + counters + `return`: the packet leaves the network's
 * chain exactly where enforce mode would drop it (so counters match what enforce would do) and
 * the base chain accepts it. Guards (isolation, ranges, other networks, DNS, host) drop in both modes.
 */
import { parseCidr, parseIp, type Cidr, type IpFamily } from '../policies/address.ts';
import { remoteEnd, type NetworkPolicy, type PolicyRule, type RuleDirection } from '../policies/network-policy.ts';
import { evaluationOrder } from '../policies/rule-order.ts';
import {
  accept,
  addrField,
  addrValue,
  counter,
  ct,
  drop,
  limit,
  log,
  match,
  meta,
  namedCounter,
  payload,
  ret,
  setRef,
  type NftExpr,
} from './json.ts';
import { DEFAULT_LOG_RATE, type LogRate, type NetworkInput } from './model.ts';
import {
  CONST_SETS,
  GLOBAL_SETS,
  counterName,
  guardTag,
  logPrefix,
  nameSetName,
  ruleComment,
  ruleTag,
  type ChainKind,
  type Guard,
} from './names.ts';

export interface RuleSpec {
  chain: ChainKind;
  comment: string;
  expr: NftExpr[];
}
export interface NameSet {
  name: string;
  family: IpFamily;
  host: string;
}

type Endpoint = { cidr: Cidr } | { host: string };

function endpoint(text: string | undefined): Endpoint | undefined {
  if (text === undefined) return undefined;
  const c = parseCidr(text);
  return c ? { cidr: c } : { host: text };
}

/** The address families a rule's nft rules are split into; null = family-independent. */
function ruleFamilies(src?: Endpoint, dst?: Endpoint): (IpFamily | null)[] {
  const fixed = (src && 'cidr' in src ? src.cidr.family : undefined) ?? (dst && 'cidr' in dst ? dst.cidr.family : undefined);
  if (fixed) return [fixed];
  return (src && 'host' in src) || (dst && 'host' in dst) ? [4, 6] : [null];
}

/** The name sets a network's policy needs, one per (host pattern, family). */
export function networkNameSets(net: Pick<NetworkInput, 'short' | 'policy'>): NameSet[] {
  const sets = new Map<string, NameSet>();
  if (!net.policy) return [];
  for (const direction of ['outbound', 'inbound'] as const) {
    for (const rule of net.policy[direction]) {
      const remote = endpoint(rule[remoteEnd(direction)]);
      if (!remote || !('host' in remote)) continue;
      for (const fam of ruleFamilies(endpoint(rule.source), endpoint(rule.destination))) {
        if (fam === null) continue;
        const name = nameSetName(net.short, remote.host, fam);
        sets.set(name, { name, family: fam, host: remote.host });
      }
    }
  }
  return [...sets.values()];
}

/** Of the name sets a network has (`present`), those its policy no longer uses: left for retiring. */
export function unusedNameSets(net: Pick<NetworkInput, 'short' | 'policy'>, present: Iterable<string>): string[] {
  const used = new Set(networkNameSets(net).map((s) => s.name));
  return [...present].filter((name) => !used.has(name));
}

function protoMatches(rule: PolicyRule, fam: IpFamily | null): NftExpr[] {
  switch (rule.protocol) {
    case 'tcp':
    case 'udp': {
      if (rule.port === undefined) return [match(meta('l4proto'), rule.protocol)];
      const port = typeof rule.port === 'number' ? rule.port : { range: [rule.port.from, rule.port.to] };
      return [match(payload(rule.protocol, 'dport'), port)];
    }
    case 'icmp':
      return [match(meta('l4proto'), fam === 4 ? 'icmp' : fam === 6 ? 'ipv6-icmp' : setRef(CONST_SETS.icmpAny.name))];
    case 'all':
      return [];
  }
}

/** Compiles one network's chains (rule specs in order) and the name sets they reference. */
export function networkRules(net: NetworkInput, logRate: LogRate = DEFAULT_LOG_RATE): { rules: RuleSpec[]; sets: NameSet[] } {
  const s = net.short;
  const rules: RuleSpec[] = [];
  const ownV4 = parseCidr(net.subnetV4);
  const ownV6 = net.subnetV6 === undefined ? null : parseCidr(net.subnetV6);
  const allowed = namedCounter(counterName(s, 'allowed'));
  const denied = namedCounter(counterName(s, 'denied'));
  const policy: NetworkPolicy | null = net.policy;

  interface Verdict {
    comment?: string;
    perRuleCounter?: boolean;
  }
  const allow = (chain: ChainKind, tag: string, matches: NftExpr[], o: Verdict = {}) =>
    rules.push({
      chain,
      comment: o.comment ?? tag,
      expr: [...matches, ...(o.perRuleCounter === false ? [] : [counter()]), allowed, accept()],
    });
  const deny = (chain: ChainKind, tag: string, matches: NftExpr[], o: Verdict & { log?: boolean; audit?: boolean } = {}) => {
    const comment = o.comment ?? tag;
    if (o.log !== false)
      rules.push({ chain, comment, expr: [...matches, limit(logRate.perSecond, logRate.burst), log(logPrefix(s, tag, o.audit === true))] });
    rules.push({
      chain,
      comment,
      expr: [...matches, ...(o.perRuleCounter === false ? [] : [counter()]), denied, o.audit ? ret() : drop()],
    });
  };
  const guard = (chain: ChainKind, g: Guard) => guardTag(chain, g);
  const tcpUdp = match(meta('l4proto'), setRef(CONST_SETS.tcpUdp.name));

  for (const chain of ['out', 'in', 'host'] as const) {
    if (net.isolated) deny(chain, guard(chain, 'isolate'), []);
  }

  // Peers on the same network talk freely (one network is one trust domain; Docker's bridge
  // netfilter sends their frames through this hook too). Isolation above still cuts them.
  allow('out', guard('out', 'peer'), [match(meta('oifname'), net.bridge)]);

  // Egress guards.
  deny('out', guard('out', 'range'), [match(addrField(4, 'daddr'), setRef(GLOBAL_SETS.deniedV4))]);
  deny('out', guard('out', 'range'), [match(addrField(6, 'daddr'), setRef(GLOBAL_SETS.deniedV6))]);
  deny('out', guard('out', 'xnet'), [match(meta('oifname'), net.bridge, '!='), match(meta('oifname'), setRef(GLOBAL_SETS.bridges))]);
  if (ownV4)
    deny('out', guard('out', 'xnet'), [
      match(addrField(4, 'daddr'), addrValue(ownV4), '!='),
      match(addrField(4, 'daddr'), setRef(GLOBAL_SETS.subnetsV4)),
    ]);
  deny('out', guard('out', 'xnet'), [
    ...(ownV6 ? [match(addrField(6, 'daddr'), addrValue(ownV6), '!=')] : []),
    match(addrField(6, 'daddr'), setRef(GLOBAL_SETS.subnetsV6)),
  ]);
  const resolverMatches = (): NftExpr[] | null => {
    const a = net.dns ? parseIp(net.dns.address) : null;
    if (!a || !net.dns) return null;
    return [
      match(addrField(a.family, 'daddr'), addrValue({ ...a, len: a.family === 4 ? 32 : 128 })),
      tcpUdp,
      match(payload('th', 'dport'), net.dns.port),
    ];
  };
  const resolver = resolverMatches();
  if (resolver) allow('out', guard('out', 'resolver'), resolver);
  deny('out', guard('out', 'dns'), [tcpUdp, match(payload('th', 'dport'), setRef(CONST_SETS.dnsPorts.name))]);

  // Ingress guards.
  deny('in', guard('in', 'xnet'), [match(meta('iifname'), net.bridge, '!='), match(meta('iifname'), setRef(GLOBAL_SETS.bridges))]);
  if (ownV4)
    deny('in', guard('in', 'xnet'), [
      match(addrField(4, 'saddr'), addrValue(ownV4), '!='),
      match(addrField(4, 'saddr'), setRef(GLOBAL_SETS.subnetsV4)),
    ]);
  deny('in', guard('in', 'xnet'), [
    ...(ownV6 ? [match(addrField(6, 'saddr'), addrValue(ownV6), '!=')] : []),
    match(addrField(6, 'saddr'), setRef(GLOBAL_SETS.subnetsV6)),
  ]);

  const established = [match(ct('state'), ['established', 'related'], 'in')];
  for (const [direction, chain] of [
    ['outbound', 'out'],
    ['inbound', 'in'],
  ] as const) {
    if (!policy) {
      allow(chain, guard(chain, 'open'), []);
      continue;
    }
    const audit = policy.mode === 'audit';
    // Audit exists to be read: it logs even when the policy turns logging off.
    const logDenies = policy.logging || audit;
    allow(chain, guard(chain, 'established'), established, { perRuleCounter: policy.metrics });
    // First match wins: the rules in the order written (a kept deny-first policy: its denies first).
    for (const { rule, index } of evaluationOrder(policy[direction], policy.order)) {
      compilePolicyRule(s, direction, rule, (matches, host) => {
        const tag = ruleTag(direction, index);
        const o = { comment: ruleComment(tag, host), perRuleCounter: policy.metrics };
        if (rule.action === 'allow') allow(chain, tag, matches, o);
        else deny(chain, tag, matches, { ...o, log: logDenies, audit });
      });
    }
    deny(chain, guard(chain, 'default'), [], { log: logDenies, audit, perRuleCounter: policy.metrics });
  }

  // Sandbox to host: only replies, neighbour discovery and the resolver.
  allow('host', guard('host', 'established'), established);
  allow('host', guard('host', 'nd'), [match(payload('icmpv6', 'type'), setRef(CONST_SETS.ndTypes.name))]);
  if (resolver) allow('host', guard('host', 'resolver'), resolver);
  deny('host', guard('host', 'host'), []);

  return { rules, sets: networkNameSets(net) };
}

/** Emits one nft match list per address family the rule spans (two for a host name without a CIDR). */
function compilePolicyRule(
  short: string,
  direction: RuleDirection,
  rule: PolicyRule,
  emit: (matches: NftExpr[], host: string | undefined) => void,
): void {
  const src = endpoint(rule.source);
  const dst = endpoint(rule.destination);
  const remote = direction === 'outbound' ? dst : src;
  const host = remote && 'host' in remote ? remote.host : undefined;
  for (const fam of ruleFamilies(src, dst)) {
    const matches: NftExpr[] = [];
    for (const [ep, field] of [
      [src, 'saddr'],
      [dst, 'daddr'],
    ] as const) {
      if (!ep || fam === null) continue;
      matches.push(match(addrField(fam, field), 'cidr' in ep ? addrValue(ep.cidr) : setRef(nameSetName(short, ep.host, fam))));
    }
    matches.push(...protoMatches(rule, fam));
    emit(matches, host);
  }
}
