import { Counter, Gauge, type Registry } from 'prom-client';
import { loadDefaultPolicies } from '../../policies/defaults.ts';
import { loadBuiltinProfiles, type BuiltinProfile } from '../../policies/profiles.ts';
import type { EventSink } from '../events.ts';
import type { Runtime } from '../runtime.ts';
import { AlertEngine, loadAlertConfig, type AlertConfig } from './alerts.ts';
import { Enforcer } from './enforce.ts';
import { ProfileService } from './profiles.ts';
import { DEFAULT_EVENT_RETENTION_DAYS, startRetentionJob, type RetentionJob } from './retention.ts';

export interface SecurityOptions {
  /** Days events are kept; default `config.eventRetentionDays` when the config has it, else 30. */
  retentionDays?: number;
  retentionIntervalMs?: number;
  /** How often alert windows are re-evaluated (so alerts clear as time passes). Default 5 s. */
  alertTickMs?: number;
  alertRules?: AlertConfig['rules'];
  builtinProfiles?: readonly BuiltinProfile[];
}

/** The security layer of one runtime: profiles (and their ceiling at create), enforcement, alerts, retention. */
export interface Security {
  profiles: ProfileService;
  enforcer: Enforcer;
  alerts: AlertEngine;
  retention: RetentionJob;
  close(): void;
}

/**
 * Builds the security layer over a runtime and hooks it in: the sandbox manager asks it for
 * profile ceilings at create, the alert engine subscribes to the event stream, the retention
 * job starts, and the event sink's drop counters are exported. `close()` undoes all of it.
 */
export function installSecurity(rt: Runtime, opts: SecurityOptions = {}): Security {
  const profiles = new ProfileService(rt.db, rt.clock, rt.events, opts.builtinProfiles ?? loadBuiltinProfiles());
  rt.sandboxes.profiles = profiles;
  const enforcer = new Enforcer({ rt, profiles, networkPolicies: loadDefaultPolicies() });
  const seen = rt.db.sql.prepare('SELECT 1 AS x FROM events WHERE type = ? LIMIT 1');
  const alerts = new AlertEngine({
    events: rt.events,
    clock: rt.clock,
    rules: opts.alertRules ?? loadAlertConfig().rules,
    seenBefore: (types) => types.some((t) => seen.get(t) !== undefined),
  });
  const detach = alerts.attach();
  const tick = setInterval(() => alerts.tick(), opts.alertTickMs ?? 5000);
  tick.unref();
  const configured = rt.config.eventRetentionDays;
  const retention = startRetentionJob({
    db: rt.db,
    clock: rt.clock,
    retentionDays: opts.retentionDays ?? configured ?? DEFAULT_EVENT_RETENTION_DAYS,
    logger: rt.logger.child({ component: 'event-retention' }),
    ...(opts.retentionIntervalMs ? { intervalMs: opts.retentionIntervalMs } : {}),
  });
  registerSinkMetrics(rt.metrics.registry, rt.events);
  return {
    profiles,
    enforcer,
    alerts,
    retention,
    close() {
      detach();
      clearInterval(tick);
      retention.stop();
      if (rt.sandboxes.profiles === profiles) rt.sandboxes.profiles = null;
    },
  };
}

/** `director_events_dropped_total{reason}` and `director_events_pending`, read from the sink at scrape time. */
export function registerSinkMetrics(registry: Registry, sink: EventSink): void {
  if (registry.getSingleMetric('director_events_dropped_total')) return;
  new Counter({
    name: 'director_events_dropped_total',
    help: 'Security events lost because the store refused them (buffer_full: the retry buffer overflowed; unstorable; store_closed).',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [reason, n] of Object.entries(sink.health().dropped)) this.inc({ reason }, n);
    },
  });
  new Gauge({
    name: 'director_events_pending',
    help: 'Security events waiting in the retry buffer for the store to accept them.',
    registers: [registry],
    collect() {
      this.set(sink.health().pending);
    },
  });
}
