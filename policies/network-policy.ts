/**
 * Network policies as validated, engine-neutral data. `validateNetworkPolicy` is the only way
 * in: it fills defaults, normalizes addresses and names, and refuses anything malformed,
 * over-broad or unreachable with a {@link PolicyValidationError} naming the field path
 * (`outbound[2].destination`).
 *
 * Semantics (the compiler implements them): each direction's rules are evaluated top to bottom
 * and the first rule that matches decides; traffic no rule matches is denied (so a trailing
 * `deny all` is the same as the default). A rule an earlier rule entirely covers could never
 * match and is refused, naming both (`outbound[2] is shadowed by outbound[0]`). `audit` mode
 * records what would be denied instead of dropping it. `port` is an integer (1-65535) or an
 * inclusive range object `{ from, to }`; a range with from = to is normalized to the integer.
 * Director's own guards (always-denied ranges, other networks, the host, DNS) come before any
 * rule, and no rule can reopen them.
 */
import { Type, type Static } from 'typebox';
import { Value } from 'typebox/value';
import { DirectorError } from '../core/errors.ts';
import { fieldPath } from '../core/validate.ts';
import { checkCidr, formatCidr, type IpFamily } from './address.ts';
import { checkHostPattern, hostMatches } from './hostname.ts';
import { findShadowed, type PolicyOrder, type Shadowed } from './rule-order.ts';

/** Most rules one direction of a policy may hold. */
export const MAX_RULES_PER_DIRECTION = 2000;

const Port = Type.Integer({ minimum: 1, maximum: 65535 });

export const PortRangeSchema = Type.Object({ from: Port, to: Port }, { additionalProperties: false, description: 'Inclusive port range.' });

export const PolicyRuleSchema = Type.Object(
  {
    action: Type.Enum(['allow', 'deny'], {
      description: 'What the rule does with the traffic it matches, if no earlier rule of the same direction matched it first.',
    }),
    protocol: Type.Enum(['tcp', 'udp', 'icmp', 'all']),
    source: Type.Optional(
      Type.String({ minLength: 1, maxLength: 300, description: 'CIDR or address; for inbound rules also a host name.' }),
    ),
    destination: Type.Optional(
      Type.String({ minLength: 1, maxLength: 300, description: 'CIDR or address; for outbound rules also a host name or *.wildcard.' }),
    ),
    port: Type.Optional(
      Type.Union([Port, PortRangeSchema], { description: 'Destination port or inclusive {from, to} range; tcp and udp only.' }),
    ),
    description: Type.Optional(Type.String({ maxLength: 500 })),
  },
  { additionalProperties: false },
);

const RULES_DESCRIPTION = (d: string): string =>
  `${d === 'outbound' ? 'Traffic from the sandboxes' : 'Traffic to the sandboxes'}, evaluated top to bottom: the first rule that matches decides, and what no rule matches is denied (a trailing deny-all is the default restated). A rule an earlier rule entirely covers (its protocol, addresses or names and ports a subset) could never match and is refused with a 400 naming both. Director's guards come first and no rule reopens them: cloud metadata, loopback, link-local, the host, other Director networks, DNS to any resolver but Director's.`;

export const NetworkPolicySchema = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$' }),
    description: Type.Optional(Type.String({ maxLength: 1000 })),
    inbound: Type.Optional(
      Type.Array(PolicyRuleSchema, {
        maxItems: MAX_RULES_PER_DIRECTION,
        default: [],
        description: RULES_DESCRIPTION('inbound'),
      }),
    ),
    outbound: Type.Optional(
      Type.Array(PolicyRuleSchema, {
        maxItems: MAX_RULES_PER_DIRECTION,
        default: [],
        description: RULES_DESCRIPTION('outbound'),
      }),
    ),
    logging: Type.Optional(Type.Boolean({ default: true, description: 'Log denied packets (rate-limited) to the kernel log.' })),
    metrics: Type.Optional(Type.Boolean({ default: true, description: 'Keep per-rule packet/byte counters.' })),
    mode: Type.Optional(
      Type.Enum(['enforce', 'audit'], {
        default: 'enforce',
        description: 'audit logs and counts what would be denied but drops nothing the policy denies.',
      }),
    ),
    order: Type.Optional(
      Type.Literal('first-match', {
        description:
          'How the rules are evaluated: in the order written, the first match deciding. The only order a policy is applied with; a stored policy from before first-match may read back `deny-first` (kept for review, see `review`).',
      }),
    ),
  },
  { additionalProperties: false },
);

