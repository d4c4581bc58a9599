/**
 * Group commit: requests arriving within one tick (and those queued while a batch is on the
 * wire) go to PostgreSQL together, as one statement. Each caller's promise settles when the
 * batch that carried its request has committed (or failed).
 */

/** A queued request. */
interface Item<I, R> {
  readonly input: I;
  readonly resolve: (value: R) => void;
  readonly reject: (reason: unknown) => void;
  readonly signal: AbortSignal | undefined;
}

export interface BatcherOptions<I, R> {
  /** At most this many requests per batch; the rest wait for the next one. */
  readonly maxBatch: number;
  /** Batches on the wire at once (each holds one pooled connection while it runs). */
  readonly maxInFlight: number;
  /**
   * Runs one batch; returns one result per input, in order. A rejection fails every request
   * of the batch with that error.
   */
  readonly run: (inputs: readonly I[]) => Promise<readonly R[]>;
  /**
   * Called when a batch of more than one request failed: return true to retry its requests one
   * by one, so a single bad row (a data error) fails alone instead of failing its neighbours.
   */
  readonly isolateOn?: (error: unknown) => boolean;
}

export class Batcher<I, R> {
  #queue: Item<I, R>[] = [];
  #head = 0;
  #inFlight = 0;
  #scheduled = false;
  #idleWaiters: (() => void)[] = [];
  /** Batches sent (one round trip each). */
  batches = 0;
  /** Requests carried by those batches. */
  items = 0;

  readonly #opts: BatcherOptions<I, R>;

  constructor(opts: BatcherOptions<I, R>) {
    this.#opts = opts;
  }

  /**
   * Queue a request. Rejects with `signal.reason` when the signal has aborted before the batch
   * is sent. The signal is checked, not listened to: the pipeline shares one signal between
   * thousands of requests, and a listener each would cost more than the writes.
   */
  submit(input: I, signal?: AbortSignal): Promise<R> {
    // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- the contract: the signal's own reason
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<R>((resolve, reject) => {
      this.#queue.push({ input, resolve, reject, signal });
      this.#schedule();
    });
  }

  /** Requests queued and not yet sent. */
  get pending(): number {
    return this.#queue.length - this.#head;
  }

  /** Nothing queued or on the wire. */
  get idle(): boolean {
    return this.pending === 0 && this.#inFlight === 0;
  }

  /** Resolves once nothing is queued or on the wire. */
  drained(): Promise<void> {
    if (this.pending === 0 && this.#inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  #schedule(): void {
    if (this.#scheduled || this.#inFlight >= this.#opts.maxInFlight) return;
    this.#scheduled = true;
    // setImmediate runs after this turn's I/O callbacks: everything queued in the meantime
    // joins the batch.
    setImmediate(() => {
      this.#scheduled = false;
      this.#flush();
    });
  }

  #take(): Item<I, R>[] {
    const batch: Item<I, R>[] = [];
    while (this.#head < this.#queue.length && batch.length < this.#opts.maxBatch) {
      const item = this.#queue[this.#head++]!;
      if (item.signal?.aborted) item.reject(item.signal.reason);
      else batch.push(item);
    }
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
    } else if (this.#head > 4096 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    return batch;
  }

  #flush(): void {
    while (this.#inFlight < this.#opts.maxInFlight && this.pending > 0) {
      const batch = this.#take();
      if (batch.length === 0) break;
      this.#inFlight++;
      void this.#runBatch(batch).finally(() => {
        this.#inFlight--;
        if (this.pending > 0) this.#flush();
        else if (this.#inFlight === 0) this.#notifyIdle();
      });
    }
    if (this.pending === 0 && this.#inFlight === 0) this.#notifyIdle();
  }

  #notifyIdle(): void {
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const w of waiters) w();
  }

  async #runBatch(batch: Item<I, R>[]): Promise<void> {
    this.batches++;
    this.items += batch.length;
    try {
      const results = await this.#opts.run(batch.map((b) => b.input));
      batch.forEach((item, i) => item.resolve(results[i] as R));
    } catch (error) {
      if (batch.length > 1 && this.#opts.isolateOn?.(error)) {
        for (const item of batch) await this.#runBatch([item]);
        return;
      }
      for (const item of batch) item.reject(error);
    }
  }
}
