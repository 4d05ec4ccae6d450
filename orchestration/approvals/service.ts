import { Type } from 'typebox';
import type { Logger } from 'pino';
import type { Clock } from '../../core/clock.ts';
import { conflict, notFound } from '../../core/errors.ts';
import { newId } from '../../core/ids.ts';
import { checkSchema } from '../../core/validate.ts';
import type { EventSink } from '../../runtime/events.ts';
import type { Caller } from '../../runtime/sandbox/manager.ts';
import {
  ArgumentMatchSchema,
  approvalNeeded,
  bindingMatches,
  coveringRule,
  inputHash,
  type ApprovalPolicy,
  type AutoApproveRule,
  type AutoApproveScope,
} from './policy.ts';
import type { ApprovalFilter, ApprovalRecord, ApprovalState, ApprovalStore, Refusal } from './store.ts';

export const CreateRuleSchema = Type.Object(
  {
    agentId: Type.String({ pattern: '^agt_[A-Za-z0-9_-]{16}$' }),
    tool: Type.String({ minLength: 1, maxLength: 64, pattern: '^(\\*|[a-z][a-z0-9_]*)$', description: 'A tool name, or `*` for any' }),
    scope: Type.Union([Type.Literal('session'), Type.Literal('permanent')], {
      description: "`session`: this agent's calls in its session, kept in memory (gone at a restart); `permanent`: stored",
    }),
    match: Type.Optional(ArgumentMatchSchema),
  },
  { additionalProperties: false },
);

/** The call a gate decides about. `input` is what the model asked (hashed and matched); `shownInput` is it with secrets redacted. */
export interface GateCall {
  workspace: string;
  sessionId: string;
  agentId: string;
  turnId: string;
  callId: string;
  tool: string;
  input: unknown;
  shownInput: unknown;
  policy: ApprovalPolicy;
}

export type GateResult =
  { run: true; approval: ApprovalRecord | null; by: string } | { run: false; approval: ApprovalRecord; status: Refusal; reason: string };

export interface ApprovalServiceDeps {
  store: ApprovalStore;
  events: EventSink;
  clock: Clock;
  logger: Logger;
  timeoutMs: number;
  /** The agent a rule names, in the caller's workspace (throws a 400 naming `field` when it is not there). */
  agentOf(caller: Caller, agentId: string, field: string): { id: string; sessionId: string };
  setTimer?(fn: () => void, ms: number): () => void;
}

interface Waiter {
  resolve(rec: ApprovalRecord): void;
  cancelTimer(): void;
}

/**
 * Approvals at the sandbox boundary. A tool call the agent's policy marks `required` (and no
 * auto-approve rule covers) becomes a pending record and waits in {@link gate}; a person
 * approves or denies it by id, or it times out, is superseded by a new user message, or is
 * cancelled with its turn. Whatever decides, it decides once (a conditional update), it is
 * stored with who and why, and it is an event (`tool_approval_decided`). An approval opens only
 * the call it was made for: the gate checks tool, call id and input hash again before it runs.
 */
export class ApprovalService {
  readonly #d: ApprovalServiceDeps;
  readonly #waiters = new Map<string, Waiter>();
  /** `session` rules: in memory, as the Denkeeper seed defines them (gone at a restart, and when their session ends). */
  readonly #sessionRules = new Map<string, AutoApproveRule>();

  constructor(deps: ApprovalServiceDeps) {
    this.#d = deps;
  }

