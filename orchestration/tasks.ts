import { Emitter, type ListenerErrorHandler } from '../core/emitter.ts';
import type { Caller } from '../runtime/sandbox/manager.ts';
import type { Executor } from '../runtime/sandbox/execute.ts';
import type { SessionStore } from './sessions/store.ts';

/** Task counts of a session or department: `total` and `failed` are stored, `active` is what runs now. */
export interface TaskCounts {
  total: number;
  active: number;
  failed: number;
}

/**
 * Counts tasks (executes in a session's sandboxes, workflow steps) per session and department.
 * Totals and failures are stored as they end (they survive a restart); what runs now is counted
 * in memory (after a restart nothing runs).
 */
export class TaskTracker {
  readonly #store: SessionStore;
  readonly #active = new Map<string, number>();
  readonly #changes: Emitter<{ changed: string }>;

  /** `onError`: where a failing {@link onChange} listener is reported. */
  constructor(store: SessionStore, onError: ListenerErrorHandler = () => undefined) {
    this.#store = store;
    this.#changes = new Emitter(onError);
  }

  /** Follows changes of a session's counts (a task began or ended), by session id; returns the removal. */
  onChange(listener: (sessionId: string) => void): () => void {
    return this.#changes.on('changed', listener);
  }

  /** Marks one task as running; call the returned function once, when it ends. */
  begin(sessionId: string, departmentId: string | null): (failed: boolean) => void {
    const keys = [sessionId, ...(departmentId ? [`${sessionId}/${departmentId}`] : [])];
    for (const k of keys) this.#active.set(k, (this.#active.get(k) ?? 0) + 1);
    this.#changes.emit('changed', sessionId);
    let done = false;
    return (failed) => {
      if (done) return;
      done = true;
      for (const k of keys) {
        const n = (this.#active.get(k) ?? 1) - 1;
        if (n > 0) this.#active.set(k, n);
        else this.#active.delete(k);
      }
      this.#store.countTask(sessionId, departmentId, failed);
      this.#changes.emit('changed', sessionId);
    };
  }

  of(sessionId: string, departmentId?: string): TaskCounts {
    const stored = this.#store.tasks(sessionId, departmentId ?? '');
    const active = this.#active.get(departmentId ? `${sessionId}/${departmentId}` : sessionId) ?? 0;
    return { total: stored.total + active, active, failed: stored.failed };
  }
}

/** What the API's execute route calls (the runtime's Executor, or {@link countedExecutes} around it). */
export type ExecutePort = Pick<Executor, 'prepare' | 'run' | 'stream'>;

/**
 * The runtime's Executor as the API's execute route uses it, counting every execute in a
 * session's sandbox as a task of the session (and of the sandbox's department): active while it
 * runs, failed when it exits non-zero, times out or errors. An execute refused before anything
 * ran (validation, policy, a stopped sandbox) is not a task. Workflow steps and chat tools call
 * the Executor themselves and count their own tasks, so they are not counted twice.
 *
 * The sandbox's owner comes from the Executor's own `prepare`: a refusal (another workspace's
 * sandbox, the policy) is answered, and recorded, exactly as the Executor alone would, once.
 */
export function countedExecutes(executor: Executor, tasks: TaskTracker): ExecutePort {
  /** The session the execute counts for, or null; throws the Executor's refusal (nothing ran). */
  const ownerOf = (caller: Caller, id: string, raw: unknown): { sessionId: string; departmentId: string | null } | null => {
    const { owner } = executor.prepare(caller, id, raw).rec;
    return owner?.sessionId ? { sessionId: owner.sessionId, departmentId: owner.departmentId ?? null } : null;
  };
  return {
    prepare: (caller, id, raw) => executor.prepare(caller, id, raw),
    async run(caller, id, raw, signal) {
      const owner = ownerOf(caller, id, raw);
      if (!owner) return executor.run(caller, id, raw, signal);
      const end = tasks.begin(owner.sessionId, owner.departmentId);
      let failed = true;
      try {
        const r = await executor.run(caller, id, raw, signal);
        failed = r.exitCode !== 0 || r.timedOut;
        return r;
      } finally {
        end(failed);
      }
    },
    stream(caller, id, raw, signal) {
      return (async function* () {
        const owner = ownerOf(caller, id, raw);
        const inner = executor.stream(caller, id, raw, signal);
        if (!owner) {
          yield* inner;
          return;
        }
        const end = tasks.begin(owner.sessionId, owner.departmentId);
        let failed = true;
        try {
          for await (const c of inner) {
            if (c.type === 'exit') failed = c.exitCode !== 0 || c.timedOut;
            yield c;
          }
        } finally {
          end(failed);
        }
      })();
    },
  };
}
