import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from 'pino';
import { loadDefaultPolicies } from '../../policies/defaults.ts';
import type { BuiltinProfile } from '../../policies/profiles.ts';
import type { EventSink } from '../events.ts';
import { AlertEngine, loadAlertConfig, type AlertConfig } from './alerts.ts';
import { Enforcer, type EnforcerDeps } from './enforce.ts';
import type { ProfileService } from './profiles.ts';
import { DEFAULT_EVENT_RETENTION_DAYS, startRetentionJob, type RetentionJob } from './retention.ts';
import { EventStream } from './stream.ts';

export interface SecurityOptions {
  /** Days events are kept; default `config.eventRetentionDays` when the config has it, else 30. */
  retentionDays?: number;
  retentionIntervalMs?: number;
  /** How often alert windows are re-evaluated (so alerts clear as time passes). Default 5 s. */
  alertTickMs?: number;
  alertRules?: AlertConfig['rules'];
  builtinProfiles?: readonly BuiltinProfile[];
}

export interface SecurityDeps extends Omit<EnforcerDeps, 'networkPolicies'> {
  logger: Logger;
  registry: Registry;
  /** `config.eventRetentionDays`. */
  retentionDays: number | undefined;
}

/** The security layer of one runtime: profiles (and their ceiling at create), enforcement, the event stream's queries, alerts, retention. */
export interface Security {
  profiles: ProfileService;
  enforcer: Enforcer;
  /** Reading the one event stream: pages, summaries, exports. */
  stream: EventStream;
  alerts: AlertEngine;
  /** Subscribes the alert engine to the event stream, starts its tick and the retention job. */
  start(): void;
  /** Undoes `start()`. */
  close(): void;
}

/**
 * Builds the security layer over the runtime's parts. The profile service is built before it
 * (the sandbox manager takes it for profile ceilings at create); the event sink's drop counters
 * are exported at once; nothing runs until `start()`.
 */
export function createSecurity(deps: SecurityDeps, opts: SecurityOptions = {}): Security {
  const { db, clock, events } = deps;
  const enforcer = new Enforcer({ ...deps, networkPolicies: loadDefaultPolicies() });
  const seen = db.sql.prepare('SELECT 1 AS x FROM events WHERE type = ? LIMIT 1');
  const alerts = new AlertEngine({
    events,
    clock,
    rules: opts.alertRules ?? loadAlertConfig().rules,
    seenBefore: (types) => types.some((t) => seen.get(t) !== undefined),
  });
  registerSinkMetrics(deps.registry, events);
  let running: { detach: () => void; tick: NodeJS.Timeout; retention: RetentionJob } | null = null;
  return {
    profiles: deps.profiles,
    enforcer,
    stream: new EventStream(db, clock),
    alerts,
    start() {
      if (running) return;
      const detach = alerts.attach();
      const tick = setInterval(() => alerts.tick(), opts.alertTickMs ?? 5000);
      tick.unref();
      const retention = startRetentionJob({
        db,
        clock,
        retentionDays: opts.retentionDays ?? deps.retentionDays ?? DEFAULT_EVENT_RETENTION_DAYS,
        logger: deps.logger.child({ component: 'event-retention' }),
        ...(opts.retentionIntervalMs ? { intervalMs: opts.retentionIntervalMs } : {}),
      });
      running = { detach, tick, retention };
    },
    close() {
      if (!running) return;
      running.detach();
      clearInterval(running.tick);
      running.retention.stop();
      running = null;
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
