import type { Logger } from 'pino';
import type { Clock } from '../../core/clock.ts';
import type { Db } from '../../core/db.ts';

/**
 * Event retention: events older than the retention period are deleted, in small batches so
 * writers (which share the store's one write lock) never wait long. Deleting never disturbs
 * cursor paging: seq is AUTOINCREMENT, so a deleted seq is never handed out again.
 */
export const DEFAULT_EVENT_RETENTION_DAYS = 30;
/** The variable the lead wires into the config schema (`eventRetentionDays`). */
export const EVENT_RETENTION_ENV = 'DIRECTOR_EVENT_RETENTION_DAYS';
const DAY_MS = 86_400_000;

/** Deletes events with a timestamp before `nowMs - retentionMs`; returns how many. */
export function purgeExpiredEvents(db: Db, nowMs: number, retentionMs: number, batch = 5000): number {
  const cutoff = nowMs - retentionMs;
  const del = db.sql.prepare('DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE ts_ms < ? ORDER BY seq LIMIT ?)');
  let total = 0;
  for (;;) {
    const n = Number(del.run(cutoff, batch).changes);
    total += n;
    if (n < batch) return total;
  }
}

export interface RetentionJobOptions {
  db: Db;
  clock: Clock;
  /** Days an event is kept; default {@link DEFAULT_EVENT_RETENTION_DAYS}. */
  retentionDays?: number;
  /** How often the purge runs; default one hour. The first run is right away. */
  intervalMs?: number;
  logger?: Logger;
}

export interface RetentionJob {
  /** Runs a purge now; returns how many events it deleted. */
  runNow(): number;
  stop(): void;
}

/** Starts the periodic purge (timer unref'd: it never keeps the process alive). */
export function startRetentionJob(o: RetentionJobOptions): RetentionJob {
  const retentionMs = (o.retentionDays ?? DEFAULT_EVENT_RETENTION_DAYS) * DAY_MS;
  const runNow = () => purgeExpiredEvents(o.db, o.clock.nowMs(), retentionMs);
  const safeRun = () => {
    try {
      const n = runNow();
      if (n) o.logger?.info({ deleted: n, retentionDays: retentionMs / DAY_MS }, 'expired security events deleted');
    } catch (err) {
      o.logger?.warn({ err }, 'security event retention failed; will retry');
    }
  };
  safeRun();
  const timer = setInterval(safeRun, o.intervalMs ?? 3_600_000);
  timer.unref();
  return { runNow, stop: () => clearInterval(timer) };
}
