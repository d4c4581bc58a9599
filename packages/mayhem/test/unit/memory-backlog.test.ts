/**
 * The memory broker's bounded backlog (`--max-backlog`): a publisher faster than the consumer
 * waits for room instead of growing memory without limit (issue 8 item 6, issue 9 item 5).
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MemoryBroker } from '../../src/brokers/memory.js';
import { seededRandom } from '../../src/core/timing.js';
import { runSimulatedPublisher } from '../../src/publisher/simulated.js';
import { openMemoryStorage } from '../../src/storage/memory/storage.js';
import { FakeExecutor, rig, track } from '../pipeline-harness.js';
import { auditRow } from '../storage-contract.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

const never = new AbortController().signal;

describe('MemoryBroker with maxBacklog', () => {
  it('holds at most maxBacklog; publishSync refuses more; waitForRoom says when to wait', async () => {
    const b = new MemoryBroker({ ackDeadlineMs: 1000, maxBacklog: 10, now: () => Date.now() });
    for (let i = 0; i < 10; i++) {
      expect(b.waitForRoom()).toBeUndefined();
      b.publishSync(`m${i}`);
    }
    expect(b.backlog).toBe(10);
    expect(() => b.publishSync('one too many')).toThrow(/backlog is full \(10 messages\)/);
    const room = track(b.waitForRoom() as Promise<void>);
    // Leasing does not make room (a leased message is still held): settling does.
    const leased = await b.pull(10, never);
    expect(b.backlog).toBe(10);
    // Low water is 9 (a tenth of the bound below it): one ack wakes the publisher.
    await leased[0]?.ack();
    await vi.advanceTimersByTimeAsync(0);
    expect(room.settled).toBe(true);
    expect(b.waitForRoom()).toBeUndefined();
    b.publishSync('fits again');
    expect(b.backlog).toBe(10);
  });

  it('wakes waiting publishers once, at the low-water mark, not per settled message', async () => {
    const b = new MemoryBroker({ ackDeadlineMs: 1000, maxBacklog: 100, now: () => Date.now() });
    for (let i = 0; i < 100; i++) b.publishSync(`m${i}`);
    const room = track(b.waitForRoom() as Promise<void>);
    const leased = await b.pull(100, never);
    for (let i = 0; i < 9; i++) await leased[i]?.ack();
    await vi.advanceTimersByTimeAsync(0);
    expect(room.settled).toBe(false);
    await leased[9]?.deadLetter('bad');
    await vi.advanceTimersByTimeAsync(0);
    expect(room.settled).toBe(true);
    expect(b.backlog).toBe(90);
  });

  it('nacks and lease expiries hand messages back without counting them twice', async () => {
    const b = new MemoryBroker({ ackDeadlineMs: 100, maxBacklog: 3, now: () => Date.now() });
    for (const p of ['a', 'b', 'c']) b.publishSync(p);
    const [a, bb] = await b.pull(2, never);
    await a?.nack(50);
    await vi.advanceTimersByTimeAsync(200); // b's lease expires; a comes back
    expect(bb).toBeDefined();
    expect(b.stats()).toMatchObject({ ready: 3, leased: 0, delayed: 0 });
    expect(b.backlog).toBe(3);
    expect(b.waitForRoom()).toBeInstanceOf(Promise);
  });

  it('closing, or the caller giving up, releases a waiting publisher', async () => {
    const b = new MemoryBroker({ ackDeadlineMs: 1000, maxBacklog: 1, now: () => Date.now() });
    b.publishSync('x');
    const stop = new AbortController();
    const byAbort = track(b.waitForRoom(stop.signal) as Promise<void>);
    const byClose = track(b.waitForRoom() as Promise<void>);
    stop.abort();
    await vi.advanceTimersByTimeAsync(0);
    expect(byAbort.settled).toBe(true);
    expect(byClose.settled).toBe(false);
    await b.close();
    await vi.advanceTimersByTimeAsync(0);
    expect(byClose.settled).toBe(true);
  });

  it('publish() waits for room', async () => {
    const b = new MemoryBroker({ ackDeadlineMs: 1000, maxBacklog: 1, now: () => Date.now() });
    await b.publish('first');
    const second = track(b.publish('second'));
    await vi.advanceTimersByTimeAsync(0);
    expect(second.settled).toBe(false);
    const [d] = await b.pull(1, never);
    await d?.ack();
    await second.promise;
    expect(b.stats()).toMatchObject({ published: 2, ready: 1 });
  });

  it('without maxBacklog it is unbounded (benchmarks pre-fill it)', () => {
    const b = new MemoryBroker({ ackDeadlineMs: 1000 });
    for (let i = 0; i < 50_000; i++) b.publishSync('x');
    expect(b.waitForRoom()).toBeUndefined();
  });
});

describe('the simulated publisher against a slow consumer', () => {
  it.each([0, 5000])(
    'at --publish-rate %d the backlog never exceeds its bound and publishing keeps pace with consuming',
    async (rate) => {
      // 20 in flight, each restart 1 s: the consumer settles about 20 messages a second.
      const r = rig({ executor: new FakeExecutor(() => ({ latencyMs: 1000 })), maxBacklog: 200 });
      const consumer = r.consumer({ maxInFlight: 20, pullBatch: 20 });
      let peak = 0;
      const stop = new AbortController();
      // Wired as service.ts wires it; publishSync throws if the publisher ever ignored the bound.
      const published = runSimulatedPublisher(
        (payload, id) => {
          r.broker.publishSync(payload, id);
          peak = Math.max(peak, r.broker.backlog);
        },
        { rate, count: undefined, random: seededRandom(7), waitForRoom: (signal) => r.broker.waitForRoom(signal) },
        stop.signal,
      );
      const running = consumer.run(stop.signal, new AbortController().signal);
      await vi.advanceTimersByTimeAsync(10_000);
      stop.abort();
      const n = await published;
      await running;
      expect(peak).toBe(200);
      expect(r.counters.tally.acked).toBeGreaterThanOrEqual(150);
      // Published = settled + what the broker holds, and that is never more than the bound.
      expect(n - r.counters.tally.acked - r.counters.tally.dead_lettered).toBeLessThanOrEqual(200);
    },
  );
});

describe('memory: storage keeps a bounded number of settled records (a long run stays flat)', () => {
  it('drops the oldest settled records beyond maxSettled, never one still in flight', async () => {
    const storage = openMemoryStorage({ maxSettled: 3 });
    const request = (id: string) => ({ messageId: id, instanceName: 'cattle-a', publishedAt: 0 });
    await storage.saveMessage(request('in-flight'), 1);
    for (let i = 0; i < 10; i++) {
      await storage.saveMessage(request(`m${i}`), 1);
      await storage.markAcked({
        messageId: `m${i}`,
        extensions: 0,
        attempts: 1,
        restartDone: true,
        audit: [auditRow(`m${i}`, 'restarted')],
      });
    }
    expect([...storage.records.keys()]).toEqual(['in-flight', 'm7', 'm8', 'm9']);
    expect(await storage.claimRestart(request('m9'), 2, 'look')).toBe('done');
    for (let i = 0; i < 10; i++)
      await storage.deadLetter({ payload: `bad ${i}`, reason: 'malformed: x', deliveries: 1 });
    expect(storage.deadLetters.length).toBeLessThanOrEqual(6);
    expect(storage.deadLetters.at(-1)?.payload).toBe('bad 9');
  });

  it('keeps everything without maxSettled (tests and benchmarks inspect the records)', async () => {
    const storage = openMemoryStorage();
    for (let i = 0; i < 1000; i++) await storage.markAcked({ messageId: `m${i}`, extensions: 0, attempts: 1 });
    expect(storage.records.size).toBe(1000);
  });
});
