/**
 * A counter every change to who may do what moves forward: a token revoked, a key revoked or
 * rotated, a user disabled, a membership or role changed. Whatever caches an authentication
 * result remembers the value it saw and drops the result once the counter has moved, so such a
 * change takes effect on the very next request in this process.
 */
export class AuthEpoch {
  #value = 0;

  get value(): number {
    return this.#value;
  }

  bump(): void {
    this.#value++;
  }
}
