/**
 * Fires once when nothing happened for `ms` while it is armed: `touch` restarts the wait, and
 * `hold` stops counting until every hold is released (a turn holds it while its tools run and
 * while a call waits for approval: only the provider's silence counts).
 */
export class Watchdog {
  readonly #ms: number;
  readonly #fire: () => void;
  #timer: NodeJS.Timeout | null = null;
  #holds = 0;
  #running = false;
  #fired = false;

  constructor(ms: number, fire: () => void) {
    this.#ms = ms;
    this.#fire = fire;
  }

  get fired(): boolean {
    return this.#fired;
  }

  start(): void {
    this.#running = true;
    this.#arm();
  }

  touch(): void {
    // Every part of a model's stream touches it: restarting the armed timer in place is cheaper
    // than clearing it and making another.
    if (this.#timer) this.#timer.refresh();
    else this.#arm();
  }

  /** Stops counting until the returned function is called (once). */
  hold(): () => void {
    this.#holds++;
    this.#clear();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#holds--;
      this.#arm();
    };
  }

  stop(): void {
    this.#running = false;
    this.#clear();
  }

  #arm(): void {
    this.#clear();
    if (!this.#running || this.#holds > 0 || this.#fired) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#fired = true;
      this.#fire();
    }, this.#ms);
    this.#timer.unref();
  }

  #clear(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }
}
