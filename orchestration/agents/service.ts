import type { Clock } from '../../core/clock.ts';
import { conflict, notFound, validationError } from '../../core/errors.ts';
import { newId } from '../../core/ids.ts';
import { checkSchema } from '../../core/validate.ts';
import type { EventSink } from '../../runtime/events.ts';
import type { Caller } from '../../runtime/sandbox/manager.ts';
import { DEFAULT_POLICY } from '../approvals/policy.ts';
import type { DepartmentService } from '../departments/service.ts';
import type { SessionService } from '../sessions/service.ts';
import type { AgentEventBuffer, AgentEventPage } from './events.ts';
import { CreateAgentSchema, TOOL_NAMES } from './schemas.ts';
import { DEFAULT_MAX_HISTORY_MESSAGES, type AgentRecord, type AgentStore } from './store.ts';

export interface AgentServiceDeps {
  store: AgentStore;
  sessions: SessionService;
  departments: DepartmentService;
  events: EventSink;
  ring: AgentEventBuffer;
  clock: Clock;
  /** Throws a 400 naming `field` unless the provider is registered in the workspace. */
  checkProvider(workspace: string, providerId: string, field: string): void;
  /** Throws a 400 naming `field.NAME` unless every vault id is a live secret of the workspace. */
  checkSecrets(workspace: string, bindings: Record<string, string>, field: string): void;
}

/** Default step budget (tool rounds per turn) and output tokens per model call. */
export const DEFAULT_MAX_STEPS = 10;
export const DEFAULT_MAX_OUTPUT_TOKENS = 4096;

/**
 * Agents: an LLM configuration (provider, model, system prompt, tools, approval policy, step
 * and token budgets, bound vault secrets) that belongs to a department, and so to that
 * department's session. Chat turns run as an agent; its tools run in its sandbox inside the
 * session, under the department's limits.
 */
export class AgentService {
  readonly #d: AgentServiceDeps;
  readonly #onDelete: ((a: AgentRecord) => Promise<void> | void)[] = [];

  constructor(deps: AgentServiceDeps) {
    this.#d = deps;
  }

  /** Adds what happens when an agent is deleted (its running turn is cancelled, its rules go); listeners run in order. */
  onDelete(fn: (a: AgentRecord) => Promise<void> | void): void {
    this.#onDelete.push(fn);
  }

  create(caller: Caller, raw: unknown): AgentRecord {
    checkSchema(CreateAgentSchema, raw);
    let dep;
    try {
      dep = this.#d.departments.get(caller, raw.departmentId);
    } catch {
      throw validationError('departmentId', `no department ${raw.departmentId} in this workspace`);
    }
    const session = this.#d.sessions.requireActive(caller, dep.sessionId, 'departmentId');
    if (raw.provider) this.#d.checkProvider(caller.workspace, raw.provider, 'provider');
    if (raw.secrets) this.#d.checkSecrets(caller.workspace, raw.secrets, 'secrets');
    if (this.#d.store.byName(caller.workspace, raw.name, session.id).length) {
      throw conflict(`session ${session.id} already has an agent named ${raw.name}`, { field: 'name' });
    }
    const now = this.#d.clock.nowMs();
    const rec: AgentRecord = {
      id: newId('agt'),
      workspace: caller.workspace,
      sessionId: session.id,
      departmentId: dep.id,
      name: raw.name,
      config: {
        provider: raw.provider ?? null,
        model: raw.model ?? null,
        systemPrompt: raw.systemPrompt ?? '',
        tools: raw.tools ?? [...TOOL_NAMES],
        approvalPolicy: raw.approvalPolicy ?? DEFAULT_POLICY,
        maxSteps: raw.maxSteps ?? DEFAULT_MAX_STEPS,
        maxTokens: raw.maxTokens ?? null,
        maxOutputTokens: raw.maxOutputTokens ?? DEFAULT_MAX_OUTPUT_TOKENS,
        maxHistoryMessages: raw.maxHistoryMessages ?? DEFAULT_MAX_HISTORY_MESSAGES,
        temperature: raw.temperature ?? null,
        secrets: raw.secrets ?? {},
        image: raw.sandbox?.image ?? null,
      },
      createdBy: caller.actor ?? null,
      createdMs: now,
      updatedMs: now,
      deletedMs: null,
    };
    this.#d.store.insert(rec);
    this.#d.events.emit({
      type: 'agent_created',
      severity: 'info',
      workspace: rec.workspace,
      sessionId: rec.sessionId,
      actor: caller.actor ?? null,
      details: { agentId: rec.id, name: rec.name, departmentId: rec.departmentId, tools: rec.config.tools },
    });
    return rec;
  }

  get(caller: Caller, id: string): AgentRecord {
    const rec = this.#d.store.get(caller.workspace, id);
    if (!rec) {
      const other = this.#d.store.byId(id);
      if (other && other.workspace !== caller.workspace && other.deletedMs === null) {
        this.#d.events.emit({
          type: 'cross_workspace_attempt',
          severity: 'high',
          workspace: caller.workspace,
          actor: caller.actor ?? null,
          details: { resource: 'agent', id },
        });
      }
      throw notFound('agent', id);
    }
    return rec;
  }

  /**
   * The agent a chat request names: an `agt_` id, or a name (unique within a session; `sessionId`
   * picks the session when the workspace has several agents of that name). A 400 naming `agent`
   * when there is none.
   */
  resolve(caller: Caller, agent: string, sessionId?: string): AgentRecord {
    if (/^agt_[A-Za-z0-9_-]{16}$/.test(agent)) {
      try {
        return this.get(caller, agent);
      } catch {
        throw validationError('agent', `no agent ${agent} in this workspace`);
      }
    }
    const hits = this.#d.store.byName(caller.workspace, agent, sessionId);
    if (hits.length === 1) return hits[0]!;
    if (!hits.length) throw validationError('agent', `no agent named ${agent}${sessionId ? ` in session ${sessionId}` : ''}`);
    throw validationError('agent', `${hits.length} agents are named ${agent}: give sessionId or the agent's id`);
  }

  list(caller: Caller, f: { sessionId?: string; departmentId?: string; limit: number; offset: number }) {
    return this.#d.store.list(caller.workspace, f);
  }

  async delete(caller: Caller, id: string): Promise<void> {
    const rec = this.get(caller, id);
    this.#d.store.markDeleted(rec.id, this.#d.clock.nowMs());
    for (const fn of this.#onDelete) await fn(rec);
    this.#d.ring.forget(rec.id);
    this.#d.events.emit({
      type: 'agent_deleted',
      severity: 'info',
      workspace: rec.workspace,
      sessionId: rec.sessionId,
      actor: caller.actor ?? null,
      details: { agentId: rec.id, name: rec.name },
    });
  }

  /** The agent's ring buffer after `after`. */
  events(caller: Caller, id: string, after: number, limit: number): AgentEventPage {
    const rec = this.get(caller, id);
    return this.#d.ring.after(rec.id, after, limit);
  }

  /** Phase 2 of a terminated session: its agents are deleted (their records stay for what names them). */
  async endSession(sessionId: string, terminated: boolean): Promise<void> {
    if (!terminated) return;
    for (const a of this.#d.store.ofSession(sessionId)) {
      this.#d.store.markDeleted(a.id, this.#d.clock.nowMs());
      for (const fn of this.#onDelete) await fn(a);
      this.#d.ring.forget(a.id);
    }
  }
}
