/**
 * The main thread's calls to the storage worker that await their answer (worker-storage.ts): each
 * one's promise, the caller's signal, and the answer batches still to settle (see protocol.ts).
 */
import { ABORTED, CLAIM_BASE, CLAIMS, DONE, DONE_VALUE, FAILED, type FromWorker } from './protocol.js';

export type Answers = Extract<FromWorker, { t: 'answers' }>;

interface Pending {
  resolve(value: unknown): void;
  reject(reason: unknown): void;
  signal: AbortSignal | undefined;
}

// Answers settled per turn of the main loop (each lets a message go on in that turn).
const ANSWERS_PER_TURN = 256;

export class PendingCalls {
  readonly #pending = new Map<number, Pending>();
  // The calls in flight per caller signal, with ONE abort listener per signal: the pipeline passes the
  // same run-wide signal with every save, and EventTarget's addEventListener scans the listeners already
  // there (a listener per call made each call O(calls in flight): a quarter of the main thread's time).
  readonly #bySignal = new WeakMap<AbortSignal, Set<number>>();
  // Answer batches waiting to be settled, and where the first one is at (in `n`, and in `v`).
  readonly #queue: Answers[] = [];
  #at = 0;
  #valuesAt = 0;
  #settling = false;
  readonly #onAbort: (id: number) => void;

  /** `onAbort(id)`: the signal of call `id` aborted (tell the worker to drop it if not yet written). */
  constructor(onAbort: (id: number) => void) {
    this.#onAbort = onAbort;
  }

  add(id: number, resolve: (value: unknown) => void, reject: (reason: unknown) => void, signal?: AbortSignal): void {
    if (signal !== undefined) this.#watch(signal).add(id);
    this.#pending.set(id, { resolve, reject, signal });
  }

  /**
   * Settle a batch of answers, at most {@link ANSWERS_PER_TURN} a turn: each answer lets a message go on
   * (its ack, its next write) in the same turn, so a whole batch at once would be one long turn.
   */
  answered(a: Answers): void {
    if (this.#queue.length === 0 && a.n.length <= ANSWERS_PER_TURN * 2) {
      this.#settle(a, 0, a.n.length, 0);
      return;
    }
    this.#queue.push(a);
    if (!this.#settling) {
      this.#settling = true;
      setImmediate(this.#settleSome);
    }
  }

  /** The worker is gone: answers already here resolve (committed writes), every other call rejects. */
  failAll(err: Error): void {
    for (const a of this.#queue.splice(0)) {
      this.#settle(a, this.#at, a.n.length, this.#valuesAt);
      this.#at = 0;
      this.#valuesAt = 0;
    }
    const all = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of all) p.reject(err);
  }

  readonly #settleSome = (): void => {
    let budget = ANSWERS_PER_TURN * 2;
    const q = this.#queue;
    while (budget > 0 && q.length > 0) {
      const a = q[0]!;
      const end = Math.min(a.n.length, this.#at + budget);
      this.#valuesAt = this.#settle(a, this.#at, end, this.#valuesAt);
      budget -= end - this.#at;
      if (end === a.n.length) {
        q.shift();
        this.#at = 0;
        this.#valuesAt = 0;
      } else this.#at = end;
    }
    if (q.length > 0) setImmediate(this.#settleSome);
    else this.#settling = false;
  };

  /** Settle the answers of `a.n` from `from` to `to`, their values from `a.v[at]`; returns where the values are now. */
  #settle(a: Answers, from: number, to: number, at: number): number {
    const { n, v } = a;
    for (let i = from; i < to; i += 2) {
      const id = n[i]!;
      const how = n[i + 1]!;
      // A value is taken whether or not its caller is still here: the next answer's value follows it.
      const value = how === DONE_VALUE || how === FAILED ? v[at++] : undefined;
      const p = this.#pending.get(id);
      if (p === undefined) continue;
      this.#pending.delete(id);
      if (p.signal !== undefined) this.#bySignal.get(p.signal)?.delete(id);
      if (how === DONE) p.resolve(undefined);
      else if (how === DONE_VALUE) p.resolve(value);
      else if (how >= CLAIM_BASE) p.resolve(CLAIMS[how - CLAIM_BASE]);
      // The caller's own signal reason, as the contract says.
      else if (how === ABORTED) p.reject(p.signal?.reason);
      else p.reject(new Error(value as string));
    }
    return at;
  }

  /** The ids in flight with `signal`, listened to once. */
  #watch(signal: AbortSignal): Set<number> {
    let ids = this.#bySignal.get(signal);
    if (ids === undefined) {
      const set = new Set<number>();
      ids = set;
      this.#bySignal.set(signal, set);
      signal.addEventListener(
        'abort',
        () => {
          for (const id of set) this.#onAbort(id);
          set.clear();
        },
        { once: true },
      );
    }
    return ids;
  }
}
