/**
 * What rule order means, as pure functions over one direction's rules: first match wins, in the
 * order written. The validator refuses a rule an earlier one entirely covers (it could never
 * match), the resolver answers a name only if the rules that can match its traffic let some of it
 * through, and changes that add allow rules (allow-access, audit proposals) put them where they
 * take effect.
 *
 * A stored policy from before first-match carries `order: 'deny-first'` (every deny rule ahead
 * of every allow rule, as it was enforced then) until the upgrade decides it
 * ({@link upgradeDenyFirst}).
 */
import { checkCidr, cidrContains, parseCidr, type IpFamily } from './address.ts';
import { hostMatches } from './hostname.ts';
import type { NetworkPolicy, PolicyRule, RuleDirection } from './network-policy.ts';

/**
 * How a policy's rules are evaluated. `first-match`: top to bottom, the first rule that matches
 * decides. `deny-first`: every deny rule ahead of every allow rule (each group in the order
 * written): the semantics before first-match, kept only for a stored policy the upgrade could not
 * carry over (see docs/decisions.md).
 */
export type PolicyOrder = 'first-match' | 'deny-first';

/** A rule no packet can reach: `rule` is entirely covered by the earlier rule `by` (both `outbound[i]` / `inbound[i]`). */
export interface Shadowed {
  rule: string;
  by: string;
}

/** The end of a rule on the sandbox's side (the other end, {@link remoteEnd}, may be a host name). */
export const localEnd = (d: RuleDirection): 'source' | 'destination' => (d === 'outbound' ? 'source' : 'destination');

const ref = (direction: RuleDirection, index: number): string => `${direction}[${index}]`;

interface Ports {
  from: number;
  to: number;
}
const portsOf = (r: PolicyRule): Ports =>
  r.port === undefined ? { from: 1, to: 65535 } : typeof r.port === 'number' ? { from: r.port, to: r.port } : r.port;

/** The address family a rule is confined to by a CIDR on either end, or null. */
function familyOf(r: PolicyRule): IpFamily | null {
  for (const end of [r.source, r.destination]) {
    const c = end === undefined ? null : parseCidr(end);
    if (c) return c.family;
  }
  return null;
}

/** Whether host pattern `a` matches every name pattern `b` matches. */
function patternCovers(a: string, b: string): boolean {
  if (a === b) return true;
  if (!a.startsWith('*.')) return false;
  // `*.x` matches every name strictly below x; `*.y.x` and `y.x` only names below or at y.x.
  return hostMatches(a, b.startsWith('*.') ? b.slice(2) : b);
}

/** Whether endpoint `a` (of a rule confined to nothing more) matches every address or name endpoint `b` matches. */
function endCovers(a: string | undefined, b: string | undefined, bFamily: IpFamily | null): boolean {
  if (a === undefined) return true;
  const ca = parseCidr(a);
  if (b === undefined) return ca !== null && ca.len === 0 && ca.family === bFamily;
  const cb = parseCidr(b);
  if (ca && cb) return cidrContains(ca, cb);
  // An address range never provably holds a name's addresses, nor a name an address range.
  if (ca || cb) return false;
  return patternCovers(a, b);
}

/**
 * Whether every packet `b` matches, `a` matches too (so `b`, after `a`, can never match).
 * Conservative: a pair it cannot prove (a name against an address range) is not covered.
 */
export function ruleCovers(a: PolicyRule, b: PolicyRule): boolean {
  if (a.protocol !== 'all' && a.protocol !== b.protocol) return false;
  if (a.port !== undefined) {
    if (b.port === undefined) return false;
    const pa = portsOf(a);
    const pb = portsOf(b);
    if (pb.from < pa.from || pb.to > pa.to) return false;
  }
  const fam = familyOf(b);
  return endCovers(a.source, b.source, fam) && endCovers(a.destination, b.destination, fam);
}

