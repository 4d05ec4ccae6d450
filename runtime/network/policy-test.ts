/**
 * The verdict service behind `POST /v1/networks/{id}/policy/test`: a query checked, the table
 * read back from the kernel, and `netfilter/verdict.ts` walking the chains in force. Nothing here
 * reads the stored policy's rules: only its order (which the resolver applies) and the network's
 * DNS setting come from the record.
 */
import { networkInterfaces } from 'node:os';
import { Type, type Static } from 'typebox';
import { parseIp } from '../../policies/address.ts';
import { checkHostPattern } from '../../policies/hostname.ts';
import { evaluateVerdict, type Verdict } from '../../netfilter/verdict.ts';
import { unavailable, validationError } from '../../core/errors.ts';
import { checkSchema } from '../../core/validate.ts';
import type { NetworkRecord, NetworkStore } from '../store/networks.ts';
import type { Firewall } from './firewall.ts';

export const PolicyTestSchema = Type.Object(
  {
    direction: Type.Enum(['outbound', 'inbound'], { description: 'outbound: from a sandbox of the network; inbound: to one.' }),
    protocol: Type.Enum(['tcp', 'udp', 'icmp']),
    address: Type.Optional(
      Type.String({ minLength: 2, maxLength: 45, description: 'The far end: destination (outbound) or source (inbound) address.' }),
    ),
    host: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 253,
        description:
          'The far end by host name. Outbound, the Director resolver decides first whether it answers the name; the address is then one in every name set whose pattern matches the name, and `address` if given (without it, IPv4).',
      }),
    ),
    port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: 'Destination port; required for tcp and udp.' })),
    sandboxAddress: Type.Optional(
      Type.String({
        minLength: 2,
        maxLength: 45,
        description: "The sandbox's own address, for rules restricted to some sandboxes (without it, such rules do not match).",
      }),
    ),
  },
  { additionalProperties: false },
);
export type PolicyTestRequest = Static<typeof PolicyTestSchema>;

/** A query that {@link evaluateVerdict} can answer, or a VALIDATION_ERROR naming the field. */
export function checkPolicyTest(raw: unknown): PolicyTestRequest {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw validationError('body', 'must be a JSON object');
  checkSchema(PolicyTestSchema, raw);
  const q = raw;
  if (q.address === undefined && q.host === undefined) throw validationError('address', 'give an address, a host name, or both');
  if (q.address !== undefined && !parseIp(q.address)) throw validationError('address', `"${q.address}" is not an IP address`);
  if (q.sandboxAddress !== undefined && !parseIp(q.sandboxAddress))
    throw validationError('sandboxAddress', `"${q.sandboxAddress}" is not an IP address`);
  if (q.host !== undefined) {
    const h = checkHostPattern(q.host);
    if ('issue' in h) throw validationError('host', h.issue);
    if (h.host.startsWith('*.')) throw validationError('host', 'must be one host name, not a wildcard');
    q.host = h.host;
  }
  if (q.protocol === 'icmp' && q.port !== undefined) throw validationError('port', 'icmp has no ports');
  if (q.protocol !== 'icmp' && q.port === undefined) throw validationError('port', `is required for ${q.protocol}`);
  return q;
}

/** The host's own addresses (not loopback): a sandbox's traffic to them meets the `host` chain. */
export function hostAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flatMap((list) => list ?? [])
    .filter((i) => !i.internal)
    .map((i) => i.address.replace(/%.*$/, ''));
}

/** Answers a checked query for `rec` from the kernel's read-back. */
export async function testPolicy(
  deps: { firewall: Firewall; store: NetworkStore },
  rec: NetworkRecord,
  q: PolicyTestRequest,
): Promise<Verdict> {
  const table = await deps.firewall.table();
  if (!table?.networks[rec.short] || !table.kernel[rec.short]) throw unavailable(`network ${rec.id} has no rules in the kernel right now`);
  return evaluateVerdict(table, rec.short, q, {
    hostAddresses: [...hostAddresses(), rec.gateway],
    routes: deps.store.active().map((r) => ({ subnet: r.subnet, bridge: r.bridge })),
    order: rec.policy?.order ?? null,
    resolver: rec.enableDns,
  });
}
