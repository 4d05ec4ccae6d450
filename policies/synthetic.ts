/**
 * Synthetic policies of a chosen size, for benchmarks and load tests. Addresses come from the
 * benchmarking range 198.18.0.0/15 (RFC 2544) and names from the reserved `.test` TLD, so a
 * compiled policy never points at anyone's real hosts.
 */
import { validateNetworkPolicy, type NetworkPolicy, type PolicyRule } from './network-policy.ts';

export interface SyntheticOptions {
  /** Every n-th rule is a deny (default 5). */
  denyEvery?: number;
  /** Every n-th rule names a host instead of a CIDR (default 10; 0 for none). */
  nameEvery?: number;
  mode?: 'enforce' | 'audit';
}

/** A valid policy with `ruleCount` outbound rules (at most 2000), no two alike. */
export function syntheticPolicy(ruleCount: number, opts: SyntheticOptions = {}): NetworkPolicy {
  const denyEvery = opts.denyEvery ?? 5;
  const nameEvery = opts.nameEvery ?? 10;
  const outbound: PolicyRule[] = [];
  for (let i = 0; i < ruleCount; i++) {
    const byName = nameEvery > 0 && i % nameEvery === nameEvery - 1;
    const destination = byName ? `h${i}.bench.test` : `198.${18 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`;
    const rule: PolicyRule = {
      action: denyEvery > 0 && i % denyEvery === 0 ? 'deny' : 'allow',
      protocol: i % 3 === 2 ? 'udp' : 'tcp',
      destination,
    };
    rule.port = i % 4 === 3 ? { from: 8000, to: 8000 + (i % 100) + 1 } : 1 + (i % 65535);
    outbound.push(rule);
  }
  return validateNetworkPolicy({ name: `synthetic-${ruleCount}`, outbound, mode: opts.mode ?? 'enforce' });
}
