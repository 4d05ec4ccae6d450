import { APICallError, stepCountIs, streamText, type ModelMessage, type StopCondition, type ToolSet } from 'ai';
import type { Logger } from 'pino';
import type { Caller } from '../../runtime/sandbox/manager.ts';
import type { ToolName } from '../agents/schemas.ts';
import type { AgentRecord } from '../agents/store.ts';
import type { GateCall, GateResult } from '../approvals/service.ts';
import type { ApprovalRecord } from '../approvals/store.ts';
import type { Redactor } from '../vault/redact.ts';
import type { ChatEventType } from './events.ts';
import { historyWindow } from './history.ts';
import type { ResolvedModel } from './providers.ts';
import { ToolCallError, toolSet, validateToolInput, type ToolImpl } from './tools.ts';
import { addUsage, ZERO_USAGE, type ToolCallStatus, type Usage } from './turns.ts';
import { Watchdog } from './watchdog.ts';

/** One turn as the runner sees it. */
export interface TurnSpec {
  turnId: string;
  caller: Caller;
  agent: AgentRecord;
  model: ResolvedModel;
  /** The history and the new user message. */
  messages: ModelMessage[];
  redactor: Redactor;
  /** Bound vault secrets, injected into the tools' executions. */
  env: Record<string, string>;
  /** Cancels the turn (session end, agent deleted, shutdown); its reason says why. */
  signal: AbortSignal;
  /** Non-null once the turn must stop after the current step (a new user message superseded it). */
  stopReason(): string | null;
}

/** What the runner needs around it; the chat service supplies it. */
export interface TurnEffects {
  emit(type: ChatEventType, data: Record<string, unknown>): void;
  /** Runs `fn` with its records and events in one transaction; its events go out once it committed. */
  batch(fn: () => void): void;
  /** Stores what one model call returned (assistant and tool messages), as it ends. */
  persist(messages: ModelMessage[]): void;
  gate(call: Omit<GateCall, 'policy'>, onPending: (rec: ApprovalRecord) => void, signal?: AbortSignal): Promise<GateResult>;
  /** The agent's sandbox, made on first use. */
  sandbox(): Promise<{ id: string }>;
  impls: Record<ToolName, ToolImpl>;
  /** Counts a tool call that reached the sandbox as a task; call the result once it ends. */
  beginTask(): (failed: boolean) => void;
  toolEnded(c: {
    callId: string;
    tool: string;
    status: ToolCallStatus;
    exitCode: number | null;
    durationMs: number;
    sandboxId: string | null;
    approvalId: string | null;
  }): void;
  /** The turn waits for (`true`) or stopped waiting for (`false`) a person. */
  waiting(on: boolean): void;
  timeoutMs: number;
  maxRetries: number;
  logger: Logger;
}

export interface TurnOutcome {
  status: 'completed' | 'failed' | 'cancelled';
  /** `step_budget`, `token_budget`, `superseded`, or why it failed or was cancelled. */
  reason: string | null;
  error: { code: 'PROVIDER_ERROR' | 'PROVIDER_TIMEOUT' | 'CANCELLED'; message: string } | null;
  /** Everything the model said, as streamed. */
  text: string;
  usage: Usage;
  steps: number;
  finishReason: string | null;
}

const usageOf = (u: {
  inputTokens?: number | undefined;
  outputTokens?: number | undefined;
  totalTokens?: number | undefined;
  outputTokenDetails?: { reasoningTokens?: number | undefined };
  inputTokenDetails?: { cacheReadTokens?: number | undefined };
}): Usage => {
  const input = u.inputTokens ?? 0;
  const output = u.outputTokens ?? 0;
  return {
    inputTokens: input,
    outputTokens: output,
    totalTokens: u.totalTokens ?? input + output,
    reasoningTokens: u.outputTokenDetails?.reasoningTokens ?? 0,
    cachedInputTokens: u.inputTokenDetails?.cacheReadTokens ?? 0,
  };
};

/** What an error from the model call says, without its request body (the conversation) or headers. */
function describeError(err: unknown): string {
  if (APICallError.isInstance(err)) return `${err.statusCode ? `HTTP ${err.statusCode}: ` : ''}${err.message}`.slice(0, 500);
  return (err instanceof Error ? err.message : String(err)).slice(0, 500);
}

/**
 * Runs one turn: the model is called through the AI SDK's `streamText` with the agent's tools,
 * for at most `maxSteps` tool rounds (the last call gets `toolChoice: 'none'`, so the model
 * answers) and within the token budget. Deltas become `content` / `thinking` events, each step
 * `usage`; every tool call passes the approval gate, then runs in the agent's sandbox, one at a
 * time. A provider that stops answering for DIRECTOR_LLM_TIMEOUT_MS (time spent in tools and
 * approvals does not count) ends the turn as failed.
 */
