/**
 * Audit mode's proposal: from the policy in force and the traffic it would have denied, the
 * minimal allow policy that permits that traffic. Pure: the caller gathers observations (deny
 * records, resolver answers) and decides what to do with the result.
 *
 * Rules are evaluated in order and the first match decides (see `policies/network-policy.ts`).
 * Traffic whose first matching rule is a deny is not given an allow rule (the deny would still
 * decide it); it is reported in `blockedByDeny` instead. The allow rules for the rest go where
 * they take effect: ahead of the policy's trailing catch-all denies, which only restate the
 * default. A policy kept deny-first from before first-match is first rewritten as the ordered
 * policy that means the same: its deny rules ahead of its allow rules, without the rules that
 * could never match (`removed`).
 */
import { formatCidr, parseCidr, parseIp, cidrContains, type IpAddress } from '../../policies/address.ts';
import { checkHostPattern, hostMatches } from '../../policies/hostname.ts';
import {
  isHostEndpoint,
  policyBody,
  remoteEnd,
  validateNetworkPolicy,
  type NetworkPolicy,
  type PolicyRule,
  type RuleDirection,
} from '../../policies/network-policy.ts';
import { evaluationOrder, insertionPoint, localEnd, ruleCovers, type Shadowed } from '../../policies/rule-order.ts';
import { validationError } from '../../core/errors.ts';

export type ObservedProto = 'tcp' | 'udp' | 'icmp';

/** Traffic seen (in audit mode: would have been denied), aggregated by the caller. */
export interface Observation {
  direction: RuleDirection;
  /** `icmp` covers ICMPv6 too, as a policy's `icmp` does. */
  proto: ObservedProto;
  /** The address outside the sandbox: destination of outbound, source of inbound traffic. */
  remote: string;
  /** Destination port (tcp/udp); null for icmp. */
  port: number | null;
  /** Host names that resolved to `remote`, when known (from the sandbox's DNS answers). */
  names?: string[];
  /** The sandbox's own address, when known; see {@link ruleMatches}. */
  local?: string;
  /** How many times it was seen. */
  count: number;
}

export interface BlockedObservation {
  observation: Observation;
  /** The deny rule that decides it (the first rule that matches it, in the observation's direction). */
  index: number;
  rule: PolicyRule;
}

export interface Proposal {
  /** The policy in force plus `added`, validated (rules in order, first match wins). */
  policy: NetworkPolicy;
  /** The allow rules added, outbound first, in the order they appear. */
  added: PolicyRule[];
  /** Traffic a deny rule decides first: no allow is proposed for it (the deny would still decide it). */
  blockedByDeny: BlockedObservation[];
  /** Rules of a policy kept deny-first that could never match, left out of the proposal (indexes of the policy in force). */
  removed: Shadowed[];
  /** Readable unified-style diff (`+ ` added, `- ` removed, `  ` unchanged, `! ` decided by a deny rule). */
  diff: string;
}

function endMatches(endpoint: string, addr: IpAddress | null, names: readonly string[]): boolean {
  if (isHostEndpoint(endpoint)) return names.some((n) => hostMatches(endpoint, n));
  const cidr = parseCidr(endpoint);
  return cidr !== null && addr !== null && cidrContains(cidr, { ...addr, len: addr.family === 4 ? 32 : 128 });
}

/**
 * Whether `rule` (from the policy's list for `obs.direction`) matches the observed traffic,
 * whatever its action. A host-name remote end matches when one of `obs.names` matches it (an
 * address with no known name matches no name rule). A rule restricting the sandbox's own end
 * matches an observation without `local` only if `assumeLocal`.
 */
