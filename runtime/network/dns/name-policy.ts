/**
 * Which names a network's resolver may answer. Pure: the policy is data, the decision a function
 * of it. Deny wins over allow whatever the rule order; a name no outbound rule allows is refused.
 */
import { nameRulesMatching, type NameRuleRef, type NetworkPolicy } from '../../../policies/network-policy.ts';

export type NameRefusal = 'not_allowed' | 'denied_by_rule';

export type NameDecision = { allowed: true; matches: NameRuleRef[] } | { allowed: false; reason: NameRefusal; matches: NameRuleRef[] };

/** `API.Example.test.` → `api.example.test`. */
export function normalizeName(name: string): string {
  const n = name.toLowerCase();
  return n.endsWith('.') ? n.slice(0, -1) : n;
}

/**
 * Decides whether `name` may be resolved under `policy`. A null policy (the network has none)
 * allows every name. Otherwise the name needs an outbound `allow` rule naming it (exactly or by
 * wildcard) and no outbound `deny` rule naming it. `matches` lists every name rule (both
 * directions) that covers the name: the sets an answer must feed.
 */
export function decideName(policy: NetworkPolicy | null, name: string): NameDecision {
  if (policy === null) return { allowed: true, matches: [] };
  const matches = nameRulesMatching(policy, normalizeName(name));
  const outbound = matches.filter((m) => m.direction === 'outbound').map((m) => policy.outbound[m.index]?.action);
  if (outbound.includes('deny')) return { allowed: false, reason: 'denied_by_rule', matches };
  if (!outbound.includes('allow')) return { allowed: false, reason: 'not_allowed', matches };
  return { allowed: true, matches };
}