export class TurnRunner {
  readonly #s: TurnSpec;
  readonly #e: TurnEffects;
  /** Calls that reached our `execute` (the others were refused by the SDK as invalid). */
  readonly #handled = new Set<string>();
  #usage: Usage = { ...ZERO_USAGE };
  /** The model call in progress (0-based), as the SDK announces it before each call. */
  #step = 0;

  constructor(spec: TurnSpec, effects: TurnEffects) {
    this.#s = spec;
    this.#e = effects;
  }

  async run(): Promise<TurnOutcome> {
    const { agent, redactor } = this.#s;
    const cfg = agent.config;
    const timeout = new AbortController();
    const watchdog = new Watchdog(this.#e.timeoutMs, () =>
      timeout.abort(new Error(`the provider did not answer within ${this.#e.timeoutMs} ms`)),
    );
    const signal = AbortSignal.any([this.#s.signal, timeout.signal]);
    const tools: ToolSet | undefined = cfg.tools.length
      ? toolSet(cfg.tools, (name, input, callId, sig) => this.#tool(name, input, callId, sig, watchdog))
      : undefined;
    const budget: StopCondition<ToolSet> = () => cfg.maxTokens !== null && this.#usage.totalTokens >= cfg.maxTokens;
    let text = '';
    let steps = 0;
    let finishReason: string | null = null;
    let failure: unknown = null;
    let aborted = false;
    watchdog.start();
    const result = streamText({
      model: this.#s.model.languageModel,
      ...(cfg.systemPrompt ? { system: cfg.systemPrompt } : {}),
      // Each model call gets the newest messages (see history.ts); the first call too.
      messages: historyWindow(this.#s.messages, cfg.maxHistoryMessages),
      ...(tools ? { tools, toolCallConcurrency: 1 } : {}),
      maxOutputTokens: cfg.maxOutputTokens,
      ...(cfg.temperature !== null ? { temperature: cfg.temperature } : {}),
      maxRetries: this.#e.maxRetries,
      abortSignal: signal,
      // No telemetry: Director registers no integration, and with it on the SDK still builds a
      // tracing-channel event for every step, model call and tool execution (copies of the call,
      // conversation included, filtered and redacted) on the way to the model.
      telemetry: { isEnabled: false },
      stopWhen: [stepCountIs(cfg.maxSteps + 1), () => this.#s.stopReason() !== null, budget],
      prepareStep: ({ stepNumber, messages }) => {
        this.#step = stepNumber;
        const last = tools && stepNumber >= cfg.maxSteps;
        const long = messages.length > cfg.maxHistoryMessages;
        if (!last && !long) return undefined;
        return {
          ...(last ? { toolChoice: 'none' as const } : {}),
          // A turn's own tool rounds can outgrow the window too (it carries forward to later steps).
          ...(long ? { messages: historyWindow(messages, cfg.maxHistoryMessages) } : {}),
        };
      },
      onError: () => undefined,
      onStepEnd: (step) => this.#e.persist(step.response.messages as ModelMessage[]),
    });
    try {
      for await (const part of result.fullStream) {
        watchdog.touch();
        if (part.type === 'text-delta') {
          if (part.text) {
            const t = redactor.redact(part.text);
            text += t;
            this.#e.emit('content', { text: t });
          }
        } else if (part.type === 'reasoning-delta') {
          if (part.text) this.#e.emit('thinking', { text: redactor.redact(part.text) });
        } else if (part.type === 'tool-error') {
          // A call the SDK refused before our execute (unknown tool, input against the schema): a tool error for the model.
          if (!this.#handled.has(part.toolCallId)) this.#invalidCall(part.toolCallId, part.toolName, part.input, part.error);
        } else if (part.type === 'start-step') {
          if (part.warnings.length) this.#e.logger.debug({ warnings: part.warnings, turnId: this.#s.turnId }, 'provider warnings');
        } else if (part.type === 'finish-step') {
          steps++;
          const u = usageOf(part.usage);
          this.#usage = addUsage(this.#usage, u);
          this.#e.emit('usage', { step: steps, ...u, total: this.#usage });
        } else if (part.type === 'finish') finishReason = part.finishReason;
        else if (part.type === 'error') failure = part.error;
        else if (part.type === 'abort') aborted = true;
      }
    } catch (err) {
      if (signal.aborted) aborted = true;
      else failure = err;
    } finally {
      watchdog.stop();
    }
    const base = { text, usage: this.#usage, steps, finishReason };
    if (aborted || signal.aborted) {
      if (timeout.signal.aborted) {
        const message = (timeout.signal.reason as Error).message;
        return { ...base, status: 'failed', reason: message, error: { code: 'PROVIDER_TIMEOUT', message } };
      }
      const message = this.#s.signal.reason instanceof Error ? this.#s.signal.reason.message : 'cancelled';
      return { ...base, status: 'cancelled', reason: message, error: { code: 'CANCELLED', message } };
    }
    if (failure !== null) {
      const message = redactor.redact(describeError(failure));
      this.#e.logger.warn(
        { turnId: this.#s.turnId, agentId: agent.id, provider: this.#s.model.providerId, error: message },
        'model call failed',
      );
      return { ...base, status: 'failed', reason: message, error: { code: 'PROVIDER_ERROR', message } };
    }
    const reason =
      this.#s.stopReason() ??
      (cfg.maxTokens !== null && this.#usage.totalTokens >= cfg.maxTokens && finishReason === 'tool-calls'
        ? 'token_budget'
        : finishReason === 'tool-calls' && steps > cfg.maxSteps
          ? 'step_budget'
          : null);
    return { ...base, status: 'completed', reason, error: null };
  }

  #invalidCall(callId: string, tool: string, input: unknown, error: unknown): void {
    const { redactor } = this.#s;
    const message = redactor.redact(String(error)).slice(0, 2000);
    this.#e.batch(() => {
      this.#e.emit('tool_start', { callId, tool, input: redactor.redactJson(input ?? null) });
      this.#e.emit('tool_end', { callId, tool, status: 'invalid', durationMs: 0, error: message });
      this.#e.toolEnded({ callId, tool, status: 'invalid', exitCode: null, durationMs: 0, sandboxId: null, approvalId: null });
    });
  }

  /** One tool call: announce, gate (approval), run in the sandbox, announce the end; failures reach the model as tool errors. */
  async #tool(name: ToolName, input: unknown, callId: string, signal: AbortSignal | undefined, watchdog: Watchdog): Promise<unknown> {
    const s = this.#s;
    const e = this.#e;
    const release = watchdog.hold();
    const started = performance.now();
    const shown = s.redactor.redactJson(input);
    this.#handled.add(callId);
    e.emit('tool_start', { callId, tool: name, input: shown });
    let approvalId: string | null = null;
    let sandboxId: string | null = null;
    const ended = (status: ToolCallStatus, exitCode: number | null, extra: Record<string, unknown>) => {
      const durationMs = Math.round(performance.now() - started);
      // One commit for the call's end event and its record.
      e.batch(() => {
        e.emit('tool_end', { callId, tool: name, status, durationMs, ...(exitCode !== null ? { exitCode } : {}), ...extra });
        e.toolEnded({ callId, tool: name, status, exitCode, durationMs, sandboxId, approvalId });
      });
    };
    try {
      const stop = s.stopReason();
      if (stop) throw new ToolCallError('denied', `The tool call was not run: ${stop}.`);
      // The last model call was told to answer without tools; a call it makes anyway does not run.
      if (this.#step >= s.agent.config.maxSteps) {
        throw new ToolCallError(
          'denied',
          `The tool call was not run: the step budget of ${s.agent.config.maxSteps} tool rounds is spent. Answer the user.`,
        );
      }
      const bad = validateToolInput(name, input);
      if (bad) throw new ToolCallError('error', bad);
      const gate = await e.gate(
        {
          workspace: s.caller.workspace,
          sessionId: s.agent.sessionId,
          agentId: s.agent.id,
          turnId: s.turnId,
          callId,
          tool: name,
          input,
          shownInput: shown,
        },
        (rec) => {
          approvalId = rec.id;
          e.waiting(true);
          e.emit('tool_approval', {
            approvalId: rec.id,
            callId,
            tool: name,
            input: shown,
            inputHash: rec.inputHash,
            expiresAt: new Date(rec.expiresMs).toISOString(),
          });
        },
        signal,
      );
      e.waiting(false);
      approvalId = gate.approval?.id ?? approvalId;
      if (!gate.run) throw new ToolCallError('denied', `The tool call was not run: ${gate.reason}. Do not retry it unless the user asks.`);
      sandboxId = (await e.sandbox()).id;
      const done = e.beginTask();
      let out: Awaited<ReturnType<ToolImpl>>;
      try {
        out = await e.impls[name](input, { caller: s.caller, sandboxId, env: s.env, signal });
      } catch (err) {
        done(true);
        throw err;
      }
      done(out.exitCode !== null && out.exitCode !== 0);
      ended('ok', out.exitCode, { sandboxId, result: out.result });
      return out.result;
    } catch (err) {
      const status = err instanceof ToolCallError ? err.status : 'error';
      const message = s.redactor.redact(err instanceof Error ? err.message : String(err)).slice(0, 2000);
      ended(status, null, { error: message, ...(sandboxId ? { sandboxId } : {}), ...(approvalId ? { approvalId } : {}) });
      throw new ToolCallError(status, message);
    } finally {
      release();
    }
  }
}