  /** Approvals left pending by a previous run: their turns are gone, so they are cancelled. */
  start(): void {
    for (const a of this.#d.store.pending()) this.#settle(a.id, 'cancelled', 'system', 'the server restarted while it waited');
  }

  /** Cancels every waiting call (shutdown). */
  close(): void {
    for (const id of [...this.#waiters.keys()]) this.#settle(id, 'cancelled', 'system', 'the server is shutting down');
  }

  /** Decides whether a call may run, waiting for a person when the policy asks for one. */
  async gate(call: GateCall, onPending: (rec: ApprovalRecord) => void, signal?: AbortSignal): Promise<GateResult> {
    const need = approvalNeeded(call.policy, call.tool, call.input);
    if (!need.required) return { run: true, approval: null, by: `policy ${need.by}` };
    const now = this.#d.clock.nowMs();
    const base: ApprovalRecord = {
      id: newId('apr'),
      workspace: call.workspace,
      sessionId: call.sessionId,
      agentId: call.agentId,
      turnId: call.turnId,
      callId: call.callId,
      tool: call.tool,
      input: call.shownInput,
      inputHash: inputHash(call.input),
      status: 'pending',
      reason: null,
      decidedBy: null,
      ruleId: null,
      createdMs: now,
      expiresMs: now + this.#d.timeoutMs,
      decidedMs: null,
    };
    const rules = [...this.#d.store.rulesOfAgent(call.agentId), ...this.#sessionRules.values()];
    const rule = coveringRule(rules, call);
    if (rule) {
      const rec: ApprovalRecord = { ...base, status: 'approved', decidedBy: `rule:${rule.id}`, ruleId: rule.id, decidedMs: now };
      rec.reason = `auto-approve rule ${rule.id} (${rule.scope})`;
      this.#d.store.insert(rec);
      this.#decidedEvent(rec, true);
      return { run: true, approval: rec, by: `rule ${rule.id}` };
    }
    this.#d.store.insert(base);
    this.#d.events.emit({
      type: 'tool_approval_requested',
      severity: 'info',
      workspace: base.workspace,
      sessionId: base.sessionId,
      details: {
        approvalId: base.id,
        agentId: base.agentId,
        turnId: base.turnId,
        callId: base.callId,
        tool: base.tool,
        inputHash: base.inputHash,
      },
    });
    const decided = await new Promise<ApprovalRecord>((resolve) => {
      const onAbort = () => this.#settle(base.id, 'cancelled', 'system', 'the turn was cancelled');
      const cancelTimer = this.#timer(() => this.#settle(base.id, 'timed_out', 'system', `no decision within ${this.#d.timeoutMs} ms`));
      this.#waiters.set(base.id, {
        resolve: (rec) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(rec);
        },
        cancelTimer,
      });
      signal?.addEventListener('abort', onAbort, { once: true });
      onPending(base);
      if (signal?.aborted) onAbort();
    });
    if (decided.status === 'approved') {
      // The record names the call it opens; a record for any other call (or input) opens nothing.
      if (bindingMatches(decided, call)) return { run: true, approval: decided, by: decided.decidedBy ?? 'unknown' };
      return { run: false, approval: decided, status: 'denied', reason: 'the approval does not match this call' };
    }
    return { run: false, approval: decided, status: decided.status as Refusal, reason: refusalText(decided) };
  }

  get(caller: Caller, id: string): ApprovalRecord {
    const rec = this.#d.store.get(caller.workspace, id);
    if (!rec) throw notFound('approval', id);
    return rec;
  }

  list(caller: Caller, f: ApprovalFilter) {
    return this.#d.store.list(caller.workspace, f);
  }

  /** Approves a pending call. `autoApprove` also makes a rule for this agent's later calls of the same tool. */
  approve(caller: Caller, id: string, opts: { autoApprove?: AutoApproveScope; inputHash?: string } = {}): ApprovalRecord {
    const cur = this.#pendingFor(caller, id, opts.inputHash);
    const rec = this.#settle(id, 'approved', caller.actor ?? 'unknown', null);
    if (!rec) throw this.#alreadyDecided(id);
    if (opts.autoApprove)
      this.#addRule(caller, { agentId: cur.agentId, tool: cur.tool, scope: opts.autoApprove, sessionId: cur.sessionId });
    return rec;
  }

  deny(caller: Caller, id: string, opts: { reason?: string; inputHash?: string } = {}): ApprovalRecord {
    this.#pendingFor(caller, id, opts.inputHash);
    const rec = this.#settle(id, 'denied', caller.actor ?? 'unknown', opts.reason ?? null);
    if (!rec) throw this.#alreadyDecided(id);
    return rec;
  }

  /** A new user message arrived: every call of the session still waiting is denied as `superseded`. */
  supersede(sessionId: string): number {
    let n = 0;
    for (const a of this.#d.store.pending(sessionId)) if (this.#settle(a.id, 'superseded', 'system', null)) n++;
    return n;
  }

  /** Cancels what waits in a session (its end) or one turn. */
  cancel(where: { sessionId?: string; turnId?: string }, reason: string): number {
    let n = 0;
    for (const a of this.#d.store.pending(where.sessionId)) {
      if (where.turnId && a.turnId !== where.turnId) continue;
      if (this.#settle(a.id, 'cancelled', 'system', reason)) n++;
    }
    return n;
  }

  /** How many approvals of a session ended each way (and how many wait). */
  countsOf(sessionId: string): Partial<Record<ApprovalState, number>> {
    return this.#d.store.countsOf(sessionId);
  }

  listRules(caller: Caller, agentId?: string): AutoApproveRule[] {
    const mem = [...this.#sessionRules.values()].filter((r) => r.workspace === caller.workspace && (!agentId || r.agentId === agentId));
    return [...this.#d.store.rules(caller.workspace, agentId), ...mem];
  }

  createRule(caller: Caller, raw: unknown): AutoApproveRule {
    checkSchema(CreateRuleSchema, raw);
    const agent = this.#d.agentOf(caller, raw.agentId, 'agentId');
    return this.#addRule(caller, {
      agentId: agent.id,
      tool: raw.tool,
      scope: raw.scope,
      sessionId: agent.sessionId,
      match: raw.match ?? null,
    });
  }

  deleteRule(caller: Caller, id: string): void {
    const mem = this.#sessionRules.get(id);
    const rule = mem?.workspace === caller.workspace ? mem : this.#d.store.rules(caller.workspace).find((r) => r.id === id);
    if (!rule) throw notFound('auto-approve rule', id);
    if (mem) this.#sessionRules.delete(id);
    else this.#d.store.deleteRule(id);
    this.#ruleEvent('auto_approve_rule_deleted', caller, rule);
  }

  /** A session ended: its `session` rules go. */
  endSession(sessionId: string): void {
    for (const [id, r] of this.#sessionRules) if (r.sessionId === sessionId) this.#sessionRules.delete(id);
  }

  /** An agent was deleted: its rules go. */
  forgetAgent(agentId: string): void {
    this.#d.store.deleteRulesOfAgent(agentId);
    for (const [id, r] of this.#sessionRules) if (r.agentId === agentId) this.#sessionRules.delete(id);
  }

  #addRule(
    caller: Caller,
    r: { agentId: string; tool: string; scope: AutoApproveScope; sessionId: string; match?: Record<string, string> | null },
  ): AutoApproveRule {
    const rule: AutoApproveRule = {
      id: newId('aar'),
      workspace: caller.workspace,
      agentId: r.agentId,
      tool: r.tool,
      match: r.match ?? null,
      scope: r.scope,
      sessionId: r.scope === 'session' ? r.sessionId : null,
      createdBy: caller.actor ?? null,
      createdMs: this.#d.clock.nowMs(),
    };
    if (rule.scope === 'session') this.#sessionRules.set(rule.id, rule);
    else this.#d.store.insertRule(rule);
    this.#ruleEvent('auto_approve_rule_created', caller, rule);
    return rule;
  }

  #pendingFor(caller: Caller, id: string, expectedHash: string | undefined): ApprovalRecord {
    const cur = this.get(caller, id);
    if (cur.status !== 'pending') throw this.#alreadyDecided(id);
    if (expectedHash !== undefined && expectedHash !== cur.inputHash) {
      throw conflict(`approval ${id} is for another input than the one named`, { field: 'inputHash', inputHash: cur.inputHash });
    }
    return cur;
  }

  #alreadyDecided(id: string) {
    const cur = this.#d.store.byId(id);
    return conflict(`approval ${id} is already ${cur?.status ?? 'gone'}`, { status: cur?.status ?? null });
  }

  /** The one place a pending approval is decided: stored once, announced, and its waiting call released. */
  #settle(id: string, to: Exclude<ApprovalState, 'pending'>, by: string, reason: string | null): ApprovalRecord | null {
    const rec = this.#d.store.decide(id, to, this.#d.clock.nowMs(), by, reason);
    const waiter = this.#waiters.get(id);
    if (!rec) return null;
    this.#decidedEvent(rec, false);
    if (waiter) {
      this.#waiters.delete(id);
      waiter.cancelTimer();
      waiter.resolve(rec);
    }
    return rec;
  }

  #decidedEvent(rec: ApprovalRecord, auto: boolean): void {
    this.#d.events.emit({
      type: 'tool_approval_decided',
      severity: rec.status === 'approved' ? 'low' : 'info',
      workspace: rec.workspace,
      sessionId: rec.sessionId,
      actor: rec.decidedBy,
      details: {
        approvalId: rec.id,
        agentId: rec.agentId,
        turnId: rec.turnId,
        callId: rec.callId,
        tool: rec.tool,
        decision: rec.status,
        auto,
        ...(rec.ruleId ? { ruleId: rec.ruleId } : {}),
        ...(rec.reason ? { reason: rec.reason } : {}),
      },
    });
  }

  #ruleEvent(type: string, caller: Caller, r: AutoApproveRule): void {
    this.#d.events.emit({
      type,
      severity: 'medium',
      workspace: r.workspace,
      sessionId: r.sessionId,
      actor: caller.actor ?? null,
      details: { ruleId: r.id, agentId: r.agentId, tool: r.tool, scope: r.scope, match: r.match },
    });
  }

  #timer(fn: () => void): () => void {
    if (this.#d.setTimer) return this.#d.setTimer(fn, this.#d.timeoutMs);
    const t = setTimeout(fn, this.#d.timeoutMs);
    t.unref();
    return () => clearTimeout(t);
  }
}

/** What the model is told about a call that did not run. */
export function refusalText(rec: ApprovalRecord): string {
  switch (rec.status) {
    case 'denied':
      return `denied by ${rec.decidedBy ?? 'a person'}${rec.reason ? `: ${rec.reason}` : ''}`;
    case 'timed_out':
      return `nobody approved it in time (${rec.reason ?? 'timed out'})`;
    case 'superseded':
      return 'a new user message arrived while it waited for approval';
    case 'cancelled':
      return rec.reason ?? 'cancelled';
    case 'pending':
    case 'approved':
      return rec.status;
  }
}
