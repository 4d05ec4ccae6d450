/**
 * The example policies shipped in `policies/defaults/*.json`, validated on load: a file that
 * does not validate is a bug in the release, so loading throws.
 */
import path from 'node:path';
import { Type } from 'typebox';
import { loadJsonDir } from '../core/validate.ts';
import { validateNetworkPolicy, type NetworkPolicy } from './network-policy.ts';

export const DEFAULTS_DIR = path.join(path.dirname(new URL(import.meta.url).pathname), 'defaults');

/** Shipped policies by name, in file-name order. */
export function loadDefaultPolicies(dir = DEFAULTS_DIR): Map<string, NetworkPolicy> {
  const out = new Map<string, NetworkPolicy>();
  // Checked by validateNetworkPolicy itself, which also normalizes.
  for (const { value } of loadJsonDir(dir, Type.Unknown(), 'default policy')) {
    const policy = validateNetworkPolicy(value);
    out.set(policy.name, policy);
  }
  return out;
}