/** Every rule an earlier rule of the same list entirely covers, with the first such earlier rule. */
export function findShadowed(rules: readonly PolicyRule[], direction: RuleDirection): Shadowed[] {
  const out: Shadowed[] = [];
  rules.forEach((rule, i) => {
    const j = rules.slice(0, i).findIndex((earlier) => ruleCovers(earlier, rule));
    if (j >= 0) out.push({ rule: ref(direction, i), by: ref(direction, j) });
  });
  return out;
}

/** Whether some packet matches both rules (conservative: true when it cannot tell). */
export function rulesOverlap(a: PolicyRule, b: PolicyRule): boolean {
  if (a.protocol !== 'all' && b.protocol !== 'all' && a.protocol !== b.protocol) return false;
  const pa = portsOf(a);
  const pb = portsOf(b);
  if ((a.port !== undefined || b.port !== undefined) && (pa.to < pb.from || pb.to < pa.from)) return false;
  for (const key of ['source', 'destination'] as const) {
    const x = a[key] === undefined ? null : checkCidr(a[key]);
    const y = b[key] === undefined ? null : checkCidr(b[key]);
    if (x && y && 'cidr' in x && 'cidr' in y && !cidrContains(x.cidr, y.cidr) && !cidrContains(y.cidr, x.cidr)) return false;
  }
  const fa = familyOf(a);
  const fb = familyOf(b);
  return fa === null || fb === null || fa === fb;
}

/** A deny of everything (any protocol, address and port): at the end of a list, the same as the default. */
export const isCatchAllDeny = (r: PolicyRule): boolean =>
  r.action === 'deny' && r.protocol === 'all' && r.source === undefined && r.destination === undefined && r.port === undefined;

/**
 * Where rules added to a list take effect: ahead of its trailing run of catch-all denies (which
 * only restate the default), else at the end.
 */
export function insertionPoint(rules: readonly PolicyRule[]): number {
  let k = rules.length;
  while (k > 0 && isCatchAllDeny(rules[k - 1]!)) k--;
  return k;
}

/** The rules in the order they are evaluated. */
export function evaluationOrder(rules: readonly PolicyRule[], order: PolicyOrder): { rule: PolicyRule; index: number }[] {
  const all = rules.map((rule, index) => ({ rule, index }));
  if (order === 'first-match') return all;
  return [...all.filter((r) => r.rule.action === 'deny'), ...all.filter((r) => r.rule.action === 'allow')];
}

// ---- names ----

/** Traffic to one name not yet decided: tcp and udp destination ports, icmp, anything else. */
class Space {
  private readonly ports: Record<'tcp' | 'udp', Ports[]> = { tcp: [{ from: 1, to: 65535 }], udp: [{ from: 1, to: 65535 }] };
  private icmp = true;
  private other = true;

  get empty(): boolean {
    return !this.icmp && !this.other && this.ports.tcp.length === 0 && this.ports.udp.length === 0;
  }

  intersects(r: PolicyRule): boolean {
    if (r.protocol === 'icmp') return this.icmp;
    const p = portsOf(r);
    const hit = (l: Ports[]) => l.some((x) => x.from <= p.to && p.from <= x.to);
    if (r.protocol === 'all') return this.icmp || this.other || hit(this.ports.tcp) || hit(this.ports.udp);
    return hit(this.ports[r.protocol]);
  }

  remove(r: PolicyRule): void {
    if (r.protocol === 'icmp' || r.protocol === 'all') this.icmp = false;
    if (r.protocol === 'all') this.other = false;
    const p = portsOf(r);
    for (const proto of r.protocol === 'all' ? (['tcp', 'udp'] as const) : r.protocol === 'icmp' ? [] : [r.protocol]) {
      this.ports[proto] = this.ports[proto].flatMap((x) =>
        x.to < p.from || p.to < x.from
          ? [x]
          : [...(x.from < p.from ? [{ from: x.from, to: p.from - 1 }] : []), ...(p.to < x.to ? [{ from: p.to + 1, to: x.to }] : [])],
      );
    }
  }
}

/** A resolver's decision for one name: answer it or not, and the outbound rule that decided (null: no rule). */
export type NameVerdict =
  { answer: true; index: number } | { answer: false; reason: 'not_allowed' | 'denied_by_rule'; index: number | null };

