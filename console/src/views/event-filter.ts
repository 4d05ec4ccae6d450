import { SEVERITIES, type SecurityEvent, type Severity } from '../api/types.ts';

/** What the events view shows: applied to live events here and sent to the export as its query. */
export interface EventFilter {
  /** Events at or above this severity. */
  minSeverity: Severity;
  /** Exact event type (`egress_denied` ...); empty for every type. */
  type: string;
  sandboxId: string;
  networkId: string;
}

export const NO_FILTER: EventFilter = { minSeverity: 'info', type: '', sandboxId: '', networkId: '' };

export const severityRank = (s: string): number => SEVERITIES.indexOf(s as Severity);

export function matches(e: SecurityEvent, f: EventFilter): boolean {
  if (severityRank(e.severity) < severityRank(f.minSeverity)) return false;
  if (f.type && e.type !== f.type.trim()) return false;
  if (f.sandboxId && e.sandboxId !== f.sandboxId.trim()) return false;
  if (f.networkId && e.networkId !== f.networkId.trim()) return false;
  return true;
}

/** The same filter as the query of `GET /v1/security/events` or `/export`. */
export function filterQuery(f: EventFilter): URLSearchParams {
  const q = new URLSearchParams();
  if (f.minSeverity !== 'info') q.set('minSeverity', f.minSeverity);
  if (f.type.trim()) q.set('type', f.type.trim());
  if (f.sandboxId.trim()) q.set('sandboxId', f.sandboxId.trim());
  if (f.networkId.trim()) q.set('networkId', f.networkId.trim());
  return q;
}

/**
 * Merges events into a list kept newest first, without duplicates (by `seq`), at most `max` long.
 * History fetched over REST and live events from the hub can overlap; the seq decides.
 */
export function mergeEvents(list: readonly SecurityEvent[], incoming: readonly SecurityEvent[], max: number): SecurityEvent[] {
  if (incoming.length === 0) return list as SecurityEvent[];
  const seen = new Set(list.map((e) => e.seq));
  const fresh = incoming.filter((e) => !seen.has(e.seq) && (seen.add(e.seq), true));
  if (fresh.length === 0) return list as SecurityEvent[];
  return [...fresh, ...list].sort((a, b) => b.seq - a.seq).slice(0, max);
}
