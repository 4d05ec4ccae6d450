import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Type, type Static } from 'typebox';
import type { Clock } from '../../core/clock.ts';
import { describeIssue } from '../../core/validate.ts';
import { isoTime } from '../../core/clock.ts';
import type { EventSink, SecurityEvent, Severity } from '../events.ts';

/**
 * Alert rules over the security event stream: "at least `threshold` events of `types` with the
 * same key within `windowMs`". A rule fires once per key (`security_alert`, the Director Protocol's
 * WebSocket shape in `details.alert`), stays active without re-firing while the condition
 * holds, and clears (`security_alert_cleared`) once fewer than `threshold` events remain in
 * the window. Windows live in memory: a restart starts them empty.
 *
 * `HIGH_ERROR_RATE` counts `http_error` events once any has been seen (nothing in Director emits
 * one today; the rule does not emit them itself) and until then its `fallbackTypes`:
 * `auth_failed` + `policy_violation` + `exec_denied` per minute.
 */
export const ALERTS_FILE = path.join(path.dirname(new URL(import.meta.url).pathname), '..', '..', 'policies', 'alerts.json');

export const SeveritySchema = Type.Union([
  Type.Literal('info'),
  Type.Literal('low'),
  Type.Literal('medium'),
  Type.Literal('high'),
  Type.Literal('critical'),
]);
const GroupBySchema = Type.Union(
  [Type.Literal('global'), Type.Literal('workspace'), Type.Literal('sandbox'), Type.Literal('actor'), Type.Literal('source')],
  {
    description: 'What one key is: the whole host, a workspace, a sandbox, an actor in a workspace, or a client source',
  },
);
export type GroupBy = Static<typeof GroupBySchema>;

export const AlertRuleSchema = Type.Object(
  {
    enabled: Type.Boolean(),
    severity: SeveritySchema,
    message: Type.String({ minLength: 1, maxLength: 256 }),
    threshold: Type.Integer({ minimum: 1, maximum: 100_000 }),
    windowMs: Type.Integer({ minimum: 1000, maximum: 86_400_000 }),
    types: Type.Array(Type.String({ pattern: '^[a-z][a-z0-9_]{0,63}$' }), { minItems: 1, maxItems: 32 }),
    fallbackTypes: Type.Optional(Type.Array(Type.String({ pattern: '^[a-z][a-z0-9_]{0,63}$' }), { minItems: 1, maxItems: 32 })),
    groupBy: GroupBySchema,
  },
  { additionalProperties: false },
);
export type AlertRule = Static<typeof AlertRuleSchema>;

export const AlertConfigSchema = Type.Object(
  { rules: Type.Record(Type.String({ pattern: '^[A-Z][A-Z0-9_]{2,63}$' }), AlertRuleSchema) },
  { additionalProperties: false },
);
export type AlertConfig = Static<typeof AlertConfigSchema>;

/** Reads and validates the rules file; a bad file throws, naming the place. */
export function loadAlertConfig(file = ALERTS_FILE): AlertConfig {
  const raw: unknown = JSON.parse(readFileSync(file, 'utf8'));
  const issue = describeIssue(AlertConfigSchema, raw);
  if (issue) throw new Error(`${file} is invalid ${issue}`);
  return raw as AlertConfig;
}

export interface ActiveAlert {
  /** Id of the `security_alert` event that fired it. */
  id: string;
  rule: string;
  severity: Severity;
  message: string;
  key: string;
  workspace: string | null;
  sandboxId: string | null;
  /** Events in the window now. */
  count: number;
  threshold: number;
  windowMs: number;
  firedAt: string;
  lastEventAt: string;
}

interface Window {
  rule: string;
  key: string;
  /** Event times (ms), oldest first, at most `keep` of them. */
  times: number[];
  workspace: string | null;
  sandboxId: string | null;
  active: ActiveAlert | null;
}

export interface AlertEngineDeps {
  events: EventSink;
  clock: Clock;
  rules: AlertConfig['rules'];
  /** Whether events of one of `types` already exist (HIGH_ERROR_RATE's primary types); default: none yet. */
  seenBefore?: (types: string[]) => boolean;
  /** Most keys tracked at once (inactive ones are forgotten first). Default 10 000. */
  maxKeys?: number;
}

const MAX_TIMES_PER_KEY = 10_000;
const fmtWindow = (ms: number) => (ms % 60_000 === 0 ? `${ms / 60_000}m` : `${ms / 1000}s`);

export class AlertEngine {
  readonly #deps: AlertEngineDeps;
  readonly #windows = new Map<string, Window>();
  /** Rules with fallback types that have seen their primary type (and count only it from then on). */
  readonly #primary = new Set<string>();

  constructor(deps: AlertEngineDeps) {
    this.#deps = deps;
    for (const [name, r] of Object.entries(deps.rules)) {
      if (r.fallbackTypes && deps.seenBefore?.(r.types)) this.#primary.add(name);
    }
  }

  /** Subscribes to the sink; returns the unsubscribe function. */
  attach(): () => void {
    return this.#deps.events.subscribe((e) => this.observe(e));
  }

