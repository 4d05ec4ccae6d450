/**
 * How each step type is performed in a run's sandbox: `execute` through the runtime's Executor
 * (limits, output caps, process-group kill on timeout or when the run ends), `verify` by judging
 * its compiled criteria (`criteria.ts`) on the previous execute's kept result or on its own
 * check command, `checkpoint` through the checkpoints port. Every command carries its attempt
 * in DIRECTOR_WORKFLOW_ATTEMPT. A command the sandbox's policy refuses is recorded as a
 * `policy_violation` event and fails the step. What follows from the outcome is `plan.ts`'s.
 */
import type { Config } from '../../runtime/config.ts';
import { isDirectorError } from '../../core/errors.ts';
import type { ExecResult } from '../../runtime/sandbox/execute.ts';
import type { Caller } from '../../runtime/sandbox/manager.ts';
import { compileCriteria, judge, type Facts } from './criteria.ts';
import type { Journal } from './journal.ts';
import type { AttemptRecord, AttemptResult, RunLog } from './log.ts';
import type { StepOutcome } from './plan.ts';
import type { StepExecutor, WorkflowCheckpoints } from './ports.ts';
import type { StepSpec } from './schemas.ts';
import type { RunRecord, WorkflowRecord } from './store.ts';

/** Environment variable every command of a run carries: `<runId>.<attempt>`; a restart kills what still carries a lost attempt's. */
export const ATTEMPT_MARKER_ENV = 'DIRECTOR_WORKFLOW_ATTEMPT';
export const DEFAULT_VERIFY_TIMEOUT_MS = 60_000;

/** `s` cut to at most `limit` UTF-8 bytes on a character boundary. */
export function capUtf8(s: string, limit: number): { text: string; cut: boolean } {
  if (Buffer.byteLength(s) <= limit) return { text: s, cut: false };
  const buf = Buffer.from(s).subarray(0, limit);
  // Drop a trailing partial character instead of turning it into U+FFFD.
  let end = buf.length;
  let back = 0;
  while (back < 4 && end - back - 1 >= 0 && (buf[end - back - 1]! & 0xc0) === 0x80) back++;
  const lead = buf[end - back - 1];
  if (lead !== undefined && lead >= 0xc0) {
    const need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
    if (back + 1 < need) end -= back + 1;
  }
  return { text: buf.subarray(0, end).toString('utf8'), cut: true };
}

/** A command refused by the sandbox's policy (exec disabled, a forbidden working directory). */
const isRefusal = (err: unknown): boolean =>
  isDirectorError(err) && (err.code === 'AUTHORIZATION_ERROR' || err.details?.policyViolation === true);

/** What an attempt keeps of a command's result (output cut to DIRECTOR_WORKFLOW_OUTPUT_LIMIT_BYTES per stream). */
interface Kept {
  exitCode: number;
  timedOut: boolean;
  stdout: string;
  stderr: string;
  truncated: boolean;
}

/** A step's outcome (for `plan.ts`), what its attempt records, and the checkpoint it took. */
export interface Performed {
  outcome: StepOutcome;
  result: AttemptResult;
  checkpoint?: { step: number; id: string };
}

export interface StepsDeps {
  log: RunLog;
  journal: Journal;
  config: Pick<Config, 'execTimeoutMs' | 'maxExecTimeoutMs' | 'workflowOutputLimitBytes'>;
  executor: StepExecutor;
  checkpoints: WorkflowCheckpoints;
}

export class Steps {
  readonly #d: StepsDeps;
  constructor(deps: StepsDeps) {
    this.#d = deps;
  }

