/**
 * Many deadlines of one fixed length, one timer. Because every deadline is "now + the same
 * duration", insertion order is deadline order: a Map keeps them sorted for free, the timer only
 * ever waits for the front, and re-arming an item is a delete + set (O(1)). Used for leases
 * (memory broker) and for lease extensions (pipeline) — 100k in flight cost one timer, not 100k.
 *
 * Items are their own keys and deadlines are whole milliseconds (rounded up): the Map then holds a
 * small integer per item instead of a boxed number and a wrapper object.
 */
export class DeadlineQueue<K> {
  readonly #durationMs: number;
  readonly #now: () => number;
  readonly #onDue: (key: K) => void;
  readonly #ref: boolean;
  readonly #dueAt = new Map<K, number>();
  #timer: ReturnType<typeof setTimeout> | undefined;

  /**
   * @param onDue called once per item whose deadline passed; the item is removed first (call
   *   {@link add} again from it to repeat).
   * @param ref whether the timer keeps the process alive.
   */
  constructor(durationMs: number, onDue: (key: K) => void, options: { now?: () => number; ref?: boolean } = {}) {
    if (!(durationMs > 0)) throw new RangeError(`deadline length must be > 0 ms, got ${durationMs}`);
    this.#durationMs = durationMs;
    this.#onDue = onDue;
    this.#now = options.now ?? (() => performance.now());
    this.#ref = options.ref ?? false;
  }

  get size(): number {
    return this.#dueAt.size;
  }

  /** (Re)start `key`'s deadline at now + duration. */
  add(key: K): void {
    this.#dueAt.delete(key);
    this.#dueAt.set(key, Math.ceil(this.#now() + this.#durationMs));
    if (this.#timer === undefined) this.#arm();
  }

  has(key: K): boolean {
    return this.#dueAt.has(key);
  }

  delete(key: K): boolean {
    // The timer may now wait for an item that is gone; it re-arms for the real front when it fires.
    return this.#dueAt.delete(key);
  }

  clear(): void {
    this.#dueAt.clear();
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #arm(): void {
    const first = this.#dueAt.values().next();
    if (first.done) return;
    this.#timer = setTimeout(() => this.#fire(), Math.max(0, first.value - this.#now()));
    if (!this.#ref) this.#timer.unref();
  }

  #fire(): void {
    this.#timer = undefined;
    const now = this.#now();
    for (const [key, dueAt] of this.#dueAt) {
      if (dueAt > now) break;
      this.#dueAt.delete(key);
      this.#onDue(key);
    }
    if (this.#timer === undefined) this.#arm();
  }
}
