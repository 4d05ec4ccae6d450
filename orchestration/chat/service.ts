import type { ModelMessage } from 'ai';
import type { Logger } from 'pino';
import type { Clock } from '../../core/clock.ts';
import { conflict, notFound, validationError } from '../../core/errors.ts';
import { newId } from '../../core/ids.ts';
import { checkSchema } from '../../core/validate.ts';
import type { Config } from '../../runtime/config.ts';
import type { EventSink } from '../../runtime/events.ts';
import type { Caller } from '../../runtime/sandbox/manager.ts';
import type { AgentEventBuffer } from '../agents/events.ts';
import type { AgentService } from '../agents/service.ts';
import type { AgentRecord } from '../agents/store.ts';
import type { ApprovalService } from '../approvals/service.ts';
import type { SessionService, EndState } from '../sessions/service.ts';
import type { SessionRecord } from '../sessions/store.ts';
import type { TaskTracker } from '../tasks.ts';
import { Redactor } from '../vault/redact.ts';
import type { VaultService } from '../vault/service.ts';
import type { ChatEvent, ChatEventLog, ChatEventType } from './events.ts';
import { followSession } from './follow.ts';
import type { MessageSnapshot, MessageStore } from './messages.ts';
import { costOf, type ProviderRegistry, type ResolvedModel } from './providers.ts';
import type { ChatSandboxes } from './sandbox.ts';
import { ChatRequestCheck } from './schemas.ts';
import { capText, toolImpls, type SandboxIo } from './tools.ts';
import { TurnRunner, type TurnOutcome } from './turn.ts';
import type { TurnStore, Usage } from './turns.ts';

export interface ChatServiceDeps {
  sessions: SessionService;
  /** Any session record by id (for a checkpoint's restore, which names no caller). */
  sessionById(id: string): SessionRecord | null;
  agents: AgentService;
  approvals: ApprovalService;
  vault: VaultService;
  providers: ProviderRegistry;
  log: ChatEventLog;
  messages: MessageStore;
  turns: TurnStore;
  sandboxes: ChatSandboxes;
  io: SandboxIo;
  tasks: TaskTracker;
  events: EventSink;
  ring: AgentEventBuffer;
  clock: Clock;
  config: Pick<Config, 'llmTimeoutMs' | 'llmMaxRetries' | 'chatToolOutputMaxBytes' | 'chatEventRetentionMs'>;
  logger: Logger;
}

/** A turn in progress (one per session at most). */
export interface RunningTurn {
  id: string;
  workspace: string;
  sessionId: string;
  agentId: string;
  /** The chat stream's head when the turn began: its events come after it. */
  fromSeq: number;
  finished: Promise<TurnResult>;
  abort: AbortController;
  /** Set when a new user message superseded the turn while it waited for approval. */
  stopReason: string | null;
  /** Tool calls of this turn waiting for a person now. */
  waiting: number;
  /** The turn that superseded this one (a third message meanwhile is refused). */
  successor: string | null;
}

/** How a turn ended: the JSON answer of `POST /v1/chat`. */
export interface TurnResult {
  sessionId: string;
  turnId: string;
  agentId: string;
  status: TurnOutcome['status'];
  reason: string | null;
  response: string;
  finishReason: string | null;
  usage: Usage;
  cost: number | null;
  steps: number;
  error: TurnOutcome['error'];
}

/** Event types that also go to the agent's ring buffer (the deltas stay in the chat stream only). */
const RING_TYPES = new Set<ChatEventType>(['tool_start', 'tool_approval', 'tool_end', 'usage', 'done', 'error']);
const PURGE_EVERY_MS = 3_600_000;

/**
 * Chat with agents. One turn at a time per session: a message that arrives while a turn runs is
 * refused with 409, except while that turn waits for approval, when the message supersedes it
 * (its waiting calls are denied as `superseded`, it ends after the current step, and the new
 * turn starts once it has ended). A turn runs on its own, not tied to the request that started
 * it: a client that goes away loses nothing and resumes with `Last-Event-ID`.
 */
export class ChatService {
  readonly #d: ChatServiceDeps;
  readonly #running = new Map<string, RunningTurn>();
  #purge: NodeJS.Timeout | null = null;
  #unsubscribe: (() => void) | null = null;

  constructor(deps: ChatServiceDeps) {
    this.#d = deps;
  }

