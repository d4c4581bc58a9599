/** The in-memory broker's lease semantics, on fake time (its clock is Date.now). */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MemoryBroker } from '../../src/brokers/memory.js';
import { backlogSource } from '../../src/brokers/open.js';
import type { Delivery } from '../../src/core/contracts.js';
import { Counters } from '../../src/core/counters.js';
import { noopMetrics } from '../../src/metrics/noop.js';
import { summarize } from '../../src/run-report.js';

vi.setConfig({ testTimeout: 5_000 });

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

const live = (): AbortSignal => new AbortController().signal;
const text = (d: Delivery): string => new TextDecoder().decode(d.data);

function broker(ackDeadlineMs = 1000): MemoryBroker {
  return new MemoryBroker({ ackDeadlineMs, now: () => Date.now() });
}

async function pullOne(b: MemoryBroker): Promise<Delivery> {
  const [d] = await b.pull(1, live());
  if (!d) throw new Error('nothing pulled');
  return d;
}

describe('MemoryBroker', () => {
  it('delivers in publish order, at most max per pull, with delivery count 1', async () => {
    const b = broker();
    for (const p of ['a', 'b', 'c']) b.publishSync(p);
    const first = await b.pull(2, live());
    expect(first.map(text)).toEqual(['a', 'b']);
    expect(first.map((d) => d.deliveryCount)).toEqual([1, 1]);
    expect((await b.pull(5, live())).map(text)).toEqual(['c']);
    expect(b.stats()).toMatchObject({ published: 3, ready: 0, leased: 3 });
  });

  it('redelivers when a lease expires, with a higher delivery count', async () => {
    const b = broker(1000);
    b.publishSync('a');
    await pullOne(b);
    await vi.advanceTimersByTimeAsync(999);
    expect(b.stats()).toMatchObject({ ready: 0, leased: 1, expired: 0 });
    await vi.advanceTimersByTimeAsync(2);
    expect(b.stats()).toMatchObject({ ready: 1, leased: 0, expired: 1 });
    const again = await pullOne(b);
    expect(again.deliveryCount).toBe(2);
    expect(text(again)).toBe('a');
  });

  it('an extension restarts the full lease', async () => {
    const b = broker(1000);
    b.publishSync('a');
    const d = await pullOne(b);
    await vi.advanceTimersByTimeAsync(800);
    await d.extend();
    await vi.advanceTimersByTimeAsync(900);
    expect(b.stats()).toMatchObject({ leased: 1, expired: 0 });
    await vi.advanceTimersByTimeAsync(101);
    expect(b.stats()).toMatchObject({ leased: 0, expired: 1, ready: 1 });
  });

  it('expires leases in expiry order even after extensions reorder them', async () => {
    const b = broker(1000);
    b.publishSync('a');
    b.publishSync('b');
    const [da] = await b.pull(2, live());
    await vi.advanceTimersByTimeAsync(500);
    await da!.extend();
    await vi.advanceTimersByTimeAsync(501);
    expect(b.stats().expired).toBe(1);
    expect(text(await pullOne(b))).toBe('b');
    await vi.advanceTimersByTimeAsync(500);
    expect(b.stats().expired).toBe(2);
  });

  it('nack(0) redelivers at once; nack(delay) only after the delay', async () => {
    const b = broker(10_000);
    b.publishSync('now');
    b.publishSync('later');
    const [now, later] = await b.pull(2, live());
    await now!.nack(0);
    await later!.nack(500);
    expect(b.stats()).toMatchObject({ ready: 1, delayed: 1, leased: 0, nacked: 2 });
    const redelivered = await pullOne(b);
    expect([text(redelivered), redelivered.deliveryCount]).toEqual(['now', 2]);
    await vi.advanceTimersByTimeAsync(499);
    expect(b.stats()).toMatchObject({ ready: 0, delayed: 1 });
    await vi.advanceTimersByTimeAsync(1);
    expect(b.stats()).toMatchObject({ ready: 1, delayed: 0 });
    expect((await pullOne(b)).deliveryCount).toBe(2);
  });

  it('ignores a stale handle: after expiry, the old delivery can neither ack, nack nor extend the new one', async () => {
    const b = broker(1000);
    b.publishSync('a');
    const stale = await pullOne(b);
    await vi.advanceTimersByTimeAsync(1001);
    const fresh = await pullOne(b);
    await stale.ack();
    await stale.nack(0);
    await stale.deadLetter('stale');
    expect(b.stats()).toMatchObject({ acked: 0, nacked: 0, deadLettered: 0, leased: 1, ready: 0 });
    await vi.advanceTimersByTimeAsync(500);
    await stale.extend();
    await vi.advanceTimersByTimeAsync(501);
    // The stale extension did not keep the fresh lease alive.
    expect(b.stats()).toMatchObject({ expired: 2, ready: 1 });
    const third = await pullOne(b);
    expect(third.deliveryCount).toBe(3);
    await fresh.ack();
    expect(b.stats().acked).toBe(0);
    await third.ack();
    expect(b.stats()).toMatchObject({ acked: 1, leased: 0, ready: 0 });
  });

  it('settles a delivery only once', async () => {
    const b = broker();
    b.publishSync('a');
    const d = await pullOne(b);
    await d.ack();
    await d.nack(0);
    await d.ack();
    expect(b.stats()).toMatchObject({ acked: 1, nacked: 0, ready: 0, leased: 0 });
  });

  it('keeps dead letters with their reason and delivery count, and never redelivers them', async () => {
    const b = broker(1000);
    b.publishSync('a');
    await (await pullOne(b)).nack(0);
    await (await pullOne(b)).deadLetter('gave up');
    expect(b.deadLetters).toHaveLength(1);
    expect(b.deadLetters[0]).toMatchObject({ reason: 'gave up', deliveries: 2 });
    await vi.advanceTimersByTimeAsync(5000);
    expect(b.stats()).toMatchObject({ deadLettered: 1, ready: 0, leased: 0, expired: 0 });
  });

  it('a pull waits for a publish, and resolves [] when its signal aborts or the broker closes', async () => {
    const b = broker();
    const waiting = b.pull(10, live());
    b.publishSync('a');
    expect((await waiting).map(text)).toEqual(['a']);

    const stop = new AbortController();
    const aborted = b.pull(10, stop.signal);
    stop.abort();
    expect(await aborted).toEqual([]);

    const closing = b.pull(10, live());
    await b.close();
    expect(await closing).toEqual([]);
    expect(() => b.publishSync('b')).toThrow(/closed/);
  });

  it('after close, messages nacked earlier and still waiting out their delay stay countable', async () => {
    const b = broker(10_000);
    for (const p of ['a', 'b', 'c']) b.publishSync(p);
    const [a, d2, c] = await b.pull(3, live());
    await a!.nack(5000);
    await b.close();
    await d2!.nack(5000);
    await c!.ack();
    expect(b.stats()).toMatchObject({ ready: 2, delayed: 0, leased: 0, acked: 1, nacked: 2 });
  });
});

describe('the local-publisher capability', () => {
  it('is what the service feeds, and what it holds is what the summary and the backlog gauge count', async () => {
    const b = new MemoryBroker({ ackDeadlineMs: 1000, maxBacklog: 10 });
    const local = b.localPublisher();
    expect(local.maxBacklog).toBe(10);
    local.publishSync('{"a":1}', 'm-1');
    local.publishSync('{"a":2}', 'm-2');
    const [d] = await b.pull(1, new AbortController().signal);
    expect(d).toBeDefined();
    expect(backlogSource(b)?.()).toBe(1);
    const summary = summarize(new Counters(noopMetrics), { reason: 'test', ms: 1, inFlight: 1, broker: b });
    expect(summary.leftInBroker).toBe(2);
  });

  it('is absent on a broker outside this process: no publisher, nothing counted as left', () => {
    const elsewhere = { ackDeadlineMs: 1000, pull: () => Promise.resolve([]), close: () => Promise.resolve() };
    expect(backlogSource(elsewhere)).toBeUndefined();
    const summary = summarize(new Counters(noopMetrics), { reason: 'test', ms: 1, inFlight: 0, broker: elsewhere });
    expect(summary.leftInBroker).toBeUndefined();
  });
});
