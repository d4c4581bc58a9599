/**
 * The restart's outcomes as values (core/restart-outcome.ts), row by row of the README's table "What an
 * executor tells the pipeline": what the pipeline does with each, and how each is timed.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Delivery, Metrics } from '../../src/core/contracts.js';
import {
  cancelled,
  notRestarted,
  outcomeUnknown,
  rejected,
  RESTARTED,
  type RestartOutcome,
} from '../../src/core/restart-outcome.js';
import { withRestartTimings } from '../../src/executors/open.js';
import { FakeExecutor, rig, track } from '../pipeline-harness.js';

vi.setConfig({ testTimeout: 5_000 });

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

const live = (): AbortSignal => new AbortController().signal;

async function pullOne(r: ReturnType<typeof rig>): Promise<Delivery> {
  const [d] = await r.pullNow(1);
  if (!d) throw new Error('nothing to pull');
  return d;
}

describe('the outcome table', () => {
  // outcome → the "then" column: how the delivery ends, calls made, and what its record says.
  const rows: [string, RestartOutcome, string, number, Record<string, unknown>][] = [
    ['restarted', RESTARTED, 'acked', 1, { restarted: true, acked: true }],
    [
      'not restarted: retried up to --restart-attempts, then nacked, its claim released',
      notRestarted('exit 1: no route to host'),
      'nacked',
      3,
      { restarted: false, restartReleased: 1, lastError: 'exit 1: no route to host', restartAttempts: 3 },
    ],
    [
      'refused for good: dead-lettered at once with the reason',
      rejected('404 no such container'),
      'dead-lettered',
      1,
      { restarted: false, restartReleased: 1, deadLettered: true },
    ],
    [
      'stopped before it started: nacked, not in doubt (its claim released)',
      cancelled('stopped before it started'),
      'nacked',
      1,
      { restarted: false, restartReleased: 1 },
    ],
    [
      'unknown: left in doubt (its claim kept), not run again',
      outcomeUnknown('sent, no answer in 5 s'),
      'nacked',
      1,
      { restarted: false, restartReleased: 0, restartClaimed: 1 },
    ],
  ];
  for (const [row, outcome, ends, calls, record] of rows) {
    it(row, async () => {
      const r = rig({ executor: new FakeExecutor(() => ({ latencyMs: 10, outcome })) });
      const id = r.publish('cattle-aaaa');
      const out = track(r.pipeline.handle(await pullOne(r), live()));
      await vi.advanceTimersByTimeAsync(1_000);
      expect(await out.promise).toBe(ends);
      expect(r.executor.calls).toHaveLength(calls);
      expect(r.memory.records.get(id)).toMatchObject(record);
      if (outcome.kind === 'rejected') expect(r.memory.deadLetters[0]?.reason).toBe(`rejected: ${outcome.reason}`);
      // Each is an expected outcome, told where it happened: never the central handler's bug line.
      expect(r.log.lines.some((l) => l.msg.startsWith('Handling general error'))).toBe(false);
    });
  }

  it('could not start for want of a resource: retried until it starts, not counted as an attempt', async () => {
    const r = rig({
      pipeline: { restartAttempts: 1 },
      executor: new FakeExecutor((_h, nth) => ({
        latencyMs: 0,
        outcome: nth <= 3 ? notRestarted('could not start: EMFILE', 'EMFILE') : undefined,
      })),
    });
    const id = r.publish('cattle-aaaa');
    const out = track(r.pipeline.handle(await pullOne(r), live()));
    await vi.advanceTimersByTimeAsync(5_000);
    expect(await out.promise).toBe('acked');
    expect(r.executor.calls).toHaveLength(4);
    expect(r.memory.records.get(id)).toMatchObject({ restarted: true, restartAttempts: 1 });
    expect(r.counters.tally).toMatchObject({ retries: 3, restart_failed: 0 });
  });
});

describe('withRestartTimings', () => {
  function recording(): { metrics: Metrics; labels: (string | undefined)[] } {
    const labels: (string | undefined)[] = [];
    const metrics: Metrics = {
      increment: () => undefined,
      gauge: () => undefined,
      timing: (name, _ms, outcome) => void (name === 'restart_duration' && labels.push(outcome)),
      close: () => Promise.resolve(),
    };
    return { metrics, labels };
  }

  it('labels each call by its outcome and passes the outcome on unchanged', async () => {
    const outcomes = [
      RESTARTED,
      notRestarted('exit 3'),
      notRestarted('EMFILE', 'EMFILE'),
      rejected('404'),
      cancelled('shutdown'),
      outcomeUnknown('timeout'),
      outcomeUnknown('shutdown mid-request', true),
    ];
    const { metrics, labels } = recording();
    let i = 0;
    const timed = withRestartTimings({ restart: () => Promise.resolve(outcomes[i++]!) }, metrics);
    for (const o of outcomes) expect(await timed.restart('h', live())).toBe(o);
    expect(labels).toEqual(['restarted', 'failed', 'failed', 'rejected', 'cancelled', 'unknown', 'unknown']);
  });

  it('times a rejection (a bug) as unknown and passes the very error on', async () => {
    const { metrics, labels } = recording();
    const bug = new TypeError('x is undefined');
    const timed = withRestartTimings({ restart: () => Promise.reject(bug) }, metrics);
    await expect(timed.restart('h', live())).rejects.toBe(bug);
    expect(labels).toEqual(['unknown']);
  });
});
