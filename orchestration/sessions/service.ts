import type { Logger } from 'pino';
import type { Clock } from '../../core/clock.ts';
import { conflict, validationError } from '../../core/errors.ts';
import { newId } from '../../core/ids.ts';
import { checkSchema } from '../../core/validate.ts';
import type { Config } from '../../runtime/config.ts';
import type { EventSink } from '../../runtime/events.ts';
import type { Caller } from '../../runtime/sandbox/manager.ts';
import { CreateSessionSchema, UpdateSessionSchema } from './schemas.ts';
import { isOpen, type SessionState } from './states.ts';
import type { SessionConfig, SessionRecord, SessionStore } from './store.ts';
import { notFoundFor } from '../../runtime/not-found.ts';

export type EndState = Extract<SessionState, 'completed' | 'expired' | 'terminated'>;

/**
 * What a session's end does to one kind of thing it owns, in order of `phase`: 0 stops work
 * (workflow runs, chat turns), 1 stops or removes sandboxes, 2 removes records (context,
 * checkpoints, departments). Every ender must be idempotent: after a crash the ends of
 * sessions that ended are run again at start.
 */
export interface SessionEnder {
  name: string;
  phase: 0 | 1 | 2;
  end(session: SessionRecord, to: EndState): Promise<void>;
}

/** What the seed's `session_update` carries about a session. */
export interface SessionMetrics {
  activeDepartments: number;
  totalTasks: number;
}

export interface SessionServiceDeps {
  store: SessionStore;
  events: EventSink;
  clock: Clock;
  config: Pick<Config, 'sessionDefaultTimeoutMs' | 'sessionMaxTimeoutMs'>;
  logger: Logger;
  /** Departments of a session that exist (for `maxDepartments` and the metrics). */
  countDepartments(sessionId: string): number;
  /** Tasks of a session so far, running ones included (for the metrics). */
  countTasks(sessionId: string): number;
  /** Checks references in a session's config (`networkId`, `environmentId`) exist in the workspace; throws 400 naming the field. */
  checkReferences?(caller: Caller, config: Partial<SessionConfig>): void;
  /** Replaces setTimeout in tests; returns a cancel function. */
  setTimer?(fn: () => void, ms: number): () => void;
}

/**
 * How long metric changes of one session are gathered into one `session_update` (a burst of task
 * starts and ends, departments made in a loop): at most one per session per this many ms.
 */
export const METRICS_UPDATE_COALESCE_MS = 250;

/** Largest delay setTimeout takes (about 24.8 days); longer timeouts re-arm when it fires. */
const MAX_TIMER_MS = 2_147_483_647;

/**
 * Sessions: create, read, update, end. A session owns what is made in it (sandboxes,
 * departments, context windows, checkpoints, workflow runs, chat); what each owner does when the
 * session ends is registered as a {@link SessionEnder}, so this service knows no other area.
 * Expiry is one timer for the soonest timeout, re-armed after every change.
 */
export class SessionService {
  readonly #d: SessionServiceDeps;
  readonly #enders: SessionEnder[] = [];
  readonly #ending = new Map<string, Promise<SessionRecord>>();
  #cancelTimer: (() => void) | null = null;
  #timerAtMs: number | null = null;
  #closed = false;
  /** Sessions whose metrics changed and whose `session_update` is due (at most one pending each). */
  readonly #metricsDue = new Map<string, () => void>();

  constructor(deps: SessionServiceDeps) {
    this.#d = deps;
  }

  /** Adds what happens to one kind of owned thing when a session ends; several per phase run in registration order. */
  onEnd(ender: SessionEnder): void {
    this.#enders.push(ender);
    this.#enders.sort((a, b) => a.phase - b.phase);
  }

