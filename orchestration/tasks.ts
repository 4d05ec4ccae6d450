import { Emitter, type ListenerErrorHandler } from '../core/emitter.ts';
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
