/**
 * The consumer (flow control, the central exception handler, pull failures) and the shutdown
 * order, on fake time with the memory broker and memory storage.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Broker, Delivery, Metrics } from '../../src/core/contracts.js';
import { Consumer, nackOnHandlerError, type ConsumerParts } from '../../src/core/consumer.js';
import type { HandleEnd, Outcome } from '../../src/core/pipeline.js';
import { shutdown } from '../../src/core/shutdown.js';
import { RESTARTED } from '../../src/core/restart-outcome.js';
import { FakeExecutor, noopMetrics, rig, track, wrapDelivery, type Rig } from '../pipeline-harness.js';

vi.setConfig({ testTimeout: 5_000 });

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

/** Metrics that remember the highest in_flight gauge. */
function gaugeWatcher(): Metrics & { maxInFlight: number } {
  const m = {
    ...noopMetrics,
    maxInFlight: 0,
    gauge: (_n: 'in_flight', v: number) => {
      m.maxInFlight = Math.max(m.maxInFlight, v);
    },
  };
  return m;
}

function running(
  r: Rig,
  consumer: Consumer,
): { stop: AbortController; cancel: AbortController; done: ReturnType<typeof track<void>>; outcomes: Outcome[] } {
  const stop = new AbortController();
  const cancel = new AbortController();
  const outcomes: Outcome[] = [];
  consumer.onSettled = (o) => outcomes.push(o);
  return { stop, cancel, done: track(consumer.run(stop.signal, cancel.signal)), outcomes };
}

describe('flow control', () => {
  it('never has more than maxInFlight in flight, and pulls again as soon as room frees', async () => {
    const metrics = gaugeWatcher();
    // cattle-h0 is quick; the rest take 1 s.
    const r = rig({
      metrics,
      executor: new FakeExecutor((host) => ({ latencyMs: host.startsWith('cattle-h0.') ? 50 : 1000 })),
    });
    for (let i = 0; i < 10; i++) r.publish(`cattle-h${i}`);
    const consumer = r.consumer({ maxInFlight: 3, pullBatch: 10 });
    const t0 = Date.now();
    const run = running(r, consumer);

    await vi.advanceTimersByTimeAsync(0);
    expect(consumer.inFlight).toBe(3);
    expect(r.executor.active).toBe(3);
    expect(r.broker.stats()).toMatchObject({ ready: 7, leased: 3 });

    await vi.advanceTimersByTimeAsync(50);
    // h0 is done; one more was pulled at once.
    expect(r.counters.tally.acked).toBe(1);
    expect(consumer.inFlight).toBe(3);
    expect(r.executor.calls.map((c) => c.at - t0)).toEqual([0, 0, 0, 50]);

    await vi.advanceTimersByTimeAsync(4000);
    expect(r.counters.tally.acked).toBe(10);
    expect(run.outcomes).toEqual(Array(10).fill('acked'));
    expect(consumer.inFlight).toBe(0);
    expect(r.executor.maxActive).toBe(3);
    expect(metrics.maxInFlight).toBe(3);

    run.stop.abort();
    await run.done.promise;
  });

  it('a burst of instant messages never starves timers: the pull loop returns to the event loop between batches', async () => {
    // Real timers: the question is what the event loop does. Zero-latency restarts and memory storage
    // settle every message in microtasks, so without a turn between batches nothing else would run.
    vi.useRealTimers();
    const instant = new FakeExecutor();
    instant.restart = () => Promise.resolve(RESTARTED); // no timer at all: like the mock at --restart-latency 0
    const r = rig({ executor: instant });
    for (let i = 0; i < 5000; i++) r.publish(`cattle-b${i}`);
    const consumer = r.consumer({ maxInFlight: 100, pullBatch: 100 });
    const run = running(r, consumer);
    const ackedWhenTimerRan = await new Promise<number>((resolve) =>
      setTimeout(() => resolve(r.counters.tally.acked), 0),
    );
    expect(ackedWhenTimerRan).toBeLessThan(1000);
    await new Promise<void>((resolve) => {
      const check = (): void => void (r.counters.tally.acked === 5000 ? resolve() : setTimeout(check, 5));
      check();
    });
    run.stop.abort();
    await run.done.promise;
  });

  it('waits on an empty broker and handles what is published later', async () => {
    const r = rig({ executor: new FakeExecutor(() => ({ latencyMs: 10 })) });
    const consumer = r.consumer();
    const run = running(r, consumer);
    await vi.advanceTimersByTimeAsync(1000);
    expect(r.counters.tally.pulled).toBe(0);
    r.publish('cattle-late');
    await vi.advanceTimersByTimeAsync(10);
    expect(run.outcomes).toEqual(['acked']);
    run.stop.abort();
    await run.done.promise;
  });
});

