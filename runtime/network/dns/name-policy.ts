/**
 * Which names a network's resolver may answer. Pure: the policy is data, the decision a function
 * of it (`nameVerdict` in `policies/rule-order.ts`): the rules that can match traffic to the name,
 * in order, the first match deciding; a name no rule lets through is refused.
 */
import { nameRulesMatching, type NameRuleRef, type NetworkPolicy } from '../../../policies/network-policy.ts';
import { nameVerdict } from '../../../policies/rule-order.ts';

export type NameRefusal = 'not_allowed' | 'denied_by_rule';

/**
 * `rule`: the outbound rule that decided (null: the network has no policy, or no rule matched).
 * `matches`: every name rule (both directions) covering the name, whatever its action: the sets
 * an answer must feed, so each of those rules matches the answered addresses in its turn.
 */
export type NameDecision =
  | { allowed: true; rule: number | null; matches: NameRuleRef[] }
  | { allowed: false; reason: NameRefusal; rule: number | null; matches: NameRuleRef[] };

/** `API.Example.test.` → `api.example.test`. */
export function normalizeName(name: string): string {
  const n = name.toLowerCase();
  return n.endsWith('.') ? n.slice(0, -1) : n;
}

/** Decides whether `name` may be resolved under `policy`; a null policy (the network has none) allows every name. */
export function decideName(policy: NetworkPolicy | null, name: string): NameDecision {
  if (policy === null) return { allowed: true, rule: null, matches: [] };
  const n = normalizeName(name);
  const matches = nameRulesMatching(policy, n);
  const v = nameVerdict(policy.outbound, n, policy.order);
  return v.answer ? { allowed: true, rule: v.index, matches } : { allowed: false, reason: v.reason, rule: v.index, matches };
}
