import { Emitter, type ListenerErrorHandler } from '../core/emitter.ts';
import type { Executor, TaskObserver } from '../runtime/sandbox/execute.ts';
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
 * runs, failed when it exits non-zero, times out or errors. The Executor calls the observer once
 * the request passed its own checks, with the sandbox they found: an execute refused before
 * anything ran (validation, policy, another workspace's sandbox) is not a task, and its refusal
 * is answered and recorded once, as the Executor alone would. Workflow steps and chat tools call
 * the Executor themselves and count their own tasks, so they are not counted twice.
 */
export function countedExecutes(executor: Executor, tasks: TaskTracker): ExecutePort {
  const task: TaskObserver = (rec) => (rec.owner.sessionId ? tasks.begin(rec.owner.sessionId, rec.owner.departmentId) : null);
  return {
    prepare: (caller, id, raw) => executor.prepare(caller, id, raw),
    run: (caller, id, raw, signal) => executor.run(caller, id, raw, signal, task),
    stream: (caller, id, raw, signal) => executor.stream(caller, id, raw, signal, task),
  };
}