describe('the central exception handler', () => {
  it('logs an error escaping the pipeline with the message id and nacks the message; the redelivery does not restart again', async () => {
    const r = rig({ executor: new FakeExecutor(() => ({ latencyMs: 10 })) });
    const id = r.publish('cattle-aaaa');
    // A broker that refuses the first ack: the error escapes the pipeline after the restart was recorded.
    let refused = false;
    const broker: Broker = {
      ackDeadlineMs: r.broker.ackDeadlineMs,
      close: () => r.broker.close(),
      pull: async (max, signal) =>
        (await r.broker.pull(max, signal)).map((d): Delivery =>
          refused
            ? d
            : wrapDelivery(d, {
                ack: () => {
                  refused = true;
                  return Promise.reject(new Error('broker refused the ack'));
                },
              }),
        ),
    };
    const consumer = new Consumer({
      broker,
      pipeline: r.pipeline,
      counters: r.counters,
      logger: r.log.logger,
      onHandlerError: nackOnHandlerError(r.log.logger, r.counters),
      maxInFlight: 10,
      pullBatch: 10,
    });
    const run = running(r, consumer);

    await vi.advanceTimersByTimeAsync(10);
    const errors = r.log.lines.filter((l) => l.msg === 'Handling general error: broker refused the ack');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ level: 50, messageId: id });
    expect(r.broker.stats().nacked).toBe(1);

    await vi.advanceTimersByTimeAsync(10);
    expect(run.outcomes).toEqual(['acked']);
    expect(r.executor.calls).toHaveLength(1);
    expect(r.counters.tally).toMatchObject({ restart_skipped: 1, pulled: 2, nacked: 1 });
    expect(r.broker.stats()).toMatchObject({ acked: 1, leased: 0, ready: 0 });
    expect(r.memory.records.get(id)).toMatchObject({ acked: true, restarted: true, saved: true });
    run.stop.abort();
    await run.done.promise;
  });

  it('keeps the delivery in flight until the handler has nacked it', async () => {
    const r = rig();
    r.publish('cattle-aaaa');
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const handler = vi.fn((_err: unknown, d: Delivery) => gate.then(() => d.nack(0)));
    const failing = {
      storageHealth: r.pipeline.storageHealth,
      brokerHealth: r.pipeline.brokerHealth,
      holdIntake: () => undefined,
      start: (delivery: Delivery, _signal: AbortSignal, onEnd: (end: HandleEnd) => void) =>
        queueMicrotask(() =>
          onEnd({ delivery, startedAt: performance.now(), outcome: undefined, error: new Error('bug in a handler') }),
        ),
    } as unknown as ConsumerParts['pipeline'];
    const consumer = new Consumer({
      broker: r.broker,
      pipeline: failing,
      counters: r.counters,
      logger: r.log.logger,
      onHandlerError: handler,
      maxInFlight: 10,
      pullBatch: 10,
    });
    const stop = new AbortController();
    const done = track(consumer.run(stop.signal, new AbortController().signal));
    await vi.advanceTimersByTimeAsync(0);
    stop.abort();
    await done.promise;
    expect(handler).toHaveBeenCalledTimes(1);
    expect(consumer.inFlight).toBe(1);
    const drained = track(consumer.drained());
    await vi.advanceTimersByTimeAsync(0);
    expect(drained.settled).toBe(false);
    release();
    await drained.promise;
    expect(consumer.inFlight).toBe(0);
    expect(r.broker.stats().nacked).toBe(1);
  });
});

