/**
 * allow-access (`POST /v1/networks/{id}/allow-access`): destinations allowed on top of the policy
 * in force. Pure: the policy in, the policy to apply out.
 *
 * Rules are evaluated in order and the first match decides, so the new allow rules go where they
 * take effect: ahead of the policy's trailing catch-all denies (the default restated), else at
 * the end. A destination an earlier allow rule already covers needs no rule; one an earlier deny
 * rule covers cannot be allowed this way (400 naming that rule: the operator decides whether to
 * change it).
 */
import { Type, type Static } from 'typebox';
import { policyBody, validateNetworkPolicy, type NetworkPolicy, type PolicyRule } from '../../policies/network-policy.ts';
import { insertionPoint, ruleCovers } from '../../policies/rule-order.ts';
import { DirectorError, validationError } from '../../core/errors.ts';

export const AllowAccessSchema = Type.Object(
  {
    destinations: Type.Array(
      Type.Object(
        {
          host: Type.String({ minLength: 1, maxLength: 253, description: 'Host name, IP address or CIDR' }),
          port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
          protocol: Type.Optional(Type.Union([Type.Literal('tcp'), Type.Literal('udp')])),
          description: Type.Optional(Type.String({ maxLength: 256 })),
        },
        { additionalProperties: false },
      ),
      { minItems: 1, maxItems: 256 },
    ),
  },
  { additionalProperties: false },
);
export type AllowAccessRequest = Static<typeof AllowAccessSchema>;

/** A policy error about the requested destinations, named as the caller sent them (`destinations[1].host`). */
function destinationError(err: unknown): unknown {
  if (!(err instanceof DirectorError) || err.code !== 'VALIDATION_ERROR') return err;
  const rename = (field: string): string =>
    field.replace(
      /^outbound\[(\d+)\](\.destination)?/,
      (_all, n: string, dest: string | undefined) => `destinations[${n}]${dest ? '.host' : ''}`,
    );
  const field = rename(String(err.details?.field ?? ''));
  const shadowedBy = typeof err.details?.shadowedBy === 'string' ? err.details.shadowedBy : null;
  const issue = String(err.details?.issue ?? err.message);
  if (shadowedBy === null) return validationError(field, issue);
  const by = rename(shadowedBy);
  return validationError(field, issue.replaceAll(shadowedBy, by), { shadowedBy: by });
}

/** The policy with the requested destinations allowed, or null when every one is allowed already. */
export function accessPolicy(current: NetworkPolicy | null, req: AllowAccessRequest): NetworkPolicy | null {
  const base: NetworkPolicy = current ?? {
    name: 'allow-access',
    description: 'Created by allow-access: default deny plus the allowed destinations',
    inbound: [],
    outbound: [],
    logging: true,
    metrics: true,
    mode: 'enforce',
    order: 'first-match',
  };
  const requested: PolicyRule[] = req.destinations.map((d) => ({
    action: 'allow',
    protocol: d.protocol ?? 'tcp',
    destination:
      d.host.includes('/') || /^[\d.]+$|:/.test(d.host)
        ? d.host.includes('/')
          ? d.host
          : d.host.includes(':')
            ? `${d.host}/128`
            : `${d.host}/32`
        : d.host,
    ...(d.port === undefined ? {} : { port: d.port }),
    ...(d.description ? { description: d.description } : {}),
  }));
  let normalized: PolicyRule[];
  try {
    normalized = validateNetworkPolicy({ name: 'destinations', outbound: requested }).outbound;
  } catch (err) {
    throw destinationError(err);
  }
  const at = insertionPoint(base.outbound);
  const before = base.outbound.slice(0, at);
  const added: PolicyRule[] = [];
  normalized.forEach((rule, i) => {
    const j = before.findIndex((r) => ruleCovers(r, rule));
    if (j >= 0 && before[j]!.action === 'allow') return;
    if (j >= 0)
      throw validationError(`destinations[${i}]`, `is denied by outbound[${j}], which comes first (first match wins)`, {
        shadowedBy: `outbound[${j}]`,
      });
    added.push(rule);
  });
  if (added.length === 0) return null;
  // None of them is shadowed (checked above), and none can shadow the trailing catch-all denies.
  return validateNetworkPolicy({ ...policyBody(base), outbound: [...before, ...added, ...base.outbound.slice(at)] });
}
