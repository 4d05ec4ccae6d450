/**
 * The example policies shipped in `policies/defaults/*.json`, validated on load: a file that
 * does not validate is a bug in the release, so loading throws.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { validateNetworkPolicy, type NetworkPolicy } from './network-policy.ts';

export const DEFAULTS_DIR = path.join(path.dirname(new URL(import.meta.url).pathname), 'defaults');

/** Shipped policies by name, in file-name order. */
export function loadDefaultPolicies(dir = DEFAULTS_DIR): Map<string, NetworkPolicy> {
  const out = new Map<string, NetworkPolicy>();
  for (const file of readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()) {
    const policy = validateNetworkPolicy(JSON.parse(readFileSync(path.join(dir, file), 'utf8')));
    out.set(policy.name, policy);
  }
  return out;
}
