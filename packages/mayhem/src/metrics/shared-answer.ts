/**
 * One answer shared by every request that arrives while it is fresh enough: the `--http` thread
 * asks the service's thread at most once per `spacingMs` whatever the number of requests, so
 * scrapers cannot make the service render more often than that.
 *
 * A request arriving at time `a` is answered by a question sent at `a - maxAgeMs` or later: the
 * cached answer if it is that recent, the one in flight if that was sent recently enough, else
 * the next question (sent at once, or `spacingMs` after the previous one). With `maxAgeMs` 0 every
 * request gets an answer asked after it arrived.
 */
export class SharedAnswer<T> {
  #cached: { readonly value: T; readonly sentAt: number } | undefined;
  #inFlight: { readonly sentAt: number; readonly promise: Promise<T> } | undefined;
  #next: { readonly promise: Promise<T>; resolve(v: T): void; reject(e: unknown): void } | undefined;
  #lastSent = -Infinity;

  constructor(
    private readonly ask: () => Promise<T>,
    private readonly maxAgeMs: number,
    private readonly spacingMs: number,
    /** Whether an answer may be reused (a failure is not). */
    private readonly keep: (value: T) => boolean = () => true,
    private readonly now: () => number = () => performance.now(),
  ) {}

  get(): Promise<T> {
    const oldest = this.now() - this.maxAgeMs;
    if (this.#cached !== undefined && this.#cached.sentAt >= oldest && this.maxAgeMs > 0)
      return Promise.resolve(this.#cached.value);
    if (this.#inFlight !== undefined && this.#inFlight.sentAt >= oldest && this.maxAgeMs > 0)
      return this.#inFlight.promise;
    if (this.#next !== undefined) return this.#next.promise;
    let resolve!: (v: T) => void;
    let reject!: (e: unknown) => void;
    const promise = new Promise<T>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    this.#next = { promise, resolve, reject };
    const wait = this.#lastSent + this.spacingMs - this.now();
    if (wait > 0) setTimeout(() => this.#send(), wait);
    else this.#send();
    return promise;
  }

  #send(): void {
    const next = this.#next;
    if (next === undefined) return;
    this.#next = undefined;
    const sentAt = this.now();
    this.#lastSent = sentAt;
    const flight = { sentAt, promise: next.promise };
    this.#inFlight = flight;
    this.ask().then(
      (value) => {
        if (this.keep(value) && (this.#cached === undefined || this.#cached.sentAt <= sentAt))
          this.#cached = { value, sentAt };
        if (this.#inFlight === flight) this.#inFlight = undefined;
        next.resolve(value);
      },
      (err: unknown) => {
        if (this.#inFlight === flight) this.#inFlight = undefined;
        next.reject(err);
      },
    );
  }
}