export function ruleMatches(rule: PolicyRule, obs: Observation, assumeLocal = false): boolean {
  if (rule.protocol !== 'all' && rule.protocol !== obs.proto) return false;
  if (rule.port !== undefined) {
    if (obs.port === null) return false;
    const { from, to } = typeof rule.port === 'number' ? { from: rule.port, to: rule.port } : rule.port;
    if (obs.port < from || obs.port > to) return false;
  }
  const remote = rule[remoteEnd(obs.direction)];
  if (remote !== undefined && !endMatches(remote, parseIp(obs.remote), obs.names ?? [])) return false;
  const local = rule[localEnd(obs.direction)];
  if (local !== undefined) {
    if (obs.local === undefined) return assumeLocal;
    if (!endMatches(local, parseIp(obs.local), [])) return false;
  }
  return true;
}

/** Whether `rule` allows the traffic for sure (an unknown sandbox address does not satisfy a restricted local end). */
export const ruleAllows = (rule: PolicyRule, obs: Observation): boolean => rule.action === 'allow' && ruleMatches(rule, obs, false);

/** Whether `rule` denies, or may deny (unknown sandbox address), the traffic. */
export const ruleDenies = (rule: PolicyRule, obs: Observation): boolean => rule.action === 'deny' && ruleMatches(rule, obs, true);

/**
 * The rule among `rules` that decides the traffic, first match wins: an allow that surely
 * matches, or a deny that may. -1: none does.
 */
export const decidingRule = (rules: readonly PolicyRule[], obs: Observation): number =>
  rules.findIndex((r) => ruleAllows(r, obs) || ruleDenies(r, obs));

/**
 * A policy kept deny-first, as the first-match policy that means the same: deny rules ahead of
 * allow rules (each in its order), without those that could never match in that order.
 */
function asFirstMatch(p: NetworkPolicy): { policy: NetworkPolicy; removed: Shadowed[] } {
  const removed: Shadowed[] = [];
  const body = policyBody(p);
  for (const d of DIRECTIONS) {
    const kept: { rule: PolicyRule; index: number }[] = [];
    for (const o of evaluationOrder(p[d], p.order)) {
      const by = kept.find((k) => ruleCovers(k.rule, o.rule));
      if (by) removed.push({ rule: `${d}[${o.index}]`, by: `${d}[${by.index}]` });
      else kept.push(o);
    }
    body[d] = kept.map((k) => k.rule);
  }
  return { policy: validateNetworkPolicy(body), removed };
}

/** `outbound[3]` → 3. */
const indexOf = (ref: string): number => Number(/\[(\d+)\]$/.exec(ref)?.[1]);

interface Remote {
  key: string;
  text: string;
  name: string | null;
  addr: IpAddress | null;
}

interface Group {
  direction: RuleDirection;
  proto: ObservedProto;
  remote: Remote;
  ports: Map<number | null, number>;
}

const DIRECTIONS: readonly RuleDirection[] = ['outbound', 'inbound'];
const PROTOS: readonly ObservedProto[] = ['tcp', 'udp', 'icmp'];

function checkObservation(o: Observation, i: number): { addr: IpAddress; port: number | null } {
  const addr = parseIp(o.remote);
  if (!addr) throw validationError(`observations[${i}].remote`, `"${o.remote}" is not an IP address`);
  if (o.proto === 'icmp') return { addr, port: null };
  if (o.port !== null && !(Number.isInteger(o.port) && o.port >= 1 && o.port <= 65535)) {
    throw validationError(`observations[${i}].port`, 'must be an integer 1-65535 or null');
  }
  return { addr, port: o.port };
}

/** The remote ends an allow rule for `o` should name: its valid host names, else the address. */
function remotesOf(o: Observation, addr: IpAddress): Remote[] {
  const names = new Set<string>();
  for (const n of o.names ?? []) {
    const r = checkHostPattern(n);
    if ('host' in r && !r.host.startsWith('*.')) names.add(r.host);
  }
  if (names.size > 0) return [...names].map((name) => ({ key: `n:${name}`, text: name, name, addr: null }));
  const text = formatCidr({ ...addr, len: addr.family === 4 ? 32 : 128 });
  return [{ key: `a:${text}`, text, name: null, addr }];
}