  async perform(
    wf: WorkflowRecord,
    run: RunRecord,
    spec: StepSpec,
    a: AttemptRecord,
    caller: Caller,
    signal: AbortSignal,
  ): Promise<Performed> {
    const env = { ...run.environment, [ATTEMPT_MARKER_ENV]: `${run.id}.${a.n}` };
    const sandboxId = run.sandboxId!;
    switch (spec.type) {
      case 'execute': {
        const ran = await this.#exec(
          run,
          caller,
          sandboxId,
          spec.command,
          spec.timeout ?? this.#d.config.execTimeoutMs,
          env,
          signal,
          a.step,
        );
        if ('refused' in ran) return ran.refused;
        const r = ran.result;
        const ok = r.exitCode === 0 && !r.timedOut;
        return {
          outcome: ok ? { kind: 'succeeded' } : { kind: 'failed', exitCode: r.exitCode, timedOut: r.timedOut },
          result: { state: ok ? 'succeeded' : 'failed', ...this.#kept(r) },
        };
      }
      case 'verify': {
        const criteria = compileCriteria(spec.criteria, a.step, wf.steps);
        const verdicts: { criterion: string; ok: boolean; saw: string }[] = [];
        let kept: Kept | null = null;
        for (const c of criteria) {
          let facts: Facts;
          if (c.kind === 'exitCode' || c.kind === 'stdoutMatches') {
            const prev = this.#d.log.latestOfStep(run.id, c.of);
            if (!prev || prev.kind !== 'execute' || prev.state === 'running') throw new Error(`step ${c.of + 1} has no result to judge`);
            facts = { exitCode: prev.exitCode ?? -1, timedOut: prev.timedOut, stdout: prev.stdout };
          } else {
            const cmd = c.kind === 'command' ? c.command : ['/bin/sh', '-c', 'test -e "$1"', 'verify', c.path];
            const ran = await this.#exec(
              run,
              caller,
              sandboxId,
              cmd,
              spec.timeout ?? Math.min(DEFAULT_VERIFY_TIMEOUT_MS, this.#d.config.maxExecTimeoutMs),
              env,
              signal,
              a.step,
            );
            if ('refused' in ran) return ran.refused;
            kept = this.#kept(ran.result);
            facts = { exitCode: ran.result.exitCode, timedOut: ran.result.timedOut, stdout: kept.stdout };
          }
          const v = judge(c, facts);
          verdicts.push({ criterion: c.text, ok: v.ok, saw: v.saw });
          if (!v.ok) break;
        }
        const failed = verdicts.find((v) => !v.ok);
        return {
          outcome: failed ? { kind: 'unverified', criterion: failed.criterion, saw: failed.saw } : { kind: 'succeeded' },
          result: { state: failed ? 'failed' : 'succeeded', ...(kept ?? {}), detail: { criteria: verdicts } },
        };
      }
      case 'checkpoint': {
        const name = (spec.name ?? `${wf.name}: step ${a.step + 1}`).slice(0, 200);
        const data = { workflowId: wf.id, runId: run.id, step: a.step + 1, round: run.round, context: run.context };
        const { id } = await this.#d.checkpoints.capture(caller, run.sessionId, sandboxId, name, spec.description ?? '', data);
        return {
          outcome: { kind: 'succeeded' },
          result: { state: 'succeeded', detail: { checkpointId: id } },
          checkpoint: { step: a.step, id },
        };
      }
    }
  }

  /** Runs a command; a refusal by the sandbox's policy is recorded as a `policy_violation` and fails the step. */
  async #exec(
    run: RunRecord,
    caller: Caller,
    sandboxId: string,
    command: string | string[],
    timeout: number,
    environment: Record<string, string>,
    signal: AbortSignal,
    step: number,
  ): Promise<{ result: ExecResult } | { refused: Performed }> {
    try {
      return { result: await this.#d.executor.run(caller, sandboxId, { command, timeout, environment }, signal) };
    } catch (err) {
      if (!isRefusal(err)) throw err;
      const message = (err as Error).message;
      this.#d.journal.tx(run.workflowId, (t) =>
        t.emit({
          type: 'policy_violation',
          severity: 'medium',
          workspace: run.workspace,
          sessionId: run.sessionId,
          sandboxId,
          actor: run.actor,
          details: { workflowId: run.workflowId, runId: run.id, step: step + 1, field: 'command', issue: message },
        }),
      );
      const refused: Performed = { outcome: { kind: 'refused', message }, result: { state: 'failed', detail: { error: message } } };
      return { refused };
    }
  }

  #kept(r: { exitCode: number; timedOut: boolean; stdout: string; stderr: string; truncated: boolean }): Kept {
    const limit = this.#d.config.workflowOutputLimitBytes;
    const out = capUtf8(r.stdout, limit);
    const err = capUtf8(r.stderr, limit);
    return { exitCode: r.exitCode, timedOut: r.timedOut, stdout: out.text, stderr: err.text, truncated: r.truncated || out.cut || err.cut };
  }
}