describe('pull failures', () => {
  it('back off and pull again; one failure is not an outage (debug detail, no error line)', async () => {
    const r = rig({ executor: new FakeExecutor(() => ({ latencyMs: 10 })) });
    r.publish('cattle-aaaa');
    let failures = 1;
    const broker: Broker = {
      ackDeadlineMs: r.broker.ackDeadlineMs,
      close: () => r.broker.close(),
      pull: (max, signal) =>
        failures-- > 0 ? Promise.reject(new Error('connection reset')) : r.broker.pull(max, signal),
    };
    const consumer = new Consumer({
      broker,
      pipeline: r.pipeline,
      counters: r.counters,
      logger: r.log.logger,
      onHandlerError: nackOnHandlerError(r.log.logger, r.counters),
      maxInFlight: 10,
      pullBatch: 10,
    });
    const run = running(r, consumer);
    await vi.advanceTimersByTimeAsync(0);
    expect(r.counters.tally.pulled).toBe(0);
    await vi.advanceTimersByTimeAsync(210);
    expect(run.outcomes).toEqual(['acked']);
    expect(r.log.lines.filter((l) => l.level >= 40)).toEqual([]);
    run.stop.abort();
    await run.done.promise;
  });

  it('a broker out for 30 s: one line when it goes bad, a summary every 10 s, one line when it is back', async () => {
    const r = rig({ executor: new FakeExecutor(() => ({ latencyMs: 10 })) });
    r.publish('cattle-aaaa');
    const t0 = Date.now();
    const pullTimes: number[] = [];
    const broker: Broker = {
      ackDeadlineMs: r.broker.ackDeadlineMs,
      close: () => r.broker.close(),
      pull: (max, signal) => (
        pullTimes.push(Date.now() - t0),
        Date.now() - t0 < 30_000 ? Promise.reject(new Error('connection refused')) : r.broker.pull(max, signal)
      ),
    };
    const consumer = new Consumer({
      broker,
      pipeline: r.pipeline,
      counters: r.counters,
      logger: r.log.logger,
      onHandlerError: nackOnHandlerError(r.log.logger, r.counters),
      maxInFlight: 10,
      pullBatch: 10,
    });
    const run = running(r, consumer);
    await vi.advanceTimersByTimeAsync(36_000);
    expect(run.outcomes).toEqual(['acked']);
    // The pause between failed pulls grows (doubling from 200 ms) up to 5 s, then stays there.
    const gaps = pullTimes.slice(1).map((t, k) => t - pullTimes[k]!);
    expect(gaps.slice(0, 8)).toEqual([200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
    const lines = r.log.lines.filter((l) => l.dependency === 'broker');
    expect(lines.map((l) => [l.level, l.msg.replace(/[\d.]+ s\b/g, 'N s').replace(/\d+ calls/g, 'N calls')])).toEqual([
      [50, 'Broker unavailable for N s (connection refused); pulls and settles retried until it recovers'],
      [
        40,
        'Broker still unavailable after N s: N calls failed, 0 waiting, 0 messages in flight; pulls and settles retried',
      ],
      [
        40,
        'Broker still unavailable after N s: N calls failed, 0 waiting, 0 messages in flight; pulls and settles retried',
      ],
      [30, 'Broker available again after N s (N calls failed meanwhile); resuming'],
    ]);
    run.stop.abort();
    await run.done.promise;
  });
});

describe('a database out', () => {
  it('pauses intake: nothing more is pulled while it is down; in-flight messages wait, extended, and finish after', async () => {
    const down = { until: 0 };
    const failing = <T>(op: () => Promise<T>): Promise<T> =>
      Date.now() < down.until ? Promise.reject(new Error('database is locked')) : op();
    const r = rig({
      executor: new FakeExecutor(() => ({ latencyMs: 500 })),
      storage: (m) => ({
        ...m,
        claimRestart: (...a) => failing(() => m.claimRestart(...a)),
        saveMessage: (...a) => failing(() => m.saveMessage(...a)),
        markRestarted: (...a) => failing(() => m.markRestarted(...a)),
        releaseRestart: (...a) => failing(() => m.releaseRestart(...a)),
        markAcked: (...a) => failing(() => m.markAcked(...a)),
        markFailed: (...a) => failing(() => m.markFailed(...a)),
        deadLetter: (...a) => failing(() => m.deadLetter(...a)),
      }),
    });
    for (let i = 0; i < 40; i++) r.publish(`cattle-d${i}`);
    const consumer = r.consumer({ maxInFlight: 100, pullBatch: 100 });
    const run = running(r, consumer);
    await vi.advanceTimersByTimeAsync(200);
    expect(consumer.inFlight).toBe(40);
    // The database goes away for 20 s, with 40 messages in flight and room for 60 more.
    down.until = Date.now() + 20_000;
    await vi.advanceTimersByTimeAsync(3000);
    expect(r.pipeline.storageHealth.down).toBe(true);
    // New work arrives meanwhile: intake is paused, so it stays in the broker, not leased to us
    // (but for the one that answers the pull already waiting when the database went down).
    for (let i = 40; i < 100; i++) r.publish(`cattle-d${i}`);
    await vi.advanceTimersByTimeAsync(15_000);
    expect(r.broker.stats()).toMatchObject({ ready: 59, leased: 41, nacked: 0, acked: 0 });
    expect(consumer.inFlight).toBe(41);
    await vi.advanceTimersByTimeAsync(30_000);
    expect(run.outcomes).toEqual(Array(100).fill('acked'));
    // Every ack went out after its record: all rows are acked, restarted and saved.
    expect([...r.memory.records.values()].filter((x) => x.acked && x.restarted && x.saved)).toHaveLength(100);
    // Saves and claims waited for the database like the records did: nothing nacked for the outage.
    expect(r.broker.stats()).toMatchObject({ acked: 100, nacked: 0 });
    // One line when it went bad, a summary every 10 s, one when it came back; per-message lines at debug only.
    const db = r.log.lines.filter((l) => l.dependency === 'database');
    // (20 s out: one or two summaries, as recovery is seen by the next retry after it.)
    expect(db.map((l) => l.level)).toEqual(db.length === 3 ? [50, 40, 30] : [50, 40, 40, 30]);
    expect(db[0]?.msg).toMatch(
      /^Database unavailable for [\d.]+ s \(database is locked\); intake paused, records retried until it recovers$/,
    );
    expect(db.at(-1)?.msg).toMatch(/^Database available again after/);
    expect(r.log.lines.filter((l) => l.level >= 40 && l.dependency === undefined).length).toBeLessThanOrEqual(10);
    run.stop.abort();
    await run.done.promise;
  });
});

describe('shutdown', () => {
  function shutdownRig(
    latencyMs: number,
    messages: number,
  ): { r: Rig; consumer: Consumer; run: ReturnType<typeof running> } {
    const r = rig({ executor: new FakeExecutor(() => ({ latencyMs })) });
    for (let i = 0; i < messages; i++) r.publish(`cattle-s${i}`);
    const consumer = r.consumer({ maxInFlight: 10, pullBatch: 10 });
    return { r, consumer, run: running(r, consumer) };
  }

  it('lets in-flight messages finish within the grace period', async () => {
    const { r, consumer, run } = shutdownRig(100, 5);
    await vi.advanceTimersByTimeAsync(0);
    const t0 = Date.now();
    const stopped = track(
      shutdown({
        logger: r.log.logger,
        graceMs: 1000,
        stopPulling: run.stop,
        cancelInFlight: run.cancel,
        pullingStopped: run.done.promise,
        consumer,
        broker: r.broker,
        storage: r.storage,
        metrics: noopMetrics,
      }),
    );
    await vi.advanceTimersByTimeAsync(100);
    await stopped.promise;
    expect(Date.now() - t0).toBe(100);
    expect(run.cancel.signal.aborted).toBe(false);
    expect(r.broker.stats()).toMatchObject({ acked: 5, nacked: 0, leased: 0 });
  });

  it('after the grace period cancels the rest, which nack themselves, then closes broker and storage in that order', async () => {
    const { r, consumer, run } = shutdownRig(10_000, 5);
    await vi.advanceTimersByTimeAsync(0);
    expect(consumer.inFlight).toBe(5);
    const order: string[] = [];
    const broker: Broker = {
      ackDeadlineMs: r.broker.ackDeadlineMs,
      pull: (m, s) => r.broker.pull(m, s),
      close: () => {
        order.push(`broker closed, ${r.broker.stats().nacked} nacked`);
        return r.broker.close();
      },
    };
    const storage = {
      ...r.storage,
      close: () => {
        order.push('storage closed');
        return r.storage.close();
      },
    };
    const metrics = {
      ...noopMetrics,
      close: () => {
        order.push('metrics flushed');
        return Promise.resolve();
      },
    };
    const stopped = track(
      shutdown({
        logger: r.log.logger,
        graceMs: 200,
        stopPulling: run.stop,
        cancelInFlight: run.cancel,
        pullingStopped: run.done.promise,
        consumer,
        broker,
        storage,
        metrics,
      }),
    );
    await vi.advanceTimersByTimeAsync(199);
    expect(run.cancel.signal.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await stopped.promise;
    expect(run.outcomes).toEqual(Array(5).fill('cancelled'));
    expect(order).toEqual(['broker closed, 5 nacked', 'storage closed', 'metrics flushed']);
    expect(consumer.inFlight).toBe(0);
    // Handed back, still countable after close.
    expect(r.broker.stats()).toMatchObject({ acked: 0, nacked: 5, ready: 5, leased: 0 });
    expect(r.log.messages()).toEqual(
      expect.arrayContaining([
        'Waiting up to 200 ms for 5 in-flight messages',
        'Nacking outstanding messages',
        'Cancelling 5 outstanding tasks',
      ]),
    );
  });
});