/** The request shape (defaults not yet applied). */
export type NetworkPolicyInput = Static<typeof NetworkPolicySchema>;
export type PolicyRule = Static<typeof PolicyRuleSchema>;
export type PortSpec = NonNullable<PolicyRule['port']>;
export type PolicyMode = 'enforce' | 'audit';
export type RuleDirection = 'inbound' | 'outbound';

/** Why a stored policy is enforced as it was before first-match (see `upgradeDenyFirst`). */
export interface PolicyReview {
  reason: string;
  /** Its rules that, evaluated in order as written, could never match. */
  shadowed: Shadowed[];
}

/** A validated policy: defaults filled, CIDRs canonical (`addr/len`), host names lowercase. */
export interface NetworkPolicy {
  name: string;
  description?: string;
  inbound: PolicyRule[];
  outbound: PolicyRule[];
  logging: boolean;
  metrics: boolean;
  mode: PolicyMode;
  /** How the rules are evaluated: always `first-match` for a policy applied now (see {@link PolicyOrder}). */
  order: PolicyOrder;
  /** Present on a stored policy the upgrade to first-match refused: still enforced deny-first until replaced. */
  review?: PolicyReview;
}

/** The request body that {@link validateNetworkPolicy} turns back into `policy` (to change it and validate again). */
export function policyBody(policy: NetworkPolicy): NetworkPolicyInput {
  const { order: _order, review: _review, ...body } = policy;
  return body;
}

export class PolicyValidationError extends DirectorError {
  readonly field: string;
  readonly issue: string;
  constructor(field: string, issue: string, opts: { message?: string; details?: Record<string, unknown> } = {}) {
    super('VALIDATION_ERROR', opts.message ?? `Invalid ${field}: ${issue}`, { field, issue, ...opts.details });
    this.name = 'PolicyValidationError';
    this.field = field;
    this.issue = issue;
  }
}

/** The 400 for a rule that can never match: `outbound[2] is shadowed by outbound[0]`. */
export function shadowedError(s: Shadowed): PolicyValidationError {
  return new PolicyValidationError(
    s.rule,
    `is shadowed by ${s.by}: every packet it matches, ${s.by} matches first, so it can never match`,
    {
      message: `${s.rule} is shadowed by ${s.by}: every packet it matches, ${s.by} matches first (rules are evaluated in order, the first match decides), so it can never match; remove it or move it above ${s.by}`,
      details: { shadowedBy: s.by },
    },
  );
}

/** The end of a rule that is outside the sandbox, the only one that may be a host name. */
export const remoteEnd = (direction: RuleDirection): 'source' | 'destination' => (direction === 'outbound' ? 'destination' : 'source');

/** `/outbound/2/destination` → `outbound[2].destination`. */

interface SchemaError {
  keyword: string;
  instancePath: string;
  params: Record<string, unknown>;
  message: string;
}

function schemaIssue(errors: SchemaError[]): PolicyValidationError {
  const first = errors[0]!;
  const path = fieldPath(first.instancePath);
  const join = (a: string, b: string) => (a ? `${a}.${b}` : b);
  if (/(^|\.)port$|\.port\./.test(path)) {
    return new PolicyValidationError(
      path.replace(/\.(from|to)$/, ''),
      'must be an integer 1-65535 or an inclusive range {"from": 1-65535, "to": 1-65535}',
    );
  }
  // An unknown property shows up as a `false` schema at its own path, or as additionalProperties.
  if (first.keyword === 'boolean') return new PolicyValidationError(path, 'is not a known property');
  if (first.keyword === 'additionalProperties') {
    const extra = (first.params.additionalProperties as string[] | undefined)?.[0] ?? '?';
    return new PolicyValidationError(join(path, extra), 'is not a known property');
  }
  if (first.keyword === 'required') {
    const missing = (first.params.requiredProperties as string[] | undefined)?.[0] ?? '?';
    return new PolicyValidationError(join(path, missing), 'is required');
  }
  if (path === 'order') {
    return new PolicyValidationError(
      'order',
      'must be "first-match": rules are evaluated in the order written ("deny-first" is only kept on policies stored before first-match)',
    );
  }
  if (first.keyword === 'enum') {
    const allowed = (first.params.allowedValues as unknown[] | undefined) ?? [];
    return new PolicyValidationError(path || '(policy)', `must be one of ${allowed.map((v) => JSON.stringify(v)).join(', ')}`);
  }
  return new PolicyValidationError(path || '(policy)', first.message);
}

interface Endpoint {
  text: string;
  family: IpFamily | null;
}