  get #log(): Logger {
    return this.#d.logger;
  }

  /** Expires what is overdue, finishes ends a crash interrupted, and arms the timer. */
  async start(): Promise<void> {
    this.#closed = false;
    for (const s of this.#d.store.ended()) {
      // Idempotent: a session whose cleanup already ran finds nothing left to do.
      await this.#runEnders(s, s.status as EndState);
    }
    await this.#expireOverdue();
    this.#arm();
  }

  close(): void {
    this.#closed = true;
    for (const cancel of this.#metricsDue.values()) cancel();
    this.#metricsDue.clear();
    this.#cancelTimer?.();
    this.#cancelTimer = null;
    this.#timerAtMs = null;
  }

  /** Waits for ends in progress (tests, shutdown). */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.#ending.values()]);
  }

  create(caller: Caller, raw: unknown): SessionRecord {
    checkSchema(CreateSessionSchema, raw);
    const cfg = this.#d.config;
    const c = raw.config ?? {};
    const timeout = c.timeout ?? cfg.sessionDefaultTimeoutMs;
    if (timeout > cfg.sessionMaxTimeoutMs) {
      throw validationError('config.timeout', `${timeout} ms exceeds the operator's limit of ${cfg.sessionMaxTimeoutMs} ms`);
    }
    const config: SessionConfig = { maxDepartments: c.maxDepartments ?? 10, timeout };
    if (c.resourceLimits) config.resourceLimits = c.resourceLimits;
    if (c.networkId) config.networkId = c.networkId;
    if (c.environmentId) config.environmentId = c.environmentId;
    if (c.metadata) config.metadata = c.metadata;
    this.#d.checkReferences?.(caller, config);
    const now = this.#d.clock.nowMs();
    const rec: SessionRecord = {
      id: newId('ses'),
      workspace: caller.workspace,
      type: raw.type ?? 'director',
      name: raw.name,
      description: raw.description ?? '',
      status: 'active',
      reason: null,
      config,
      createdBy: caller.actor ?? null,
      createdMs: now,
      updatedMs: now,
      expiresMs: now + timeout,
      endedMs: null,
      deletedMs: null,
    };
    this.#d.store.insert(rec);
    this.#event('session_created', rec, caller.actor ?? null);
    this.#arm();
    return rec;
  }

  /** A session of the caller's workspace (any state but terminated); 404 otherwise. */
  get(caller: Caller, id: string): SessionRecord {
    const rec = this.#d.store.get(caller.workspace, id);
    if (!rec) throw notFoundFor(this.#d.events, caller, 'session', id, this.#d.store.byId(id)?.workspace);
    return rec;
  }

  /**
   * A session that takes new work: `active`. Paused and ended sessions are a 409 naming the
   * state; `field` names the request field that referred to it (for the error).
   */
  requireActive(caller: Caller, id: string, field = 'sessionId'): SessionRecord {
    let rec: SessionRecord;
    try {
      rec = this.get(caller, id);
    } catch (err) {
      // A reference in a body to a session that does not exist is a bad field, not a missing route resource.
      throw validationError(field, `no session ${id} in this workspace`, { cause: (err as Error).message });
    }
    if (rec.status !== 'active') throw conflict(`session ${id} is ${rec.status}: it takes no new work`, { field, status: rec.status });
    return rec;
  }

  list(caller: Caller, f: { status?: SessionState; limit: number; offset: number }): { items: SessionRecord[]; total: number } {
    return this.#d.store.list(caller.workspace, f);
  }

  metrics(rec: SessionRecord): SessionMetrics {
    return { activeDepartments: this.#d.countDepartments(rec.id), totalTasks: this.#d.countTasks(rec.id) };
  }

  /**
   * A session's metrics changed (a department was made or deleted, a task began or ended): a
   * `session_update` with the metrics as they are then goes out {@link METRICS_UPDATE_COALESCE_MS}
   * later, one for every change in between. An ended session's last update was its end.
   */
  metricsChanged(sessionId: string): void {
    if (this.#closed || this.#metricsDue.has(sessionId)) return;
    const cancel = this.#startTimer(() => {
      this.#metricsDue.delete(sessionId);
      try {
        const rec = this.#d.store.byId(sessionId);
        if (rec && isOpen(rec.status)) this.#event('session_updated', rec, null);
      } catch (err) {
        // A store closed under a timer that close() did not clear (an embedder that skipped it).
        this.#log.warn({ err, sessionId }, 'session metrics update failed');
      }
    }, METRICS_UPDATE_COALESCE_MS);
    this.#metricsDue.set(sessionId, cancel);
  }

  /** `PUT`: name, description, status (`active`, `paused`, `completed`) and a config merged key by key. */
  async update(caller: Caller, id: string, raw: unknown): Promise<SessionRecord> {
    checkSchema(UpdateSessionSchema, raw);
    const cur = this.get(caller, id);
    if (!isOpen(cur.status)) throw conflict(`session ${id} is ${cur.status}; an ended session cannot be changed`, { status: cur.status });
    const cfg = this.#d.config;
    const next: SessionConfig = { ...cur.config };
    const c = raw.config ?? {};
    if (c.maxDepartments !== undefined) {
      const have = this.#d.countDepartments(id);
      if (c.maxDepartments < have) {
        throw conflict(`session ${id} has ${have} departments; maxDepartments cannot go below that`, { field: 'config.maxDepartments' });
      }
      next.maxDepartments = c.maxDepartments;
    }
    if (c.timeout !== undefined) {
      if (c.timeout > cfg.sessionMaxTimeoutMs) {
        throw validationError('config.timeout', `${c.timeout} ms exceeds the operator's limit of ${cfg.sessionMaxTimeoutMs} ms`);
      }
      next.timeout = c.timeout;
    }
    for (const key of ['resourceLimits', 'networkId', 'environmentId', 'metadata'] as const) {
      const v = c[key];
      if (v === null) delete next[key];
      else if (v !== undefined) (next as unknown as Record<string, unknown>)[key] = v;
    }
    this.#d.checkReferences?.(caller, next);
    const now = this.#d.clock.nowMs();
    let rec = this.#d.store.patch(id, now, {
      ...(raw.name !== undefined ? { name: raw.name } : {}),
      ...(raw.description !== undefined ? { description: raw.description } : {}),
      config: next,
      expiresMs: cur.createdMs + next.timeout,
    })!;
    if (raw.status && raw.status !== rec.status) {
      if (raw.status === 'completed') return this.end(rec, 'completed', 'completed by request', caller.actor ?? null);
      const moved = this.#d.store.transition(id, raw.status, now);
      if (!moved) throw conflict(`session ${id} cannot become ${String(raw.status)} now`, { status: rec.status });
      rec = moved;
    }
    this.#event('session_updated', rec, caller.actor ?? null);
    this.#arm();
    // A timeout lowered below the session's age ends it now.
    if (rec.expiresMs !== null && rec.expiresMs <= now) return this.end(rec, 'expired', `expired after ${rec.config.timeout} ms`, null);
    return rec;
  }

  /** `DELETE`: ends the session and removes everything it owns. */
  async delete(caller: Caller, id: string): Promise<void> {
    const rec = this.get(caller, id);
    await this.end(rec, 'terminated', 'terminated by request', caller.actor ?? null);
  }

  /**
   * Ends a session: the transition is stored first, then the enders run (work, sandboxes,
   * records). Concurrent ends of one session share one run.
   */
  end(rec: SessionRecord, to: EndState, reason: string, actor: string | null): Promise<SessionRecord> {
    const running = this.#ending.get(rec.id);
    if (running) return running;
    const p = (async () => {
      const now = this.#d.clock.nowMs();
      const patch = {
        reason,
        endedMs: rec.endedMs ?? now,
        expiresMs: null,
        ...(to === 'terminated' ? { deletedMs: now } : {}),
      };
      const ended = this.#d.store.transition(rec.id, to, now, patch);
      if (!ended) {
        const cur = this.#d.store.byId(rec.id)!;
        if (cur.status === to) return cur;
        throw conflict(`session ${rec.id} is ${cur.status}; it cannot become ${to}`, { status: cur.status });
      }
      this.#event('session_ended', ended, actor);
      await this.#runEnders(ended, to);
      this.#arm();
      return this.#d.store.byId(rec.id)!;
    })();
    this.#ending.set(rec.id, p);
    void p.finally(() => this.#ending.delete(rec.id)).catch(() => undefined);
    return p;
  }

  async #runEnders(rec: SessionRecord, to: EndState): Promise<void> {
    for (const e of this.#enders) {
      try {
        await e.end(rec, to);
      } catch (err) {
        // One owner failing must not keep the others from cleaning up; reconcile retries at the next start.
        this.#log.error({ err, sessionId: rec.id, ender: e.name }, 'session end: cleanup failed');
      }
    }
    if (to === 'terminated') this.#d.store.deleteCounters(rec.id);
  }

  #event(type: 'session_created' | 'session_updated' | 'session_ended', rec: SessionRecord, actor: string | null): void {
    this.#d.events.emit({
      type,
      severity: 'info',
      workspace: rec.workspace,
      sessionId: rec.id,
      actor,
      details: {
        status: rec.status,
        name: rec.name,
        sessionType: rec.type,
        metrics: this.metrics(rec),
        ...(rec.reason ? { reason: rec.reason } : {}),
      },
    });
  }

  async #expireOverdue(): Promise<void> {
    for (const s of this.#d.store.overdue(this.#d.clock.nowMs())) {
      await this.end(s, 'expired', `expired after ${s.config.timeout} ms`, null).catch((err: unknown) =>
        this.#log.error({ err, sessionId: s.id }, 'session expiry failed'),
      );
    }
  }

  /** One timer for the soonest timeout; re-armed after every change. */
  #arm(): void {
    if (this.#closed) return;
    const next = this.#d.store.nextExpiry();
    if (next === this.#timerAtMs) return;
    this.#cancelTimer?.();
    this.#cancelTimer = null;
    this.#timerAtMs = next;
    if (next === null) return;
    const delay = Math.min(Math.max(0, next - this.#d.clock.nowMs()), MAX_TIMER_MS);
    const fire = () => {
      this.#timerAtMs = null;
      this.#cancelTimer = null;
      void this.#expireOverdue().finally(() => this.#arm());
    };
    this.#cancelTimer = this.#startTimer(fire, delay);
  }

  /** A timer through the injected `setTimer` (tests), else an unref'd setTimeout; returns its cancel. */
  #startTimer(fn: () => void, ms: number): () => void {
    if (this.#d.setTimer) return this.#d.setTimer(fn, ms);
    const t = setTimeout(fn, ms);
    t.unref();
    return () => clearTimeout(t);
  }
}
