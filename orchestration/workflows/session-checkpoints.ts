/**
 * {@link WorkflowCheckpoints} over the checkpoints area: a workflow's `checkpoint` step is a real
 * `ckp_` checkpoint of its session (listed by `GET /v1/checkpoints?sessionId=`, restorable with
 * `POST /v1/checkpoints/{id}/restore`, kept and removed like any other), holding the session's
 * state, context and messages as every checkpoint does, but the files of the run's sandbox
 * only. A rollback puts back exactly those files, in the run's sandbox as it runs: never the
 * session's other sandboxes, its state, its context or its messages, which may have moved on
 * since (other clients, other runs of the session).
 */
import type { Caller } from '../../runtime/sandbox/manager.ts';
import type { CheckpointService } from '../checkpoints/service.ts';
import type { WorkflowCheckpoints } from './ports.ts';

export class SessionCheckpoints implements WorkflowCheckpoints {
  readonly #service: Pick<CheckpointService, 'create' | 'restore'>;

  constructor(service: Pick<CheckpointService, 'create' | 'restore'>) {
    this.#service = service;
  }

  async capture(caller: Caller, sessionId: string, sandboxId: string, name: string, description: string, data: Record<string, unknown>) {
    const rec = await this.#service.create(caller, { sessionId, name, description, data }, { sandboxIds: [sandboxId] });
    return { id: rec.id };
  }

  async restore(caller: Caller, checkpointId: string, sandboxId: string): Promise<void> {
    await this.#service.restore(
      caller,
      checkpointId,
      { includeState: false, includeContext: false, includeMessages: false, includeFiles: true },
      { sandboxIds: [sandboxId], inPlace: true },
    );
  }
}
