/**
 * What a policy change changes, for `network policy apply` (kubectl-style): rules compared as
 * readable lines (`outbound allow tcp to 203.0.113.0/24 port 443`) after the normalization the
 * server applies (defaults filled, CIDRs canonical, host names lower-case). Rules are a sequence
 * per direction: the first rule that matches decides, so a rule that moved is a change (shown
 * removed and added) even when no rule was added or removed.
 */
import type { NetworkPolicy, PolicyInForce, PolicyRule, RuleInForce } from '../sdk/index.ts';

export interface PolicyState {
  name: string | null;
  /** null: no policy (everything not always-denied is allowed). */
  mode: 'enforce' | 'audit' | null;
  logging: boolean | null;
  rules: string[];
}

export const NO_POLICY: PolicyState = { name: null, mode: null, logging: null, rules: [] };

function ipv4(text: string): number[] | null {
  const parts = text.split('.');
  if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) return null;
  return parts.map(Number);
}

/** An address or CIDR in the server's canonical form (`10.0.0.5` → `10.0.0.5/32`, host bits cleared); names lower-cased. */
export function canonicalEnd(value: string): string {
  const v = value.trim();
  const [addr = '', len] = v.split('/');
  const four = ipv4(addr);
  if (four) {
    const bits = len === undefined ? 32 : Number(len);
    if (!Number.isInteger(bits) || bits < 0 || bits > 32) return v;
    const n = ((four[0]! << 24) | (four[1]! << 16) | (four[2]! << 8) | four[3]!) >>> 0;
    const masked = bits === 0 ? 0 : (n & (0xffffffff << (32 - bits))) >>> 0;
    return `${[24, 16, 8, 0].map((s) => (masked >>> s) & 255).join('.')}/${bits}`;
  }
  if (addr.includes(':')) {
    try {
      // The URL parser writes IPv6 addresses in their canonical (RFC 5952) form.
      const host = new URL(`http://[${addr}]/`).hostname.slice(1, -1);
      return `${host}/${len ?? 128}`;
    } catch {
      return v;
    }
  }
  return v.toLowerCase();
}

const portText = (p: PolicyRule['port'] | RuleInForce['port']): string | null => {
  if (p === undefined || p === null) return null;
  if (typeof p === 'number') return String(p);
  return p.from === p.to ? String(p.from) : `${p.from}-${p.to}`;
};

/** One rule as a line: direction, action, protocol, ends and port. */
export function ruleLine(
  direction: 'inbound' | 'outbound',
  r: { action: string; protocol: string; source?: string | undefined; destination?: string | undefined; port?: PolicyRule['port'] },
): string {
  const parts = [direction, r.action, r.protocol];
  if (r.source) parts.push('from', canonicalEnd(r.source));
  if (r.destination) parts.push('to', canonicalEnd(r.destination));
  const port = portText(r.port);
  if (port) parts.push('port', port);
  return parts.join(' ');
}

/** A policy as written in a file, with the server's defaults. */
export function stateOfPolicy(p: NetworkPolicy): PolicyState {
  return {
    name: p.name,
    mode: p.mode ?? 'enforce',
    // Audit mode always logs what it would drop, whatever the file says.
    logging: p.mode === 'audit' ? true : (p.logging ?? true),
    rules: [...(p.outbound ?? []).map((r) => ruleLine('outbound', r)), ...(p.inbound ?? []).map((r) => ruleLine('inbound', r))],
  };
}

/** The policy in force as the kernel has it (`policyInForce` of a network). */
export function stateInForce(view: PolicyInForce | null, name: string | null): PolicyState {
  if (!view || view.mode === null) return NO_POLICY;
  const line = (direction: 'inbound' | 'outbound') => (r: RuleInForce) =>
    ruleLine(direction, { action: r.action, protocol: r.protocol, source: r.source, destination: r.destination, port: r.port });
  return {
    name,
    mode: view.mode,
    logging: view.logging,
    rules: [...view.outbound.map(line('outbound')), ...view.inbound.map(line('inbound'))],
  };
}

export interface PolicyDiff {
  changed: boolean;
  /** `~ mode: enforce -> audit`, `- outbound ...`, `+ outbound ...` */
  lines: string[];
  unchanged: number;
}

/**
 * Rule lines removed and added, and the settings that changed. Rules kept are the longest run
 * common to both in the same order (directions never mix: every line starts with its own), so
 * a rule that moved is removed from its old place and added at its new one.
 */
export function diffPolicy(before: PolicyState, after: PolicyState): PolicyDiff {
  const lines: string[] = [];
  const text = (v: string | boolean | null) => (v === null ? '(none)' : String(v));
  const setting = (label: string, a: string | boolean | null, b: string | boolean | null) => {
    if (a !== b) lines.push(`~ ${label}: ${text(a)} -> ${text(b)}`);
  };
  setting('policy', before.name, after.name);
  setting('mode', before.mode, after.mode);
  setting('logging', before.logging, after.logging);
  const kept = commonInOrder(before.rules, after.rules);
  const removed = before.rules.filter((_, i) => !kept.before.has(i));
  const added = after.rules.filter((_, i) => !kept.after.has(i));
  lines.push(...removed.sort().map((r) => `- ${r}`), ...added.sort().map((r) => `+ ${r}`));
  return { changed: lines.length > 0, lines, unchanged: kept.before.size };
}

/** The positions of a longest common subsequence of `a` and `b` (policies hold at most a few hundred rules). */
function commonInOrder(a: string[], b: string[]): { before: Set<number>; after: Set<number> } {
  // len[i][j]: the longest common subsequence of a[i..] and b[j..].
  const len = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      len[i]![j] = a[i] === b[j] ? len[i + 1]![j + 1]! + 1 : Math.max(len[i + 1]![j]!, len[i]![j + 1]!);
    }
  }
  const before = new Set<number>();
  const after = new Set<number>();
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    if (a[i] === b[j]) {
      before.add(i++);
      after.add(j++);
    } else if (len[i + 1]![j]! >= len[i]![j + 1]!) i++;
    else j++;
  }
  return { before, after };
}
