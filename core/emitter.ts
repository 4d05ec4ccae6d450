/**
 * A typed event emitter for lifecycles that many parts of the server follow (a sandbox started
 * or ended; later a session or a workflow step). It replaces single callback slots: adding a
 * listener never removes another.
 *
 * - **Many listeners**, called synchronously in registration order, so the composition root that
 *   registers them decides the order where it matters.
 * - **Isolation**: a listener that throws (or returns a promise that rejects) is reported to
 *   `onError` and the remaining listeners still run; the emitter's caller never sees the error.
 * - `on` returns the function that removes exactly that registration.
 */
/** What a listener returns is ignored, except a promise: its rejection is reported like a throw. */
export type Listener<T> = (payload: T) => unknown;

/** Where a listener's failure goes (the composition root logs it); `event` names what was being emitted. */
export type ListenerErrorHandler = (err: unknown, event: string) => void;

export class Emitter<Events extends { [K in keyof Events]: unknown }> {
  /** One entry object per registration, so a removal takes exactly that one (a function may be registered twice). */
  readonly #listeners = new Map<keyof Events, { listener: Listener<never> }[]>();
  readonly #onError: ListenerErrorHandler;

  constructor(onError: ListenerErrorHandler) {
    this.#onError = onError;
  }

  /** Adds `listener` after those already registered for `event`; returns its removal. */
  on<K extends keyof Events>(event: K, listener: Listener<Events[K]>): () => void {
    const entry = { listener: listener as Listener<never> };
    // A fresh array per change: an emit in progress keeps iterating the list it started with.
    this.#listeners.set(event, [...(this.#listeners.get(event) ?? []), entry]);
    return () => {
      const now = this.#listeners.get(event) ?? [];
      if (now.includes(entry))
        this.#listeners.set(
          event,
          now.filter((e) => e !== entry),
        );
    };
  }

  /** Calls every listener of `event` in registration order; failures are reported, never thrown. */
  emit<K extends keyof Events>(event: K, payload: Events[K]): void {
    const list = this.#listeners.get(event);
    if (!list) return;
    for (const { listener } of list) {
      try {
        const result = (listener as Listener<Events[K]>)(payload);
        if (result instanceof Promise) result.catch((err: unknown) => this.#report(err, event));
      } catch (err) {
        this.#report(err, event);
      }
    }
  }

  listenerCount(event: keyof Events): number {
    return this.#listeners.get(event)?.length ?? 0;
  }

  #report(err: unknown, event: keyof Events): void {
    try {
      this.#onError(err, String(event));
    } catch {
      // The error handler itself failed (a closed logger, say): the emit still completes.
    }
  }
}
