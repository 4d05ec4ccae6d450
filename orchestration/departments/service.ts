import type { Clock } from '../../core/clock.ts';
import { conflict, validationError } from '../../core/errors.ts';
import { newId } from '../../core/ids.ts';
import { checkSchema } from '../../core/validate.ts';
import { widerLimit, type LimitCeiling, type PartialLimits } from '../../policies/limits.ts';
import type { Config } from '../../runtime/config.ts';
import type { EventSink } from '../../runtime/events.ts';
import type { Caller } from '../../runtime/sandbox/manager.ts';
import { PolicyViolationError } from '../../runtime/sandbox/spec.ts';
import type { SessionService } from '../sessions/service.ts';
import type { SessionRecord } from '../sessions/store.ts';
import type { TaskTracker } from '../tasks.ts';
import { CreateDepartmentSchema } from './schemas.ts';
import type { DepartmentRecord, DepartmentStore } from './store.ts';
import { notFoundFor } from '../../runtime/not-found.ts';

/** What the runtime measures of a department's sandboxes (see the composition root). */
export interface DepartmentUsage {
  sandboxesRunning: number;
  sandboxesTotal: number;
  /** Sum over running sandboxes, percent of one core. */
  cpuPercent: number;
  memoryBytes: number;
}

export interface DepartmentServiceDeps {
  store: DepartmentStore;
  sessions: SessionService;
  tasks: TaskTracker;
  events: EventSink;
  clock: Clock;
  config: Pick<Config, 'maxCpu' | 'maxMemoryMb' | 'maxDiskMb' | 'maxPids' | 'maxDurationMs'>;
  /** Measures the department's sandboxes (engine stats of the running ones). */
  usage(dep: DepartmentRecord): Promise<DepartmentUsage>;
}

/**
 * Departments: named groups of work inside a session, each with a resource ceiling that its
 * sandboxes can never exceed and a bound on concurrent workflow runs. Their ceiling must narrow
 * the session's and the operator's (refused with 400 naming the level, recorded as a
 * `policy_violation`), and a session has at most `config.maxDepartments` of them.
 */
export class DepartmentService {
  readonly #d: DepartmentServiceDeps;
  constructor(deps: DepartmentServiceDeps) {
    this.#d = deps;
  }

  /** The operator's limits as the outermost ceiling. */
  #operator(): LimitCeiling {
    const c = this.#d.config;
    return {
      level: 'operator',
      id: 'operator',
      limits: { cpu: c.maxCpu, memory: c.maxMemoryMb, disk: c.maxDiskMb, pids: c.maxPids, maxDuration: c.maxDurationMs },
    };
  }

  create(caller: Caller, raw: unknown): DepartmentRecord {
    checkSchema(CreateDepartmentSchema, raw);
    const session = this.#d.sessions.requireActive(caller, raw.sessionId);
    const limits = raw.config?.resourceLimits;
    if (limits) {
      for (const outer of [this.#operator(), ...sessionCeiling(session)]) {
        const wider = widerLimit(limits, outer);
        if (wider) {
          this.#d.events.emit({
            type: 'policy_violation',
            severity: 'medium',
            workspace: caller.workspace,
            sessionId: session.id,
            actor: caller.actor ?? null,
            details: {
              field: `config.resourceLimits.${wider.field}`,
              issue: wider.issue,
              level: outer.level,
              deniedBy: { level: outer.level, id: outer.id },
            },
          });
          throw new PolicyViolationError(`config.resourceLimits.${wider.field}`, wider.issue, {
            deniedBy: { level: outer.level, id: outer.id },
          });
        }
      }
    }
    const now = this.#d.clock.nowMs();
    const rec: DepartmentRecord = {
      id: newId('dep'),
      workspace: caller.workspace,
      sessionId: session.id,
      name: raw.name,
      domain: raw.domain,
      capabilities: raw.capabilities ?? [],
      config: { maxConcurrentTasks: raw.config?.maxConcurrentTasks ?? 5, ...(limits ? { resourceLimits: limits } : {}) },
      createdMs: now,
      updatedMs: now,
      deletedMs: null,
    };
    if (!this.#d.store.insertBounded(rec, session.config.maxDepartments)) {
      throw conflict(`session ${session.id} already has its maximum of ${session.config.maxDepartments} departments`, {
        field: 'sessionId',
        limit: session.config.maxDepartments,
      });
    }
    this.#d.events.emit({
      type: 'department_created',
      severity: 'info',
      workspace: caller.workspace,
      sessionId: session.id,
      actor: caller.actor ?? null,
      details: { departmentId: rec.id, name: rec.name, domain: rec.domain },
    });
    this.#d.sessions.metricsChanged(session.id);
    return rec;
  }

  get(caller: Caller, id: string): DepartmentRecord {
    const rec = this.#d.store.get(caller.workspace, id);
    if (!rec) throw notFoundFor(this.#d.events, caller, 'department', id, this.#d.store.byId(id)?.workspace);
    return rec;
  }

  list(caller: Caller, f: { sessionId?: string; domain?: string; limit: number; offset: number }) {
    return this.#d.store.list(caller.workspace, f);
  }

  /** Removes a department; its running sandboxes keep running under the session (they lose the department's tag only in metrics). */
  delete(caller: Caller, id: string): void {
    const rec = this.get(caller, id);
    this.#d.store.markDeleted(rec.id, this.#d.clock.nowMs());
    this.#d.sessions.metricsChanged(rec.sessionId);
  }

  async metrics(caller: Caller, id: string) {
    const rec = this.get(caller, id);
    const usage = await this.#d.usage(rec);
    const tasks = this.#d.tasks.of(rec.sessionId, rec.id);
    const limits = rec.config.resourceLimits ?? {};
    return {
      departmentId: rec.id,
      sessionId: rec.sessionId,
      timestamp: new Date(this.#d.clock.nowMs()).toISOString(),
      sandboxes: { running: usage.sandboxesRunning, total: usage.sandboxesTotal },
      tasks,
      cpu: { percent: Math.round(usage.cpuPercent * 100) / 100, limitCores: limits.cpu ?? null },
      memory: { usageBytes: usage.memoryBytes, limitBytes: limits.memory !== undefined ? limits.memory * 1024 * 1024 : null },
      maxConcurrentTasks: rec.config.maxConcurrentTasks,
    };
  }

  /**
   * The ceilings a sandbox of this department lives under, outermost first (session, then
   * department). `field` names the request field that referred to the department.
   */
  ceilingsFor(
    caller: Caller,
    departmentId: string,
    session: SessionRecord,
    field = 'departmentId',
  ): { dep: DepartmentRecord; ceilings: LimitCeiling[] } {
    const dep = this.#d.store.get(caller.workspace, departmentId);
    if (!dep) throw validationError(field, `no department ${departmentId} in this workspace`);
    if (dep.sessionId !== session.id)
      throw validationError(field, `department ${departmentId} belongs to another session than ${session.id}`);
    const own: LimitCeiling[] = dep.config.resourceLimits ? [{ level: 'department', id: dep.id, limits: dep.config.resourceLimits }] : [];
    return { dep, ceilings: [...sessionCeiling(session), ...own] };
  }

  deleteOfSession(sessionId: string): void {
    this.#d.store.deleteOfSession(sessionId, this.#d.clock.nowMs());
  }
}

/** A session's own ceiling, if it sets one. */
export function sessionCeiling(session: SessionRecord): LimitCeiling[] {
  const limits: PartialLimits | undefined = session.config.resourceLimits;
  return limits ? [{ level: 'session', id: session.id, limits }] : [];
}
