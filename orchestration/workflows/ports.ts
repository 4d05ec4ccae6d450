/**
 * The narrow interfaces the workflow engine needs from other areas, injected by the composition
 * root (`orchestration.ts`). Each names only what a run uses, so the implementation below it can
 * change (the checkpoints area, an in-sandbox agent under the executor) without touching runs.
 */
import type { Caller } from '../../runtime/sandbox/manager.ts';
import type { ExecResult } from '../../runtime/sandbox/execute.ts';
import type { SandboxRecord } from '../../runtime/store/sandboxes.ts';

/**
 * Checkpoints of a run's sandbox: what `POST /v1/checkpoints` makes and
 * `POST /v1/checkpoints/{id}/restore` puts back. `restore` is all or nothing: after it the
 * sandbox's checkpointed paths hold exactly the checkpoint's files (files written since are gone).
 */
export interface WorkflowCheckpoints {
  capture(
    caller: Caller,
    sessionId: string,
    sandboxId: string,
    name: string,
    description: string,
    data: Record<string, unknown>,
  ): Promise<{ id: string }>;
  restore(caller: Caller, checkpointId: string, sandboxId: string): Promise<void>;
}

/** A command in a sandbox, as the runtime's Executor runs it (limits, output caps, process-group kill on timeout or abort). */
export interface StepExecutor {
  run(
    caller: Caller,
    sandboxId: string,
    req: { command: string | string[]; timeout: number; environment?: Record<string, string> },
    signal?: AbortSignal,
  ): Promise<ExecResult>;
}

/** The sandboxes a run makes for itself and removes when it ends. */
export interface RunSandboxes {
  /** `POST /v1/sandboxes` inside a session (its ceilings and environment apply). */
  create(caller: Caller, body: Record<string, unknown>): Promise<SandboxRecord>;
  byId(id: string): SandboxRecord | null;
  /** The session's sandboxes that exist (any state but deleted). */
  ofSession(sessionId: string): SandboxRecord[];
  destroy(rec: SandboxRecord, reason: string): Promise<void>;
}
