// Unit tier: who aborted a task, through abort(), AbortSignal.timeout and AbortSignal.any, read back from an
// ended task's outcome and from an unhandled-task-error report.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { setTimeout as sleep, setImmediate as turn } from 'node:timers/promises';
import { abortOriginOf, startAbortChains, stopAbortChains } from '../../src/instrument/abort-chain.js';
import { outcomeOf } from '../../src/instrument/terminated.js';
import { unhandledReport } from '../../src/instrument/unhandled.js';

/** This file, as a frame's location (the exact lines are checked on a real program: debug-reports.test.ts). */
const here = /abort-chain\.test\.ts:\d+:\d+$/;

beforeEach(() => startAbortChains());
afterEach(() => stopAbortChains());

/** Settles `p` and hands it back, rejected or not, without leaving it unhandled. */
async function ended<T>(p: Promise<T>): Promise<{ p: Promise<T> }> {
  await p.catch(() => undefined);
  // Boxed: an async function returning a promise would adopt it.
  return { p };
}

describe('abort chains', () => {
  it('abort(reason): the reason and the line of the abort() call', async () => {
    const c = new AbortController();
    const task = ended(sleep(60_000, undefined, { signal: c.signal }));
    c.abort(new Error('shutting down')); // ABORT-HERE
    const outcome = outcomeOf((await task).p);
    expect(outcome.state).toBe('rejected');
    expect(outcome.abortedBy?.reason).toBe('shutting down');
    expect(outcome.abortedBy?.at[0]).toMatch(here);
  });

  it('abort() without a reason: still the line, and the signal’s AbortError is what the task saw', async () => {
    const c = new AbortController();
    const task = ended(sleep(60_000, undefined, { signal: c.signal }));
    c.abort();
    const outcome = outcomeOf((await task).p);
    expect(outcome.abortedBy?.reason).toBe('This operation was aborted');
    expect(c.signal.reason).toBeInstanceOf(DOMException);
    expect((c.signal.reason as DOMException).name).toBe('AbortError');
  });

  it('AbortSignal.timeout: where the timeout was made, and its length', async () => {
    const signal = AbortSignal.timeout(5); // TIMEOUT-MADE
    const outcome = outcomeOf((await ended(sleep(60_000, undefined, { signal }))).p);
    expect(outcome.abortedBy?.reason).toBe('AbortSignal.timeout(5) fired');
    expect(outcome.abortedBy?.at[0]).toMatch(here);
  });

  it('through AbortSignal.any: the source’s abort() line, then the any() it passed through', async () => {
    const shutdown = new AbortController();
    const signal = AbortSignal.any([shutdown.signal, AbortSignal.timeout(60_000)]); // ANY-MADE
    const task = ended(sleep(60_000, undefined, { signal }));
    await turn();
    shutdown.abort(new Error('SIGTERM')); // SHUTDOWN
    const outcome = outcomeOf((await task).p);
    expect(outcome.abortedBy?.reason).toBe('SIGTERM');
    expect(outcome.abortedBy?.at[0]).toMatch(here);
    expect(outcome.abortedBy?.via).toEqual([
      expect.stringMatching(/^AbortSignal\.any at .*abort-chain\.test\.ts:\d+:\d+$/),
    ]);
  });

  it('an unhandled task error that is an abort says who aborted', async () => {
    const c = new AbortController();
    const p = sleep(60_000, undefined, { signal: c.signal });
    c.abort(new Error('operator pressed stop'));
    const reason = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    // timers/promises rejects with an AbortError whose cause is the signal's reason.
    expect(abortOriginOf(reason)?.reason).toBe('operator pressed stop');
    expect(unhandledReport(reason, p).abortedBy?.reason).toBe('operator pressed stop');
  });

  it('an error that is no abort’s has no origin; stopping puts the built-ins back', () => {
    expect(abortOriginOf(new Error('disk full'))).toBeUndefined();
    const timeoutNow = (): unknown => Object.getOwnPropertyDescriptor(AbortSignal, 'timeout')?.value;
    const wrapped = timeoutNow();
    stopAbortChains();
    expect(timeoutNow()).not.toBe(wrapped);
    startAbortChains();
  });
});