/**
 * Whether the resolver answers `name` (normalized), given a policy's outbound rules.
 *
 * `first-match`: the rules that can match traffic to the name are those naming it (exactly or by
 * wildcard) and those with no destination; rules naming addresses cannot decide (the address is
 * not known until the name is answered). Walking them in order, the name is answered when an
 * allow rule still matches some protocol and port no earlier deny has taken; refused when the
 * denies take everything first, or nothing allows it. A rule restricted to some sandboxes'
 * addresses (a `source`) allows for them but denies for no one else.
 *
 * `deny-first` (a stored policy kept from before first-match): refused if any deny rule names it,
 * answered if an allow rule names it, refused otherwise.
 */
export function nameVerdict(rules: readonly PolicyRule[], name: string, order: PolicyOrder): NameVerdict {
  const names = (r: PolicyRule) => r.destination !== undefined && parseCidr(r.destination) === null && hostMatches(r.destination, name);
  if (order === 'deny-first') {
    const deny = rules.findIndex((r) => r.action === 'deny' && names(r));
    if (deny >= 0) return { answer: false, reason: 'denied_by_rule', index: deny };
    const allow = rules.findIndex((r) => r.action === 'allow' && names(r));
    return allow >= 0 ? { answer: true, index: allow } : { answer: false, reason: 'not_allowed', index: null };
  }
  const left = new Space();
  let firstDeny: number | null = null;
  for (const [index, r] of rules.entries()) {
    if (r.destination !== undefined && !names(r)) continue;
    if (!left.intersects(r)) continue;
    if (r.action === 'allow') return { answer: true, index };
    firstDeny ??= index;
    if (r.source !== undefined) continue;
    left.remove(r);
    if (left.empty) return { answer: false, reason: 'denied_by_rule', index };
  }
  return firstDeny === null
    ? { answer: false, reason: 'not_allowed', index: null }
    : { answer: false, reason: 'denied_by_rule', index: firstDeny };
}

// ---- upgrading stored policies ----

/** What the upgrade did with a stored policy from before first-match. */
export type UpgradeOutcome =
  | {
      /** Recompiled as written under first-match. */
      kind: 'first-match';
      policy: NetworkPolicy;
      /** Pairs where an allow comes before a deny it overlaps: traffic the deny used to take, the allow now lets through. */
      reordered: { allow: string; deny: string }[];
    }
  | {
      /** Refused: as written it has rules that could never match. Kept as enforced before (deny-first), flagged for review. */
      kind: 'kept';
      policy: NetworkPolicy;
      shadowed: Shadowed[];
    };

/**
 * The upgrade of a stored policy enforced deny-first: a policy whose rules all can match as
 * written is recompiled under first-match (what operators wrote; `reordered` lists where that
 * changes what passes); one with shadowed rules is refused and kept deny-first, with `review`
 * naming them, until the operator replaces it.
 */
export function upgradeDenyFirst(policy: NetworkPolicy): UpgradeOutcome {
  const shadowed = (['outbound', 'inbound'] as const).flatMap((d) => findShadowed(policy[d], d));
  if (shadowed.length > 0) {
    return {
      kind: 'kept',
      shadowed,
      policy: {
        ...policy,
        order: 'deny-first',
        review: {
          reason:
            'stored before rules were evaluated in order; as written, these rules could never match, so it is still enforced deny-first',
          shadowed,
        },
      },
    };
  }
  const reordered: { allow: string; deny: string }[] = [];
  for (const d of ['outbound', 'inbound'] as const) {
    const rules = policy[d];
    rules.forEach((allow, i) => {
      if (allow.action !== 'allow') return;
      for (let j = i + 1; j < rules.length; j++) {
        const deny = rules[j]!;
        if (deny.action === 'deny' && rulesOverlap(allow, deny)) reordered.push({ allow: ref(d, i), deny: ref(d, j) });
      }
    });
  }
  const { review: _review, ...rest } = policy;
  return { kind: 'first-match', reordered, policy: { ...rest, order: 'first-match' } };
}
