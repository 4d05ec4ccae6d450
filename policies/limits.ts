/**
 * Resource-limit ceilings of the orchestration levels (session, department, environment):
 * numbers a sandbox created at that level can never exceed. Pure functions; the create flow
 * applies them after the operator's limits and the security profiles.
 *
 * Semantics, for each limit (`cpu` cores, `memory`/`disk` MiB, `pids`, `maxDuration` ms):
 * - a request asking for more than a ceiling allows is refused, naming the **outermost** level
 *   that refuses (raising an inner level would not help while an outer one still says no);
 * - a request silent about a limit gets the default, lowered to the tightest ceiling.
 * A level's own limits must narrow the level around it ({@link widerLimit}), so a department can
 * never be created wider than its session.
 */

export const LIMIT_KEYS = ['cpu', 'memory', 'disk', 'pids', 'maxDuration'] as const;
export type LimitKey = (typeof LIMIT_KEYS)[number];
export type Limits = Record<LimitKey, number>;
export type PartialLimits = Partial<Limits>;

export type LimitLevel = 'operator' | 'workspace' | 'session' | 'department' | 'environment';

export interface LimitCeiling {
  level: LimitLevel;
  /** The record that sets it (`ses_…`, `dep_…`, `env_…`; `operator` for the operator's own limits). */
  id: string;
  limits: PartialLimits;
}

export interface LimitDenial {
  field: string;
  issue: string;
  deniedBy: { level: LimitLevel; id: string };
}

const UNIT: Record<LimitKey, string> = { cpu: ' cores', memory: ' MiB', disk: ' MiB', pids: '', maxDuration: ' ms' };

/** `department dep_x allows memory ≤ 512 MiB` */
export const allowsText = (c: LimitCeiling, key: LimitKey): string => `${c.level} ${c.id} allows ${key} ≤ ${c.limits[key]}${UNIT[key]}`;

/**
 * Applies `ceilings` (outermost first) to the limits a request asked for (`asked`, undefined where
 * it set none) and the limits it would otherwise get (`resolved`: defaults and explicit values
 * after the operator's checks). Returns the limits in force or the refusal.
 */
export function applyLimitCeilings(
  asked: PartialLimits,
  resolved: Limits,
  ceilings: readonly LimitCeiling[],
): { ok: true; limits: Limits } | { ok: false; denial: LimitDenial } {
  const limits = { ...resolved };
  for (const key of LIMIT_KEYS) {
    const value = asked[key];
    for (const c of ceilings) {
      const cap = c.limits[key];
      if (cap === undefined) continue;
      if (value !== undefined && value > cap) {
        return {
          ok: false,
          denial: {
            field: `resourceLimits.${key}`,
            issue: `${value}${UNIT[key]} is more than ${allowsText(c, key)}`,
            deniedBy: { level: c.level, id: c.id },
          },
        };
      }
      if (value === undefined) limits[key] = Math.min(limits[key], cap);
    }
  }
  return { ok: true, limits };
}

/** The first limit where `inner` allows more than `outer`, as a message naming both; null when it only narrows. */
export function widerLimit(inner: PartialLimits, outer: LimitCeiling): { field: string; issue: string } | null {
  for (const key of LIMIT_KEYS) {
    const v = inner[key];
    const cap = outer.limits[key];
    if (v !== undefined && cap !== undefined && v > cap) {
      return { field: key, issue: `${v}${UNIT[key]} is more than ${allowsText(outer, key)}` };
    }
  }
  return null;
}
