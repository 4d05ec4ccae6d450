/**
 * Network policies as validated, engine-neutral data. `validateNetworkPolicy` is the only way
 * in: it fills defaults, normalizes addresses and names, and refuses anything malformed,
 * over-broad or self-contradictory with a {@link PolicyValidationError} naming the field path
 * (`outbound[2].destination`).
 *
 * Semantics (the compiler implements them): deny rules win over allow rules whatever their
 * order; traffic no rule allows is denied; `audit` mode records what would be denied instead
 * of dropping it. `port` is an integer (1-65535) or an inclusive range object `{ from, to }`;
 * a range with from = to is normalized to the integer.
 */
import { Type, type Static } from 'typebox';
import { Value } from 'typebox/value';
import { DirectorError } from '../core/errors.ts';
import { fieldPath } from '../core/validate.ts';
import { checkCidr, formatCidr, type IpFamily } from './address.ts';
import { checkHostPattern, hostMatches } from './hostname.ts';

/** Most rules one direction of a policy may hold. */
export const MAX_RULES_PER_DIRECTION = 2000;

const Port = Type.Integer({ minimum: 1, maximum: 65535 });

export const PortRangeSchema = Type.Object({ from: Port, to: Port }, { additionalProperties: false, description: 'Inclusive port range.' });

export const PolicyRuleSchema = Type.Object(
  {
    action: Type.Enum(['allow', 'deny']),
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

export const NetworkPolicySchema = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$' }),
    description: Type.Optional(Type.String({ maxLength: 1000 })),
    inbound: Type.Optional(Type.Array(PolicyRuleSchema, { maxItems: MAX_RULES_PER_DIRECTION, default: [] })),
    outbound: Type.Optional(Type.Array(PolicyRuleSchema, { maxItems: MAX_RULES_PER_DIRECTION, default: [] })),
    logging: Type.Optional(Type.Boolean({ default: true, description: 'Log denied packets (rate-limited) to the kernel log.' })),
    metrics: Type.Optional(Type.Boolean({ default: true, description: 'Keep per-rule packet/byte counters.' })),
    mode: Type.Optional(
      Type.Enum(['enforce', 'audit'], {
        default: 'enforce',
        description: 'audit logs and counts what would be denied but drops nothing the policy denies.',
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

/** A validated policy: defaults filled, CIDRs canonical (`addr/len`), host names lowercase. */
export interface NetworkPolicy {
  name: string;
  description?: string;
  inbound: PolicyRule[];
  outbound: PolicyRule[];
  logging: boolean;
  metrics: boolean;
  mode: PolicyMode;
}

export class PolicyValidationError extends DirectorError {
  readonly field: string;
  readonly issue: string;
  constructor(field: string, issue: string) {
    super('VALIDATION_ERROR', `Invalid ${field}: ${issue}`, { field, issue });
    this.name = 'PolicyValidationError';
    this.field = field;
    this.issue = issue;
  }
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

/** Identity of a rule's match, for the contradiction check. */
export const matchKey = (r: PolicyRule): string => JSON.stringify([r.protocol, r.source ?? null, r.destination ?? null, r.port ?? null]);

function checkContradictions(rules: PolicyRule[], direction: RuleDirection): void {
  const seen = new Map<string, number>();
  rules.forEach((rule, i) => {
    const key = matchKey(rule);
    const j = seen.get(key);
    if (j === undefined) {
      seen.set(key, i);
      return;
    }
    const other = rules[j]!;
    if (other.action !== rule.action) {
      throw new PolicyValidationError(
        `${direction}[${i}].action`,
        `contradicts ${direction}[${j}]: same protocol, source, destination and port with action "${other.action}"`,
      );
    }
  });
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
  };
  if (p.description !== undefined) policy.description = p.description;
  checkContradictions(policy.inbound, 'inbound');
  checkContradictions(policy.outbound, 'outbound');
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