function checkEndpoint(rule: PolicyRule, key: 'source' | 'destination', direction: RuleDirection, at: string): Endpoint | undefined {
  const raw = rule[key];
  if (raw === undefined) return undefined;
  const field = `${at}.${key}`;
  // Anything with ':' or '/' or made only of digits and dots is meant as an address.
  if (/[:/]/.test(raw) || /^[0-9.]+$/.test(raw)) {
    const r = checkCidr(raw);
    if ('issue' in r) throw new PolicyValidationError(field, r.issue);
    return { text: formatCidr(r.cidr), family: r.cidr.family };
  }
  if (key !== remoteEnd(direction)) {
    throw new PolicyValidationError(
      field,
      `must be a CIDR: host names are only allowed in the remote end (${direction} rules: ${remoteEnd(direction)})`,
    );
  }
  const h = checkHostPattern(raw);
  if ('issue' in h) throw new PolicyValidationError(field, h.issue);
  return { text: h.host, family: null };
}

function normalizeRule(rule: PolicyRule, direction: RuleDirection, at: string): PolicyRule {
  const out: PolicyRule = { action: rule.action, protocol: rule.protocol };
  const src = checkEndpoint(rule, 'source', direction, at);
  const dst = checkEndpoint(rule, 'destination', direction, at);
  if (src?.family && dst?.family && src.family !== dst.family) {
    throw new PolicyValidationError(
      `${at}.destination`,
      `is IPv${dst.family} but source is IPv${src.family}; one rule matches one address family`,
    );
  }
  if (src) out.source = src.text;
  if (dst) out.destination = dst.text;
  if (rule.port !== undefined) {
    if (rule.protocol !== 'tcp' && rule.protocol !== 'udp') {
      throw new PolicyValidationError(`${at}.port`, `a port needs protocol "tcp" or "udp" (protocol is "${rule.protocol}")`);
    }
    const p = rule.port;
    if (typeof p === 'number') out.port = p;
    else if (p.from > p.to) throw new PolicyValidationError(`${at}.port`, `range from (${p.from}) is greater than to (${p.to})`);
    else out.port = p.from === p.to ? p.from : { from: p.from, to: p.to };
  }
  if (rule.description !== undefined) out.description = rule.description;
  return out;
}

/**
 * Validates a policy document and returns it normalized, or throws a
 * {@link PolicyValidationError} whose `field` names the offending path.
 */
export function validateNetworkPolicy(input: unknown): NetworkPolicy {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new PolicyValidationError('(policy)', 'must be a JSON object');
  }
  const withDefaults = Value.Default(NetworkPolicySchema, Value.Clone(input));
  const errors = [...Value.Errors(NetworkPolicySchema, withDefaults)] as SchemaError[];
  if (errors.length > 0) throw schemaIssue(errors);
  const p = withDefaults as NetworkPolicyInput;
  const policy: NetworkPolicy = {
    name: p.name,
    inbound: (p.inbound ?? []).map((r, i) => normalizeRule(r, 'inbound', `inbound[${i}]`)),
    outbound: (p.outbound ?? []).map((r, i) => normalizeRule(r, 'outbound', `outbound[${i}]`)),
    logging: p.logging ?? true,
    metrics: p.metrics ?? true,
    mode: p.mode ?? 'enforce',
    order: 'first-match',
  };
  if (p.description !== undefined) policy.description = p.description;
  for (const direction of ['outbound', 'inbound'] as const) {
    const [first] = findShadowed(policy[direction], direction);
    if (first) throw shadowedError(first);
  }
  return policy;
}

/** Whether a normalized endpoint is a host-name pattern rather than a CIDR. */
export const isHostEndpoint = (endpoint: string | undefined): endpoint is string => endpoint !== undefined && !endpoint.includes('/');

export interface NameRuleRef {
  direction: RuleDirection;
  index: number;
  host: string;
}

/** Every rule whose remote end is a host name, in policy order. */
export function nameRules(policy: NetworkPolicy): NameRuleRef[] {
  const out: NameRuleRef[] = [];
  for (const direction of ['outbound', 'inbound'] as const) {
    policy[direction].forEach((rule, index) => {
      const host = rule[remoteEnd(direction)];
      if (isHostEndpoint(host)) out.push({ direction, index, host });
    });
  }
  return out;
}

/** The name rules a resolver answer for `queriedName` must feed (wildcards included). */
export const nameRulesMatching = (policy: NetworkPolicy, queriedName: string): NameRuleRef[] =>
  nameRules(policy).filter((r) => hostMatches(r.host, queriedName));