  /** Feeds one stored event to every rule that counts its type. */
  observe(e: SecurityEvent): void {
    const now = this.#deps.clock.nowMs();
    for (const [name, rule] of Object.entries(this.#deps.rules)) {
      if (!rule.enabled) continue;
      if (rule.fallbackTypes && !this.#primary.has(name) && rule.types.includes(e.type)) {
        // The primary signal exists from now on: restart the rule's windows on it alone.
        this.#primary.add(name);
        for (const [k, w] of this.#windows) if (w.rule === name && !w.active) this.#windows.delete(k);
      }
      const types = rule.fallbackTypes && !this.#primary.has(name) ? rule.fallbackTypes : rule.types;
      if (!types.includes(e.type)) continue;
      const key = keyOf(rule.groupBy, e);
      if (key === null) continue;
      const id = `${name}|${key}`;
      let w = this.#windows.get(id);
      if (!w) {
        this.#evictIfFull();
        w = {
          rule: name,
          key,
          times: [],
          workspace: scopeOf(rule.groupBy, e),
          sandboxId: rule.groupBy === 'sandbox' ? e.sandboxId : null,
          active: null,
        };
        this.#windows.set(id, w);
      }
      w.times.push(Math.min(now, Date.parse(e.timestamp) || now));
      if (w.times.length > Math.max(rule.threshold, MAX_TIMES_PER_KEY)) w.times.shift();
      this.#prune(w, rule, now);
      if (w.active) {
        w.active.count = w.times.length;
        w.active.lastEventAt = e.timestamp;
      } else if (w.times.length >= rule.threshold) this.#fire(w, rule, now, e.timestamp);
    }
  }

  /** Expires window entries and clears alerts whose condition no longer holds. Call periodically. */
  tick(): void {
    const now = this.#deps.clock.nowMs();
    for (const [id, w] of this.#windows) {
      const rule = this.#deps.rules[w.rule];
      if (!rule) {
        this.#windows.delete(id);
        continue;
      }
      this.#prune(w, rule, now);
      if (w.active) {
        w.active.count = w.times.length;
        if (w.times.length < rule.threshold) this.#clear(w, rule, now);
      }
      if (!w.active && w.times.length === 0) this.#windows.delete(id);
    }
  }

  active(): ActiveAlert[] {
    return [...this.#windows.values()].flatMap((w) => (w.active ? [{ ...w.active }] : []));
  }

  #prune(w: Window, rule: AlertRule, now: number): void {
    const from = now - rule.windowMs;
    let i = 0;
    while (i < w.times.length && w.times[i]! <= from) i++;
    if (i) w.times.splice(0, i);
  }

  #fire(w: Window, rule: AlertRule, now: number, lastEventAt: string): void {
    const timestamp = isoTime(now);
    const e = this.#deps.events.emit({
      type: 'security_alert',
      severity: rule.severity,
      workspace: w.workspace,
      sandboxId: w.sandboxId,
      details: {
        alert: { rule: w.rule, severity: rule.severity, message: rule.message, timestamp },
        count: w.times.length,
        threshold: rule.threshold,
        window: fmtWindow(rule.windowMs),
        windowMs: rule.windowMs,
        key: w.key,
      },
    });
    w.active = {
      id: e.id,
      rule: w.rule,
      severity: rule.severity,
      message: rule.message,
      key: w.key,
      workspace: w.workspace,
      sandboxId: w.sandboxId,
      count: w.times.length,
      threshold: rule.threshold,
      windowMs: rule.windowMs,
      firedAt: timestamp,
      lastEventAt,
    };
  }

  #clear(w: Window, rule: AlertRule, now: number): void {
    const a = w.active!;
    w.active = null;
    this.#deps.events.emit({
      type: 'security_alert_cleared',
      severity: 'info',
      workspace: w.workspace,
      sandboxId: w.sandboxId,
      details: {
        alert: { rule: w.rule, severity: rule.severity, message: `${rule.message}: cleared`, timestamp: isoTime(now) },
        count: w.times.length,
        threshold: rule.threshold,
        window: fmtWindow(rule.windowMs),
        windowMs: rule.windowMs,
        key: w.key,
        firedAt: a.firedAt,
        alertId: a.id,
        activeMs: now - Date.parse(a.firedAt),
      },
    });
  }

  #evictIfFull(): void {
    const max = this.#deps.maxKeys ?? 10_000;
    if (this.#windows.size < max) return;
    for (const [id, w] of this.#windows) {
      if (!w.active) {
        this.#windows.delete(id);
        if (this.#windows.size < max) return;
      }
    }
  }
}

/** The key an event counts under for a grouping; null when the event has nothing to group by. */
function keyOf(groupBy: GroupBy, e: SecurityEvent): string | null {
  switch (groupBy) {
    case 'global':
      return '*';
    case 'workspace':
      return e.workspace ?? '-';
    case 'sandbox':
      return e.sandboxId ?? (e.networkId ? `network:${e.networkId}` : null);
    case 'actor':
      return `${e.workspace ?? '-'}|${e.actor ?? '-'}`;
    case 'source':
      return e.actor ?? (typeof e.details.source === 'string' ? e.details.source : 'unknown');
  }
}

/** The workspace an alert belongs to: the events' own for per-workspace groupings, none (host-level) otherwise. */
function scopeOf(groupBy: GroupBy, e: SecurityEvent): string | null {
  return groupBy === 'workspace' || groupBy === 'sandbox' || groupBy === 'actor' ? e.workspace : null;
}
