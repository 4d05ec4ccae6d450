/**
 * The retention rule of context windows, as pure functions (unit-tested without a store).
 *
 * - **Importance** of an item: `metadata.importance` (0–1) when given, else from
 *   `metadata.priority` (`low` 0.25, `medium` 0.5, `high` 0.75, `critical` 1), else 0.5.
 * - **Expiry** (`retentionPolicy.maxAge`, ms): an item older than `maxAge` disappears, unless
 *   its importance is at least `retentionPolicy.importanceThreshold` (important items are kept
 *   whatever their age). Without a threshold every item older than `maxAge` goes; without
 *   `maxAge` nothing expires.
 * - **Size** (`config.maxSize`, items): when a window holds more than `maxSize` items, the least
 *   important item goes, then among equally important ones the oldest (then the first added).
 *   The item just added is ranked like every other: if it is the least important it is the one
 *   that goes, and the add answers with it among `evicted`.
 */

export const PRIORITY_IMPORTANCE = { low: 0.25, medium: 0.5, high: 0.75, critical: 1 } as const;
export type Priority = keyof typeof PRIORITY_IMPORTANCE;
export const DEFAULT_IMPORTANCE = 0.5;

export interface RetentionPolicy {
  maxAge?: number;
  importanceThreshold?: number;
}

export interface RankedItem {
  id: string;
  /** Insertion order (a tie-breaker after age). */
  seq: number;
  importance: number;
  createdMs: number;
}

export function importanceOf(meta: { importance?: number; priority?: string } | undefined): number {
  if (meta?.importance !== undefined) return meta.importance;
  const p = meta?.priority;
  if (p !== undefined && Object.hasOwn(PRIORITY_IMPORTANCE, p)) return PRIORITY_IMPORTANCE[p as Priority];
  return DEFAULT_IMPORTANCE;
}

/** Whether `item` has expired at `nowMs` under `policy`. */
export function isExpired(item: RankedItem, policy: RetentionPolicy, nowMs: number): boolean {
  if (policy.maxAge === undefined) return false;
  if (nowMs - item.createdMs <= policy.maxAge) return false;
  return policy.importanceThreshold === undefined || item.importance < policy.importanceThreshold;
}

/**
 * The items to remove so that what stays is unexpired and at most `maxSize` items: the expired
 * ones, then the lowest ranked (least important, oldest, first added) beyond `maxSize`.
 */
export function itemsToRemove(items: readonly RankedItem[], policy: RetentionPolicy, maxSize: number, nowMs: number): string[] {
  const expired: string[] = [];
  const live: RankedItem[] = [];
  for (const it of items) {
    if (isExpired(it, policy, nowMs)) expired.push(it.id);
    else live.push(it);
  }
  const excess = live.length - maxSize;
  if (excess <= 0) return expired;
  const ranked = [...live].sort((a, b) => a.importance - b.importance || a.createdMs - b.createdMs || a.seq - b.seq);
  return [...expired, ...ranked.slice(0, excess).map((it) => it.id)];
}