function compareRemotes(a: Remote, b: Remote): number {
  if (a.name !== null || b.name !== null) {
    if (a.name === null) return 1;
    if (b.name === null) return -1;
    return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
  }
  const x = a.addr!;
  const y = b.addr!;
  if (x.family !== y.family) return x.family - y.family;
  return x.value < y.value ? -1 : x.value > y.value ? 1 : 0;
}

/** Ports as single ports and inclusive ranges: a run of ≥ 3 consecutive ports becomes a range. */
function collapsePorts(ports: Map<number | null, number>): { port: PolicyRule['port']; count: number }[] {
  const total = [...ports.values()].reduce((a, b) => a + b, 0);
  if (ports.has(null)) return [{ port: undefined, count: total }];
  const sorted = ([...ports.keys()] as number[]).sort((a, b) => a - b);
  const out: { port: PolicyRule['port']; count: number }[] = [];
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    const run = sorted.slice(i, j + 1);
    const count = (p: number) => ports.get(p) ?? 0;
    if (run.length >= 3) out.push({ port: { from: run[0]!, to: run[run.length - 1]! }, count: run.reduce((a, p) => a + count(p), 0) });
    else for (const p of run) out.push({ port: p, count: count(p) });
    i = j + 1;
  }
  return out;
}

function portText(port: PolicyRule['port']): string {
  if (port === undefined) return '';
  return typeof port === 'number' ? String(port) : `${port.from}-${port.to}`;
}

/** `allow tcp → api.example.test:443`, `allow udp ← 203.0.113.5/32 port 53`. */
export function formatRule(rule: PolicyRule, direction: RuleDirection): string {
  const remote = rule[remoteEnd(direction)];
  const local = rule[localEnd(direction)];
  const port = portText(rule.port);
  let text: string;
  if (direction === 'outbound') {
    const r = remote ?? '*';
    text = `${rule.action} ${rule.protocol} → ${port && r.includes(':') ? `[${r}]` : r}${port ? `:${port}` : ''}`;
    if (local !== undefined) text += ` from ${local}`;
  } else {
    text = `${rule.action} ${rule.protocol} ← ${remote ?? '*'}${port ? ` port ${port}` : ''}`;
    if (local !== undefined) text += ` to ${local}`;
  }
  return rule.description ? `${text}  # ${rule.description}` : text;
}

function formatObservation(o: Observation): string {
  const port = o.port === null || o.proto === 'icmp' ? '' : String(o.port);
  const remote = port && o.remote.includes(':') ? `[${o.remote}]` : o.remote;
  const arrow = o.direction === 'outbound' ? '→' : '←';
  const names = o.names?.length ? ` (${o.names.join(', ')})` : '';
  return `${o.direction} ${o.proto} ${arrow} ${remote}${port ? `:${port}` : ''}${names}`;
}

export interface ProposeOptions {
  /** Name of the proposed policy when there is none in force; default `proposed`. */
  name?: string;
}

/**
 * The minimal allow policy that would have permitted `observations`: the rules in force, then
 * one allow rule per (direction, protocol, remote, port) not already allowed, naming the host
 * when known (one rule per name and port), else the single address (/32, /128); three or more
 * consecutive ports of one remote become a range. Deterministic: outbound before inbound, names
 * (alphabetical) before addresses (numeric), then tcp, udp, icmp, then port.
 *
 * Throws a VALIDATION_ERROR for a malformed observation, and the validator's error if the
 * result breaks a policy limit (more than 2000 rules in one direction).
 */
