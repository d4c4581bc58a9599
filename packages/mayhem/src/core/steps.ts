/**
 * How a job's steps run: continuations that take the job (nothing per step is allocated but the
 * wait itself), retries with backoff, and the one place that decides what may still run once the
 * job has ended (an escaped error ends it early): stoppable steps stop; durable steps finish their
 * write (with bounded retries) but start nothing after it; `when` continuations are dropped unless
 * marked `afterEnd` (those give back what they were handed, like a host granted too late).
 */
import type { Counters } from './counters.js';
import type { DependencyHealth } from './dependency-health.js';
import type { Job } from './job.js';
import { backoffDelay, isAbort, sleep, type BackoffPolicy } from './timing.js';

/**
 * `stoppable`: shutdown (the job's signal) and the end of the job stop it; its failure ends it.
 * `durable`: a record of something that already happened (a restart ran, the broker is about to be
 * told): retried until written — shutdown only bounds how much longer it tries — because giving it up
 * would let a redelivery act as if it never happened.
 */
export type StepKind = 'stoppable' | 'durable';

/** One retried operation of a job: run attempt `n`, decide on a failure, go on. */
export interface RetriedStep {
  readonly kind: StepKind;
  readonly run: (job: Job, attempt: number) => Promise<unknown>;
  /** Per failed attempt (not for a cancellation): count and log; whether to try again (stoppable steps). */
  readonly retry: (job: Job, error: unknown, attempt: number) => boolean;
  readonly succeeded: (job: Job, value: unknown) => void;
  /**
   * The step gave up: `error` is the last attempt's, or the abort that stopped the wait between two
   * attempts (then `betweenAttempts` is true: no attempt was running when it stopped).
   */
  readonly failed: (job: Job, error: unknown, betweenAttempts: boolean) => void;
  /** The dependency the step calls: its outcomes feed that dependency's health. */
  readonly dependency?: DependencyHealth;
  /** An attempt that succeeds after the job ended: give back what it handed over (a host). */
  readonly afterEnd?: (job: Job) => void;
  /**
   * Stoppable steps whose attempts resolve with what happened (the executor's restart outcome):
   * whether this value asks for another attempt, after a backoff, as `retry` does for a failure.
   * When it says no, the value goes to `succeeded` (which reads it: it may be a failure told as a value).
   */
  readonly again?: (job: Job, value: unknown, attempt: number) => boolean;
}

export interface StepRunnerOptions {
  readonly retryBackoff: BackoffPolicy;
  /** Backoff of durable records, which retry for as long as the dependency is out. */
  readonly recordBackoff: BackoffPolicy;
  /** Attempts a durable record still gets once shutdown has cancelled its job. */
  readonly recordAttemptsAfterCancel: number;
  readonly random: () => number;
  readonly counters: Counters;
  /** A continuation threw (a bug): end the job with it, for the central exception handler. */
  readonly onBug: (job: Job, error: unknown) => void;
}

export class StepRunner {
  readonly #o: StepRunnerOptions;

  constructor(options: StepRunnerOptions) {
    this.#o = options;
  }

  /**
   * When `waiting` settles, go on with `next` or `failed` — unless the job ended meanwhile. Pass
   * `afterEnd` for a continuation that must run even then (one that gives back what it was handed).
   */
  when<T>(
    job: Job,
    waiting: Promise<T>,
    next: (job: Job, value: T) => void,
    failed: (job: Job, error: unknown) => void,
    afterEnd = false,
  ): void {
    void waiting.then(
      (value) => {
        if (afterEnd || !job.ended) this.run(job, next, value);
      },
      (error: unknown) => {
        if (afterEnd || !job.ended) this.run(job, failed, error);
      },
    );
  }

  /** Run `step` from attempt `n`; on a failure back off and try again while its kind and policy say so. */
  attempt(job: Job, n: number, step: RetriedStep): void {
    if (job.ended && step.kind === 'stoppable') return;
    step.dependency?.started();
    let running: Promise<unknown>;
    try {
      running = step.run(job, n);
    } catch (err) {
      // An adapter that throws instead of rejecting fails the attempt all the same.
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
      running = Promise.reject(err);
    }
    void running.then(
      (value) => {
        step.dependency?.ok();
        if (job.ended) {
          if (step.afterEnd !== undefined) this.run(job, step.afterEnd, undefined);
        } else if (step.again === undefined) this.run(job, step.succeeded, value);
        else this.#attemptResolved(job, n, step, value);
      },
      (err: unknown) => {
        if (job.ended && step.kind === 'stoppable') return step.dependency?.settled();
        this.run(job, () => this.#attemptFailed(job, n, step, err), undefined);
      },
    );
  }

  /** Run one continuation; what it throws (a bug) ends the job for the central exception handler. */
  run<T>(job: Job, fn: (job: Job, value: T) => void, value: T): void {
    try {
      fn(job, value);
    } catch (error) {
      this.#o.onBug(job, error);
    }
  }

  // A value that may ask for another attempt (see `again`). What `again` or `succeeded` throws is a bug, as in `run`.
  #attemptResolved(job: Job, n: number, step: RetriedStep, value: unknown): void {
    try {
      if (!step.again!(job, value, n)) return step.succeeded(job, value);
    } catch (error) {
      return this.#o.onBug(job, error);
    }
    this.#o.counters.increment('retries');
    this.#backOff(job, n, step);
  }

  #attemptFailed(job: Job, n: number, step: RetriedStep, err: unknown): void {
    if (step.kind === 'stoppable' && isAbort(err, job.signal)) {
      step.dependency?.settled();
      return step.failed(job, err, false);
    }
    step.dependency?.failed(err);
    const again = job.ended || step.retry(job, err, n);
    if (!this.#retries(job, step, again)) {
      if (!job.ended) step.failed(job, err, false);
      return;
    }
    this.#o.counters.increment('retries');
    if (step.kind === 'stoppable') return this.#backOff(job, n, step);
    // Durable: wait out an outage with the long backoff; once shutdown began (the sleep wakes on
    // it), the few attempts left go out at the short one.
    const winding = job.signal.aborted || job.ended;
    const delay = winding
      ? backoffDelay(job.attemptsAfterCancel, this.#o.retryBackoff, this.#o.random)
      : backoffDelay(n, this.#o.recordBackoff, this.#o.random);
    const next = (): void => this.attempt(job, n + 1, step);
    void sleep(delay, winding ? undefined : job.signal).then(next, next);
  }

  // A stoppable step's wait before attempt n + 1; shutdown wakes it (then no attempt was running).
  #backOff(job: Job, n: number, step: RetriedStep): void {
    void sleep(backoffDelay(n, this.#o.retryBackoff, this.#o.random), job.signal).then(
      () => this.attempt(job, n + 1, step),
      (aborted: unknown) => {
        if (!job.ended) this.run(job, (j: Job) => step.failed(j, aborted, true), undefined);
      },
    );
  }

  #retries(job: Job, step: RetriedStep, policySays: boolean): boolean {
    if (step.kind === 'stoppable') return policySays;
    if (!job.signal.aborted && !job.ended) return true;
    job.attemptsAfterCancel += 1;
    return job.attemptsAfterCancel <= this.#o.recordAttemptsAfterCancel;
  }
}
