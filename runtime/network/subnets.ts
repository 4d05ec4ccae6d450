import { checkCidr, cidrContains, formatCidr, formatIp, parseCidr, type Cidr } from '../../policies/address.ts';
import { validationError } from '../../core/errors.ts';

const overlaps = (a: Cidr, b: Cidr) => cidrContains(a, b) || cidrContains(b, a);

/** First aligned /`len` block of `pool` that overlaps none of `taken`; null when the pool is full. */
export function allocateSubnet(pool: string, len: number, taken: readonly string[]): string | null {
  const p = parseCidr(pool);
  if (!p || p.family !== 4) throw validationError('DIRECTOR_NETWORK_POOL', `${pool} is not an IPv4 CIDR`);
  if (len < p.len || len > 30) return null;
  const used = taken.map((t) => parseCidr(t)).filter((c): c is Cidr => c !== null);
  const step = 1n << BigInt(32 - len);
  const end = p.value + (1n << BigInt(32 - p.len));
  for (let v = p.value; v < end; v += step) {
    const c: Cidr = { family: 4, value: v, len };
    if (!used.some((u) => overlaps(u, c))) return formatCidr(c);
  }
  return null;
}

/** Validates a requested subnet/gateway pair; returns canonical forms. The gateway defaults to the first host. */
export function checkSubnet(subnet: string, gateway: string | undefined, taken: readonly string[]): { subnet: string; gateway: string } {
  const r = checkCidr(subnet);
  if ('issue' in r) throw validationError('subnet', r.issue, { value: subnet });
  const c = r.cidr;
  if (c.family !== 4) throw validationError('subnet', 'must be an IPv4 CIDR');
  if (c.len > 29 || c.len < 8) throw validationError('subnet', 'prefix length must be between /8 and /29');
  for (const [range, why] of [
    ['127.0.0.0/8', 'loopback'],
    ['169.254.0.0/16', 'link-local'],
    ['224.0.0.0/4', 'multicast'],
    ['0.0.0.0/8', 'this-network'],
  ] as const) {
    if (overlaps(c, parseCidr(range)!)) throw validationError('subnet', `overlaps the ${why} range ${range}`);
  }
  for (const t of taken) {
    const o = parseCidr(t);
    if (o && overlaps(o, c)) throw validationError('subnet', `overlaps ${t}, the subnet of another network on this engine`);
  }
  const first = formatIp({ family: 4, value: c.value + 1n });
  const gw = gateway ?? first;
  const g = checkCidr(`${gw}/32`);
  if ('issue' in g || !cidrContains(c, g.cidr) || g.cidr.value === c.value || g.cidr.value === c.value + (1n << BigInt(32 - c.len)) - 1n) {
    throw validationError('gateway', `must be a host address inside ${formatCidr(c)}`, { value: gw });
  }
  return { subnet: formatCidr(c), gateway: gw };
}