export function proposePolicy(current: NetworkPolicy | null, observations: readonly Observation[], opts: ProposeOptions = {}): Proposal {
  const converted = current?.order === 'deny-first' ? asFirstMatch(current) : null;
  const base = converted?.policy ?? current ?? validateNetworkPolicy({ name: opts.name ?? 'proposed' });
  const at = { outbound: insertionPoint(base.outbound), inbound: insertionPoint(base.inbound) };
  const blockedByDeny: BlockedObservation[] = [];
  const groups = new Map<string, Group>();
  observations.forEach((o, i) => {
    const { addr, port } = checkObservation(o, i);
    const obs: Observation = { ...o, port };
    // The trailing catch-all denies are the default restated: what only they match gets a proposal.
    const rules = base[o.direction].slice(0, at[o.direction]);
    const index = decidingRule(rules, obs);
    if (index >= 0 && rules[index]!.action === 'deny') {
      blockedByDeny.push({ observation: o, index, rule: rules[index]! });
      return;
    }
    if (index >= 0) return;
    for (const remote of remotesOf(o, addr)) {
      const key = `${o.direction}|${o.proto}|${remote.key}`;
      let g = groups.get(key);
      if (!g) groups.set(key, (g = { direction: o.direction, proto: o.proto, remote, ports: new Map() }));
      g.ports.set(port, (g.ports.get(port) ?? 0) + o.count);
    }
  });

  const ordered = [...groups.values()].sort(
    (a, b) =>
      DIRECTIONS.indexOf(a.direction) - DIRECTIONS.indexOf(b.direction) ||
      compareRemotes(a.remote, b.remote) ||
      PROTOS.indexOf(a.proto) - PROTOS.indexOf(b.proto),
  );
  const addedBy: Record<RuleDirection, { rule: PolicyRule; count: number }[]> = { outbound: [], inbound: [] };
  for (const g of ordered) {
    for (const { port, count } of collapsePorts(g.ports)) {
      const rule: PolicyRule = { action: 'allow', protocol: g.proto, [remoteEnd(g.direction)]: g.remote.text };
      if (port !== undefined) rule.port = port;
      addedBy[g.direction].push({ rule, count });
    }
  }

  const inserted = (d: RuleDirection) => [...base[d].slice(0, at[d]), ...addedBy[d].map((a) => a.rule), ...base[d].slice(at[d])];
  const policy = validateNetworkPolicy({ ...policyBody(base), outbound: inserted('outbound'), inbound: inserted('inbound') });
  const added = [...addedBy.outbound, ...addedBy.inbound].map((a) => a.rule);
  const removed = converted?.removed ?? [];
  return { policy, added, blockedByDeny, removed, diff: renderDiff(current, base, at, addedBy, blockedByDeny, removed) };
}

function renderDiff(
  current: NetworkPolicy | null,
  base: NetworkPolicy,
  at: Record<RuleDirection, number>,
  addedBy: Record<RuleDirection, { rule: PolicyRule; count: number }[]>,
  blocked: BlockedObservation[],
  removed: Shadowed[],
): string {
  const n = addedBy.outbound.length + addedBy.inbound.length;
  const lines = [
    current
      ? `--- policy "${current.name}" (in force, mode ${current.mode}${current.order === 'deny-first' ? ', kept deny-first: deny rules first' : ''})`
      : '--- (no policy in force)',
    `+++ policy "${base.name}" (proposed: ${n} allow rule${n === 1 ? '' : 's'} added${removed.length ? `, ${removed.length} that could never match removed` : ''}; first match wins)`,
  ];
  for (const d of DIRECTIONS) {
    const gone = removed.filter((r) => r.rule.startsWith(`${d}[`));
    if (base[d].length === 0 && addedBy[d].length === 0 && gone.length === 0) continue;
    lines.push(`@@ ${d} @@`);
    for (const r of gone) {
      lines.push(`- ${formatRule(current![d][indexOf(r.rule)]!, d)}  (never matched: shadowed by ${r.by})`);
    }
    for (const r of base[d].slice(0, at[d])) lines.push(`  ${formatRule(r, d)}`);
    for (const a of addedBy[d]) lines.push(`+ ${formatRule(a.rule, d)}  (seen ${a.count}×)`);
    for (const r of base[d].slice(at[d])) lines.push(`  ${formatRule(r, d)}`);
  }
  if (blocked.length > 0) {
    lines.push('@@ decided by a deny rule that comes first (first match wins: change or move that rule to permit) @@');
    for (const b of blocked) {
      lines.push(
        `! ${formatObservation(b.observation)}  (seen ${b.observation.count}×)  by ${b.observation.direction}[${b.index}] ${formatRule(b.rule, b.observation.direction)}`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}