  /** Fails turns a crash interrupted, cancels their approvals, and starts the retention sweep. */
  start(): void {
    const n = this.#d.turns.failInterrupted(this.#d.clock.nowMs());
    if (n) this.#d.logger.warn({ turns: n }, 'chat turns interrupted by a restart marked failed');
    this.#d.approvals.start();
    this.#sweep();
    this.#purge = setInterval(() => this.#sweep(), PURGE_EVERY_MS);
    this.#purge.unref();
    // Approval decisions (a person's, a rule's, a timeout) also go to the agent's ring.
    this.#unsubscribe = this.#d.events.subscribe((e) => {
      const agentId = e.details.agentId;
      if (e.type !== 'tool_approval_decided' || typeof agentId !== 'string' || !e.sessionId) return;
      this.#d.ring.push(agentId, {
        type: 'approval_decided',
        timestamp: e.timestamp,
        sessionId: e.sessionId,
        turnId: typeof e.details.turnId === 'string' ? e.details.turnId : null,
        data: { ...e.details, decidedBy: e.actor },
      });
    });
  }

  /** Cancels every running turn and waits for them (shutdown). */
  async close(): Promise<void> {
    if (this.#purge) clearInterval(this.#purge);
    this.#purge = null;
    this.#unsubscribe?.();
    const all = [...this.#running.values()];
    for (const t of all) t.abort.abort(new Error('the server is shutting down'));
    this.#d.approvals.close();
    await Promise.allSettled(all.map((t) => t.finished));
    this.#d.providers.close();
  }

  running(sessionId: string): RunningTurn | null {
    return this.#running.get(sessionId) ?? null;
  }

  /**
   * Starts a turn for `POST /v1/chat`. Everything that can refuse the request (validation, the
   * 503 without a provider, the agent, the session, bound secrets, a busy session) refuses it
   * here, before anything runs.
   */
  send(caller: Caller, raw: unknown): RunningTurn {
    checkSchema(ChatRequestCheck, raw);
    this.#d.providers.requireConfigured(caller.workspace);
    const agent = this.#d.agents.resolve(caller, raw.agent, raw.sessionId);
    if (raw.sessionId && raw.sessionId !== agent.sessionId) {
      throw validationError('sessionId', `agent ${agent.id} chats in its department's session ${agent.sessionId}`);
    }
    const session = this.#d.sessions.requireActive(caller, agent.sessionId);
    const model = this.#d.providers.resolve(caller.workspace, agent.config.provider, agent.config.model);
    const bound = this.#d.vault.resolve(caller.workspace, agent.config.secrets);
    const prev = this.#running.get(session.id);
    if (prev) {
      if (prev.waiting === 0 || prev.successor) {
        throw conflict(`session ${session.id} has a turn in progress (${prev.id}); one turn at a time: retry once it ended`, {
          field: 'sessionId',
          turnId: prev.id,
        });
      }
      prev.stopReason = 'superseded';
    }
    const now = this.#d.clock.nowMs();
    const turn: RunningTurn = {
      id: newId('trn'),
      workspace: caller.workspace,
      sessionId: session.id,
      agentId: agent.id,
      fromSeq: this.#d.log.head(),
      finished: Promise.resolve(null as unknown as TurnResult),
      abort: new AbortController(),
      stopReason: null,
      waiting: 0,
      successor: null,
    };
    if (prev) {
      prev.successor = turn.id;
      this.#d.approvals.supersede(session.id);
    }
    const redactor = new Redactor(bound.secrets);
    const userMessage: ModelMessage = { role: 'user', content: redactor.redact(raw.message) };
    // The turn's record and, with no earlier turn to wait for, the user's message: one commit.
    this.#d.log.batch(() => {
      this.#d.turns.insert({
        id: turn.id,
        workspace: turn.workspace,
        sessionId: turn.sessionId,
        agentId: agent.id,
        status: 'running',
        reason: null,
        provider: model.providerId,
        model: model.model,
        usage: { inputTokens: 0, outputTokens: 0, totalTokens: 0, reasoningTokens: 0, cachedInputTokens: 0 },
        cost: null,
        steps: 0,
        createdBy: caller.actor ?? null,
        startedMs: now,
        endedMs: null,
      });
      if (!prev) {
        this.#d.messages.append(
          { workspace: turn.workspace, sessionId: turn.sessionId, turnId: turn.id, agentId: turn.agentId, nowMs: now },
          [userMessage],
        );
      }
    });
    this.#running.set(session.id, turn);
    turn.finished = this.#run(turn, prev ?? null, { caller, session, agent, model, env: bound.env, redactor, userMessage });
    return turn;
  }

  /** The session's chat events after `after`, then live until the running turn (or `turnId`) ends. */
  follow(caller: Caller, sessionId: string, after: number, opts: { turnId?: string; signal?: AbortSignal } = {}) {
    this.#d.providers.requireConfigured(caller.workspace);
    const session = this.#d.sessions.get(caller, sessionId);
    const target = opts.turnId ?? this.#running.get(session.id)?.id ?? null;
    return followSession(this.#d.log, session.id, after, target, opts);
  }

  messages(caller: Caller, sessionId: string, f: { after?: number; limit: number; offset: number }) {
    const session = this.#d.sessions.get(caller, sessionId);
    return this.#d.messages.list(session.id, f);
  }

  stats(caller: Caller, sessionId: string) {
    const session = this.#d.sessions.get(caller, sessionId);
    return {
      sessionId: session.id,
      messages: this.#d.messages.count(session.id),
      ...this.#d.turns.stats(session.id),
      approvals: this.#d.approvals.countsOf(session.id),
    };
  }

  /** What a checkpoint captures of a session's chat, and puts back (refused while a turn runs). */
  readonly messageSnapshots = {
    snapshot: (sessionId: string): MessageSnapshot[] => this.#d.messages.snapshot(sessionId),
    restore: (sessionId: string, messages: readonly unknown[]): void => {
      const t = this.#running.get(sessionId);
      if (t)
        throw conflict(`session ${sessionId} has a chat turn in progress (${t.id}); restore its messages once it ended`, { turnId: t.id });
      const session = this.#d.sessionById(sessionId);
      if (!session) throw notFound('session', sessionId);
      this.#d.messages.restore(session.workspace, session.id, messages as MessageSnapshot[]);
    },
  };

  /** Phase 0 of a session's end: its running turn is cancelled and its waiting calls with it. */
  async endSessionWork(session: SessionRecord, to: EndState): Promise<void> {
    const why = `the session ${session.id} ${to === 'terminated' ? 'was deleted' : to === 'expired' ? 'expired' : 'was completed'}`;
    this.#d.approvals.cancel({ sessionId: session.id }, why);
    const t = this.#running.get(session.id);
    if (t) {
      t.abort.abort(new Error(why));
      await t.finished.catch(() => undefined);
    }
    this.#d.approvals.endSession(session.id);
  }

  /** Phase 2 of a terminated session: its messages, chat events and turns go. */
  endSessionRecords(session: SessionRecord, to: EndState): void {
    if (to !== 'terminated') return;
    this.#d.messages.deleteOfSession(session.id);
    this.#d.log.deleteOfSession(session.id);
    this.#d.turns.deleteOfSession(session.id);
  }

  /** An agent was deleted: its running turn is cancelled. */
  async agentDeleted(agent: AgentRecord): Promise<void> {
    const t = this.#running.get(agent.sessionId);
    if (t?.agentId !== agent.id) return;
    this.#d.approvals.cancel({ sessionId: agent.sessionId, turnId: t.id }, `agent ${agent.id} was deleted`);
    t.abort.abort(new Error(`agent ${agent.id} was deleted`));
    await t.finished.catch(() => undefined);
  }

  async #run(
    turn: RunningTurn,
    prev: RunningTurn | null,
    c: {
      caller: Caller;
      session: SessionRecord;
      agent: AgentRecord;
      model: ResolvedModel;
      env: Record<string, string>;
      redactor: Redactor;
      /** Stored by `send` unless a previous turn must end first. */
      userMessage: ModelMessage;
    },
  ): Promise<TurnResult> {
    const d = this.#d;
    const at = () => ({
      workspace: turn.workspace,
      sessionId: turn.sessionId,
      turnId: turn.id,
      agentId: turn.agentId,
      nowMs: d.clock.nowMs(),
    });
    const emit = (type: ChatEventType, data: Record<string, unknown>): ChatEvent => {
      const e = d.log.append({ workspace: turn.workspace, sessionId: turn.sessionId, turnId: turn.id, agentId: turn.agentId, type, data });
      if (RING_TYPES.has(type))
        d.ring.push(turn.agentId, { type, timestamp: new Date(e.tsMs).toISOString(), sessionId: turn.sessionId, turnId: turn.id, data });
      return e;
    };
    let outcome: TurnOutcome;
    try {
      // A superseded turn ends first: its tool results belong in the history before this message.
      if (prev) {
        await prev.finished.catch(() => undefined);
        d.messages.append(at(), [c.userMessage]);
      }
      const history = d.messages.history(turn.sessionId, turn.agentId);
      d.events.emit({
        type: 'chat_turn_started',
        severity: 'info',
        workspace: turn.workspace,
        sessionId: turn.sessionId,
        actor: c.caller.actor ?? null,
        details: { turnId: turn.id, agentId: turn.agentId, provider: c.model.providerId, model: c.model.model },
      });
      d.ring.push(turn.agentId, {
        type: 'turn_started',
        timestamp: new Date(d.clock.nowMs()).toISOString(),
        sessionId: turn.sessionId,
        turnId: turn.id,
        data: { model: c.model.model, provider: c.model.providerId },
      });
      const cap = d.config.chatToolOutputMaxBytes;
      const runner = new TurnRunner(
        {
          turnId: turn.id,
          caller: c.caller,
          agent: c.agent,
          model: c.model,
          messages: history,
          redactor: c.redactor,
          env: c.env,
          signal: turn.abort.signal,
          stopReason: () => turn.stopReason,
        },
        {
          emit,
          batch: (fn) => d.log.batch(fn),
          persist: (messages: ModelMessage[]) => d.messages.append(at(), c.redactor.redactJson(messages)),
          gate: (call, onPending, signal) => d.approvals.gate({ ...call, policy: c.agent.config.approvalPolicy }, onPending, signal),
          sandbox: () => d.sandboxes.ensure(c.caller, c.session, c.agent),
          impls: toolImpls(d.io, (text, cutBefore) => capText(cutBefore ? c.redactor.redactCut(text) : c.redactor.redact(text), cap)),
          beginTask: () => d.tasks.begin(turn.sessionId, c.agent.departmentId),
          toolEnded: (tc) => {
            d.turns.recordToolCall({
              ...tc,
              turnId: turn.id,
              workspace: turn.workspace,
              sessionId: turn.sessionId,
              agentId: turn.agentId,
              endedMs: d.clock.nowMs(),
            });
            d.events.emit({
              type: 'tool_call',
              severity: 'info',
              workspace: turn.workspace,
              sessionId: turn.sessionId,
              sandboxId: tc.sandboxId,
              actor: c.caller.actor ?? null,
              details: {
                turnId: turn.id,
                agentId: turn.agentId,
                callId: tc.callId,
                tool: tc.tool,
                status: tc.status,
                exitCode: tc.exitCode,
                durationMs: tc.durationMs,
                approvalId: tc.approvalId,
              },
            });
          },
          waiting: (on) => {
            turn.waiting = Math.max(0, turn.waiting + (on ? 1 : -1));
          },
          timeoutMs: d.config.llmTimeoutMs,
          maxRetries: d.config.llmMaxRetries,
          logger: d.logger,
        },
      );
      outcome = await runner.run();
    } catch (err) {
      d.logger.error({ err, turnId: turn.id }, 'chat turn failed');
      outcome = {
        status: 'failed',
        reason: 'internal error',
        error: { code: 'PROVIDER_ERROR', message: 'internal error' },
        text: '',
        usage: { inputTokens: 0, outputTokens: 0, totalTokens: 0, reasoningTokens: 0, cachedInputTokens: 0 },
        steps: 0,
        finishReason: null,
      };
    }
    return this.#finish(turn, c, outcome, emit);
  }

  #finish(
    turn: RunningTurn,
    c: { caller: Caller; model: ResolvedModel },
    o: TurnOutcome,
    emit: (type: ChatEventType, data: Record<string, unknown>) => ChatEvent,
  ): TurnResult {
    const d = this.#d;
    const cost = costOf(c.model.price, o.usage);
    const result: TurnResult = {
      sessionId: turn.sessionId,
      turnId: turn.id,
      agentId: turn.agentId,
      status: o.status,
      reason: o.reason,
      response: o.text,
      finishReason: o.finishReason,
      usage: o.usage,
      cost,
      steps: o.steps,
      error: o.error,
    };
    if (o.text)
      d.ring.push(turn.agentId, {
        type: 'message',
        timestamp: new Date(d.clock.nowMs()).toISOString(),
        sessionId: turn.sessionId,
        turnId: turn.id,
        data: { role: 'assistant', text: o.text },
      });
    // The turn's record and its last event in one commit; the event goes out once it is stored.
    d.log.batch(() => {
      d.turns.finish(turn.id, { status: o.status, reason: o.reason, usage: o.usage, cost, steps: o.steps, nowMs: d.clock.nowMs() });
      if (o.error) emit('error', { sessionId: turn.sessionId, turnId: turn.id, code: o.error.code, message: o.error.message });
      else {
        emit('done', {
          sessionId: turn.sessionId,
          turnId: turn.id,
          response: o.text,
          finishReason: o.finishReason,
          usage: o.usage,
          cost,
          ...(o.reason ? { reason: o.reason } : {}),
        });
      }
    });
    d.events.emit({
      type: 'chat_turn_ended',
      severity: o.status === 'failed' ? 'low' : 'info',
      workspace: turn.workspace,
      sessionId: turn.sessionId,
      actor: c.caller.actor ?? null,
      details: { turnId: turn.id, agentId: turn.agentId, status: o.status, reason: o.reason, steps: o.steps, usage: o.usage, cost },
    });
    if (this.#running.get(turn.sessionId) === turn) this.#running.delete(turn.sessionId);
    return result;
  }

  #sweep(): void {
    try {
      this.#d.log.purgeOlderThan(this.#d.clock.nowMs() - this.#d.config.chatEventRetentionMs);
    } catch (err) {
      this.#d.logger.warn({ err }, 'chat event retention sweep failed');
    }
  }
}
