/**
 * The central exception handler (`nackOnHandlerError`) under hostile conditions: a poison message,
 * a message whose handling fails on every delivery, and errors and deliveries that throw at every
 * turn. One bad message must never stop the service.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Broker, DeadLetter, Delivery } from '../../src/core/contracts.js';
import { Consumer, nackOnHandlerError } from '../../src/core/consumer.js';
import { Counters } from '../../src/core/counters.js';
import type { Outcome } from '../../src/core/pipeline.js';
import { capturingLogger, FakeExecutor, noopMetrics, rig, track, wrapDelivery } from '../pipeline-harness.js';

vi.setConfig({ testTimeout: 5_000 });

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('one poison message never stops the consumer', () => {
  it('the payload that crash-looped every instance (issue 9) is dead-lettered as malformed; the messages behind it are acked', async () => {
    const r = rig({ executor: new FakeExecutor(() => ({ latencyMs: 10 })) });
    r.broker.publishSync('{"messageId":"x1","instanceName":{"toString":1},"publishedAt":"2026-01-01T00:00:00Z"}');
    for (let i = 0; i < 5; i++) r.publish(`cattle-good${i}`);
    const consumer = r.consumer();
    const outcomes: Outcome[] = [];
    consumer.onSettled = (o) => outcomes.push(o);
    const stop = new AbortController();
    const running = track(consumer.run(stop.signal, new AbortController().signal));
    await vi.advanceTimersByTimeAsync(100);
    expect(running.settled).toBe(false);
    expect(outcomes.filter((o) => o === 'acked')).toHaveLength(5);
    expect(r.broker.deadLetters.map((d) => d.reason)).toEqual([
      "malformed: instanceName must be a host name (letters, digits, '-' and dots), got an object",
    ]);
    stop.abort();
    await running.promise;
  });

  it('a message whose handling throws on every delivery is dead-lettered on delivery maxDeliveries; the service keeps going', async () => {
    const r = rig({ executor: new FakeExecutor(() => ({ latencyMs: 10 })) });
    const poison = r.publish('cattle-poison');
    const good = [r.publish('cattle-good1'), r.publish('cattle-good2')];
    // The broker refuses every ack of the poison message: that error escapes the pipeline each time.
    const broker: Broker = {
      ackDeadlineMs: r.broker.ackDeadlineMs,
      close: () => r.broker.close(),
      pull: async (max, signal) =>
        (await r.broker.pull(max, signal)).map((d): Delivery => {
          const id = (JSON.parse(Buffer.from(d.data).toString('utf8')) as { messageId: string }).messageId;
          return id !== poison
            ? d
            : wrapDelivery(d, { ack: () => Promise.reject(new Error('broker refused the ack')) });
        }),
    };
    const dead: DeadLetter[] = [];
    const handler = nackOnHandlerError(r.log.logger, r.counters, {
      nackDelayMs: (n) => 100 * n,
      maxDeliveries: 3,
      recordDeadLetter: (entry) => r.storage.deadLetter(entry).then(() => void dead.push(entry)),
    });
    const consumer = new Consumer({
      broker,
      pipeline: r.pipeline,
      counters: r.counters,
      logger: r.log.logger,
      onHandlerError: handler,
      maxInFlight: 10,
      pullBatch: 10,
    });
    const stop = new AbortController();
    const running = track(consumer.run(stop.signal, new AbortController().signal));

    await vi.advanceTimersByTimeAsync(2_000);
    expect(running.settled).toBe(false);
    // Deliveries 1 and 2 were nacked back (100 ms, 200 ms), delivery 3 dead-lettered; never a 4th.
    const errors = r.log.lines.filter((l) => l.msg === 'Handling general error: broker refused the ack');
    expect(errors.map((l) => l.delivery)).toEqual([1, 2, 3]);
    expect(errors.every((l) => l.messageId === poison)).toBe(true);
    expect(r.broker.deadLetters).toMatchObject([
      { reason: 'gave up after 3 deliveries: broker refused the ack', deliveries: 3 },
    ]);
    expect(dead).toMatchObject([
      {
        request: { messageId: poison, instanceName: 'cattle-poison' },
        reason: 'gave up after 3 deliveries: broker refused the ack',
        deliveries: 3,
      },
    ]);
    expect(r.log.lines.filter((l) => l.msg === 'Dead-lettered a message whose handling failed 3 times')).toMatchObject([
      { level: 50, messageId: poison },
    ]);
    expect(r.counters.tally).toMatchObject({ dead_lettered: 1, nacked: 2, acked: 2 });
    // Restarted once; the redeliveries found the restart recorded and did not restart again.
    expect(r.executor.calls.filter((c) => c.host === 'cattle-poison.example.net')).toHaveLength(1);
    for (const id of good) expect(r.memory.records.get(id)).toMatchObject({ acked: true });
    expect(r.broker.stats()).toMatchObject({ ready: 0, leased: 0, delayed: 0 });
    stop.abort();
    await running.promise;
  });

  it('a dead letter the storage cannot record still parks the message at the broker (logged)', async () => {
    const r = rig();
    r.broker.publishSync('whatever');
    const [d] = await r.pullNow();
    const handler = nackOnHandlerError(r.log.logger, r.counters, {
      maxDeliveries: 1,
      recordDeadLetter: () => Promise.reject(new Error('database is locked')),
    });
    await handler(new Error('bug'), d as Delivery);
    expect(r.broker.stats()).toMatchObject({ deadLettered: 1, nacked: 0 });
    expect(r.log.lines.find((l) => l.msg.startsWith('Could not record the dead letter'))).toMatchObject({
      err: 'database is locked',
    });
  });
});

describe('the central handler itself never throws and never rejects', () => {
  function hostileDelivery(o: {
    data?: boolean;
    count?: boolean;
    nack?: 'throw' | 'reject';
    deadLetter?: 'throw' | 'reject';
  }): Delivery & { nacks: number } {
    const d = {
      nacks: 0,
      get data(): Uint8Array {
        if (o.data === true) throw new Error('data getter exploded');
        return new TextEncoder().encode('{"messageId":"m1","instanceName":"cattle-a","publishedAt":0}');
      },
      get deliveryCount(): number {
        if (o.count === true) throw new Error('count getter exploded');
        return 9;
      },
      extend: () => Promise.resolve(),
      ack: () => Promise.resolve(),
      nack: (): Promise<void> => {
        d.nacks += 1;
        if (o.nack === 'throw') throw new Error('nack threw');
        return o.nack === 'reject' ? Promise.reject(new Error('nack rejected')) : Promise.resolve();
      },
      deadLetter: (): Promise<void> => {
        if (o.deadLetter === 'throw') throw new Error('dead-letter threw');
        return o.deadLetter === 'reject' ? Promise.reject(new Error('dead-letter rejected')) : Promise.resolve();
      },
    };
    return d;
  }

  const unprintable = Object.create(null) as object; // String() of it throws
  const cases: [string, unknown, Parameters<typeof hostileDelivery>[0]][] = [
    ['an error String() cannot print', unprintable, {}],
    [
      'an error whose message getter throws',
      Object.defineProperty(new Error('x'), 'message', {
        get() {
          throw new Error('no');
        },
      }),
      {},
    ],
    ['a delivery whose data getter throws', new Error('bug'), { data: true }],
    ['a delivery whose deliveryCount getter throws', new Error('bug'), { count: true }],
    ['a nack that throws synchronously', new Error('bug'), { nack: 'throw' }],
    ['a nack that rejects', new Error('bug'), { nack: 'reject' }],
    ['a dead-letter that throws, then a nack that rejects', new Error('bug'), { deadLetter: 'throw', nack: 'reject' }],
  ];

  it.each(cases)('%s', async (_name, error, o) => {
    const log = capturingLogger();
    const counters = new Counters(noopMetrics);
    const handler = nackOnHandlerError(log.logger, counters, {
      maxDeliveries: o.deadLetter !== undefined ? 1 : 100,
      nackDelayMs: () => {
        throw new Error('delay exploded');
      },
    });
    const d = hostileDelivery(o);
    let result: Promise<void> | undefined;
    expect(() => {
      result = handler(error, d);
    }).not.toThrow();
    await expect(result).resolves.toBeUndefined();
    expect(d.nacks).toBe(1);
    expect(log.lines.some((l) => l.msg.startsWith('Handling general error: '))).toBe(true);
  });
});
