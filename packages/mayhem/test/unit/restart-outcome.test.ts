/**
 * The one place an executor's rejection becomes a value (core/restart-outcome.ts), row by row of the
 * README's table "What an executor tells the pipeline".
 */
import { describe, expect, it } from 'vitest';
import { RestartCancelled, RestartFailed, RestartRejected } from '../../src/core/contracts.js';
import { RESTARTED, restartOutcomeOf } from '../../src/core/restart-outcome.js';
import { OutcomeUnknown } from '../../src/executors/outcome.js';

const running = new AbortController().signal;
function aborted(): AbortSignal {
  const c = new AbortController();
  c.abort(new Error('shutdown'));
  return c.signal;
}

describe('restartOutcomeOf', () => {
  it('sorts what an executor says into the table’s rows, each with its reason', () => {
    expect(RESTARTED.kind).toBe('restarted');
    expect(restartOutcomeOf(new RestartFailed('exit 1: no route to host'), running)).toMatchObject({
      kind: 'not-restarted',
      reason: 'exit 1: no route to host',
    });
    expect(restartOutcomeOf(new RestartRejected('404 no such container'), running)).toMatchObject({
      kind: 'rejected',
      reason: '404 no such container',
    });
    const stopped = aborted();
    expect(restartOutcomeOf(new RestartCancelled('stopped before it started'), stopped)).toMatchObject({
      kind: 'cancelled',
    });
    expect(restartOutcomeOf(new OutcomeUnknown('sent, no answer in 5 s'), running)).toMatchObject({
      kind: 'unknown',
      reason: expect.stringContaining('no answer') as string,
      cancelled: false,
    });
    // Shutdown's own abort, not said by the executor: it may have happened.
    expect(restartOutcomeOf(stopped.reason, stopped)).toMatchObject({ kind: 'unknown', cancelled: true });
    // What no executor should throw (a bug) is never taken for "not restarted": in doubt.
    expect(restartOutcomeOf(new TypeError('x is undefined'), running)).toMatchObject({ kind: 'unknown' });
    expect(restartOutcomeOf(undefined, running)).toMatchObject({ kind: 'unknown' });
  });
});
