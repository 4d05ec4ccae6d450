/**
 * Runs tasks one at a time, in the order given. A task has at most `turnMs` from the moment its
 * turn comes: past that the next one starts (the late task goes on in the background and its
 * result is ignored), so one engine call that hangs holds the others back for `turnMs` at most.
 * `run` resolves when its task has finished or its turn has passed; it never rejects (failures
 * are the caller's to observe inside the task).
 */
export class SerialQueue {
  readonly #turnMs: number;
  #tail: Promise<void> = Promise.resolve();
  #waiting = 0;

  constructor(turnMs: number) {
    this.#turnMs = turnMs;
  }

  /** Tasks queued or running. */
  get size(): number {
    return this.#waiting;
  }

  run(task: () => Promise<unknown>): Promise<void> {
    this.#waiting++;
    const turn = this.#tail.then(
      () =>
        new Promise<void>((done) => {
          const timer = setTimeout(done, this.#turnMs);
          timer.unref?.();
          let p: Promise<unknown>;
          try {
            p = task();
          } catch {
            p = Promise.resolve();
          }
          p.then(
            () => undefined,
            () => undefined,
          ).finally(() => {
            clearTimeout(timer);
            done();
          });
        }),
    );
    this.#tail = turn.finally(() => this.#waiting--);
    return this.#tail;
  }
}

/** How long one engine-record update may hold the queue once its turn has come (ms). */
export const RECORD_UPDATE_TURN_MS = 30_000;
