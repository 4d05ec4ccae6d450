/**
 * Wakes the followers of a workflow's event log (its SSE streams) when events were appended.
 * Followers read the log themselves; a wake only says "read again", so a missed or extra wake
 * never loses or repeats an event.
 */
export class Feed {
  readonly #waiters = new Map<string, Set<() => void>>();

  /** Resolves at the next wake of `workflowId`, or when `signal` aborts. */
  wait(workflowId: string, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal?.aborted) return resolve();
      let set = this.#waiters.get(workflowId);
      if (!set) this.#waiters.set(workflowId, (set = new Set()));
      const done = () => {
        set.delete(done);
        if (!set.size && this.#waiters.get(workflowId) === set) this.#waiters.delete(workflowId);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      set.add(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  wake(workflowId: string): void {
    const set = this.#waiters.get(workflowId);
    if (set) for (const fn of [...set]) fn();
  }

  /** Followers waiting now (for tests). */
  get waiting(): number {
    let n = 0;
    for (const s of this.#waiters.values()) n += s.size;
    return n;
  }
}
