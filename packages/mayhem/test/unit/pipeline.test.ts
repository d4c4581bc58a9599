/**
 * The message pipeline on fake time: the memory broker (leases on Date.now), memory storage, a
 * scripted executor. Every delay below is exact because random() is 1 (backoff = its ceiling).
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Delivery, Storage } from '../../src/core/contracts.js';
import { outcomeUnknown, rejected } from '../../src/core/restart-outcome.js';
import { sleep } from '../../src/core/timing.js';
import type { MemoryStorage } from '../../src/storage/memory/storage.js';
import { FakeExecutor, failingSaves, rig, track, wrapDelivery } from '../pipeline-harness.js';

// Everything runs on fake time: a promise still pending is a failure to report fast, not to wait for.
vi.setConfig({ testTimeout: 5_000 });

const live = (): AbortSignal => new AbortController().signal;
const HOST_A = 'cattle-aaaa.example.net';

async function pullOne(r: ReturnType<typeof rig>): Promise<Delivery> {
  const [d] = await r.pullNow(1);
  if (!d) throw new Error('nothing to pull');
  return d;
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('ack only after restart and save both succeeded', () => {
  it('waits for a slow save after the restart is done', async () => {
    const slowSave = (memory: MemoryStorage): Storage => ({
      ...memory,
      saveMessage: (request, n, signal) => sleep(500).then(() => memory.saveMessage(request, n, signal)),
    });
    const r = rig({ storage: slowSave, executor: new FakeExecutor(() => ({ latencyMs: 300 })) });
    const id = r.publish('cattle-aaaa');
    const out = track(r.pipeline.handle(await pullOne(r), live()));

    await vi.advanceTimersByTimeAsync(300);
    expect(r.executor.calls[0]?.outcome).toBe('ok');
    expect(r.memory.records.get(id)?.restarted).toBe(true);
    expect(r.memory.records.get(id)?.saved ?? false).toBe(false);
    expect(out.settled).toBe(false);
    expect(r.broker.stats().acked).toBe(0);

    await vi.advanceTimersByTimeAsync(200);
    expect(await out.promise).toBe('acked');
    expect(r.broker.stats()).toMatchObject({ acked: 1, leased: 0, ready: 0 });
    expect(r.memory.records.get(id)).toMatchObject({ restarted: true, saved: true, acked: true });
    expect(r.log.messages()).toEqual([
      'Pulled cattle-aaaa',
      `Restarted ${HOST_A}`,
      'Saved cattle-aaaa into database',
      'Done. Acked cattle-aaaa',
    ]);
  });

  it('waits for a slow restart after the save is done', async () => {
    const r = rig({ executor: new FakeExecutor(() => ({ latencyMs: 300 })) });
    const id = r.publish('cattle-aaaa');
    const out = track(r.pipeline.handle(await pullOne(r), live()));

    await vi.advanceTimersByTimeAsync(299);
    expect(r.memory.records.get(id)).toMatchObject({ saved: true, restarted: false, acked: false });
    expect(out.settled).toBe(false);
    expect(r.broker.stats().acked).toBe(0);

    await vi.advanceTimersByTimeAsync(1);
    expect(await out.promise).toBe('acked');
    expect(r.broker.stats().acked).toBe(1);
    expect(r.memory.records.get(id)).toMatchObject({ saved: true, restarted: true, acked: true, restartAttempts: 1 });
  });
});

describe('deadline extension', () => {
  it('extends every extendEvery while in flight, records the count, and stops after settling', async () => {
    // The lease (1.5 s) is shorter than the restart (3.5 s): only the extensions keep it.
    const r = rig({
      ackDeadlineMs: 1500,
      pipeline: { extendEveryMs: 1000 },
      executor: new FakeExecutor(() => ({ latencyMs: 3500 })),
    });
    const id = r.publish('cattle-aaaa');
    const d = await pullOne(r);
    const extendedAt: number[] = [];
    const t0 = Date.now();
    const watched = wrapDelivery(d, { extend: () => (extendedAt.push(Date.now() - t0), d.extend()) });
    const out = track(r.pipeline.handle(watched, live()));

    await vi.advanceTimersByTimeAsync(3500);
    expect(await out.promise).toBe('acked');
    expect(extendedAt).toEqual([1000, 2000, 3000]);
    expect(r.memory.records.get(id)?.extensions).toBe(3);
    expect(r.counters.tally.extended).toBe(3);
    expect(r.broker.stats()).toMatchObject({ expired: 0, acked: 1 });
    expect(r.log.messages().filter((m) => m.startsWith('Extended deadline by 2 seconds for cattle-aaaa'))).toHaveLength(
      3,
    );

    await vi.advanceTimersByTimeAsync(10_000);
    expect(extendedAt).toHaveLength(3);
  });

  it('without extensions inside the deadline the lease expires (the control for the test above)', async () => {
    const r = rig({
      ackDeadlineMs: 1500,
      pipeline: { extendEveryMs: 5000 },
      executor: new FakeExecutor(() => ({ latencyMs: 3500 })),
    });
    r.publish('cattle-aaaa');
    const out = track(r.pipeline.handle(await pullOne(r), live()));
    await vi.advanceTimersByTimeAsync(3500);
    await out.promise;
    expect(r.broker.stats()).toMatchObject({ expired: 1, acked: 0, ready: 1 });
  });
});

describe('retries', () => {
  it('retries `not-restarted` up to restartAttempts with the backoff policy delays', async () => {
    const r = rig({ executor: new FakeExecutor((_h, nth) => ({ latencyMs: 10, fail: nth <= 2 })) });
    const id = r.publish('cattle-aaaa');
    const t0 = Date.now();
    const out = track(r.pipeline.handle(await pullOne(r), live()));

    await vi.advanceTimersByTimeAsync(329);
    expect(out.settled).toBe(false);
    expect(r.broker.stats().acked).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(await out.promise).toBe('acked');
    // fail at 10, wait 100 → 110; fail at 120, wait 200 → 320; ok at 330.
    expect(r.executor.calls.map((c) => c.at - t0)).toEqual([0, 110, 320]);
    expect(r.log.messages().filter((m) => m === `Retrying for failure to restart: ${HOST_A}`)).toHaveLength(2);
    expect(r.counters.tally).toMatchObject({ retries: 2, restart_failed: 2, restarted: 1, acked: 1 });
    expect(r.memory.records.get(id)).toMatchObject({ acked: true, restartAttempts: 3 });
  });

  it('nacks with the nack backoff once restart attempts are exhausted, and the broker redelivers after it', async () => {
    const r = rig({ executor: new FakeExecutor(() => ({ latencyMs: 10, fail: true })) });
    const id = r.publish('cattle-aaaa');
    const out = track(r.pipeline.handle(await pullOne(r), live()));

    await vi.advanceTimersByTimeAsync(330);
    expect(await out.promise).toBe('nacked');
    expect(r.executor.calls).toHaveLength(3);
    expect(r.broker.stats()).toMatchObject({ acked: 0, nacked: 1, delayed: 1, ready: 0 });
    expect(r.memory.records.get(id)).toMatchObject({
      acked: false,
      restarted: false,
      lastError: `Could not restart ${HOST_A}`,
      restartAttempts: 3,
    });

    await vi.advanceTimersByTimeAsync(999);
    expect(r.broker.stats().ready).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(r.broker.stats().ready).toBe(1);
    expect((await pullOne(r)).deliveryCount).toBe(2);
  });

  it('an executor that rejects has a bug: not retried, not taken for an outcome, handed to the central handler as it came', async () => {
    const bug = new TypeError('executor exploded');
    const r = rig({ executor: new FakeExecutor(() => ({ latencyMs: 10, throws: bug })) });
    const id = r.publish('cattle-aaaa');
    const out = track(r.pipeline.handle(await pullOne(r), live()));
    await vi.advanceTimersByTimeAsync(10);
    // The job ends with no outcome: what escaped is the executor's own error, for the central handler.
    await expect(out.promise).rejects.toBe(bug);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(r.executor.calls).toHaveLength(1);
    expect(r.counters.tally).toMatchObject({ retries: 0, restart_failed: 0, restarted: 0 });
    // No row of the outcome table: no failure recorded, no audit row; its claim stays, without an end.
    expect(r.memory.records.get(id)).toMatchObject({ restartClaimed: 1, restartReleased: 0, restarted: false });
    expect(r.memory.records.get(id)?.lastError).toBeNull();
    expect(r.control.entries.filter((e) => e.messageId === id)).toEqual([]);
    expect(r.log.lines.some((l) => l.msg.includes('ended without saying whether it happened'))).toBe(false);
    expect(r.log.lines.some((l) => l.msg.startsWith('Retrying for failure to restart'))).toBe(false);
  });

  it('an executor bug, thrown or rejected, is logged once by the central handler and nacked; the redelivery finds the restart in doubt and does not run it', async () => {
    for (const how of ['rejects', 'throws'] as const) {
      const r = rig({ executor: new FakeExecutor(() => ({ latencyMs: 10 })) });
      const fake = r.executor;
      // A restart() that throws before it returns a promise is the same bug as one that rejects.
      const real = fake.restart.bind(fake);
      let first = true;
      fake.restart = (host, signal) => {
        if (!first) return real(host, signal);
        first = false;
        void real(host, signal);
        if (how === 'throws') throw new Error('executor exploded');
        return Promise.reject(new Error('executor exploded'));
      };
      const id = r.publish('cattle-aaaa');
      const consumer = r.consumer();
      const settled: string[] = [];
      consumer.onSettled = (o) => settled.push(o);
      const stop = new AbortController();
      const running = track(consumer.run(stop.signal, new AbortController().signal));
      await vi.advanceTimersByTimeAsync(200);
      const bugLines = r.log.lines.filter((l) => l.msg === 'Handling general error: executor exploded');
      expect(bugLines, how).toHaveLength(1);
      expect(bugLines[0]).toMatchObject({ level: 50, messageId: id, delivery: 1 });
      // Nacked by the handler, redelivered, found in doubt: acked as such, the host not restarted again.
      expect(settled, how).toEqual(['acked']);
      expect(r.broker.stats(), how).toMatchObject({ nacked: 1, acked: 1 });
      expect(fake.callsFor(HOST_A), how).toHaveLength(1);
      expect(r.memory.records.get(id), how).toMatchObject({ restartInDoubt: true, restarted: false, acked: true });
      expect(
        r.control.entries.filter((e) => e.messageId === id).map((e) => e.outcome),
        how,
      ).toEqual(['in-doubt']);
      stop.abort();
      await running.promise;
    }
  });

  it('retries a failed save likewise and acks once it succeeds', async () => {
    const saves: number[] = [];
    const r = rig({ storage: failingSaves(2, saves), executor: new FakeExecutor(() => ({ latencyMs: 10 })) });
    const id = r.publish('cattle-aaaa');
    const t0 = Date.now();
    const out = track(r.pipeline.handle(await pullOne(r), live()));

    await vi.advanceTimersByTimeAsync(299);
    expect(out.settled).toBe(false);
    expect(r.broker.stats().acked).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(await out.promise).toBe('acked');
    expect(saves.map((t) => t - t0)).toEqual([0, 100, 300]);
    expect(r.counters.tally).toMatchObject({ save_failed: 2, retries: 2 });
    expect(r.log.messages().filter((m) => m === 'Retrying for failure to save cattle-aaaa')).toHaveLength(2);
    expect(r.memory.records.get(id)).toMatchObject({ saved: true, restarted: true, acked: true });
  });

  it('nacks when saves are exhausted, and the redelivery does not restart the host again', async () => {
    const r = rig({ storage: failingSaves(3), executor: new FakeExecutor(() => ({ latencyMs: 10 })) });
    const id = r.publish('cattle-aaaa');
    const first = track(r.pipeline.handle(await pullOne(r), live()));
    await vi.advanceTimersByTimeAsync(300);
    expect(await first.promise).toBe('nacked');
    expect(r.memory.records.get(id)).toMatchObject({
      restarted: true,
      saved: false,
      acked: false,
      lastError: `Could not save ${id}`,
    });

    await vi.advanceTimersByTimeAsync(1000);
    const again = await pullOne(r);
    expect(again.deliveryCount).toBe(2);
    expect(await r.pipeline.handle(again, live())).toBe('acked');
    expect(r.executor.calls).toHaveLength(1);
    expect(r.counters.tally.restart_skipped).toBe(1);
    expect(r.memory.records.get(id)).toMatchObject({ restarted: true, saved: true, acked: true });
  });
});

describe('cancellation', () => {
  it('nacks at once (delay 0) when the signal aborts mid-restart, and does not ack', async () => {
    const r = rig({ executor: new FakeExecutor(() => ({ latencyMs: 10_000 })) });
    const id = r.publish('cattle-aaaa');
    const cancel = new AbortController();
    const out = track(r.pipeline.handle(await pullOne(r), cancel.signal));
    await vi.advanceTimersByTimeAsync(500);
    expect(out.settled).toBe(false);

    cancel.abort(new DOMException('shutdown', 'AbortError'));
    expect(await out.promise).toBe('cancelled');
    expect(r.executor.calls[0]?.outcome).toBe('aborted');
    expect(r.broker.stats()).toMatchObject({ acked: 0, nacked: 1, ready: 1, delayed: 0, leased: 0 });
    expect(r.memory.records.get(id)).toMatchObject({ acked: false, restarted: false });
    expect(r.log.messages()).toContain('Cancelled; nacked cattle-aaaa back to the broker');
  });

  it('nacks at once when the signal aborts during a retry backoff', async () => {
    const r = rig({ executor: new FakeExecutor(() => ({ latencyMs: 10, fail: true })) });
    r.publish('cattle-aaaa');
    const cancel = new AbortController();
    const out = track(r.pipeline.handle(await pullOne(r), cancel.signal));
    await vi.advanceTimersByTimeAsync(50);
    cancel.abort(new DOMException('shutdown', 'AbortError'));
    expect(await out.promise).toBe('cancelled');
    expect(r.executor.calls).toHaveLength(1);
    expect(r.broker.stats()).toMatchObject({ nacked: 1, ready: 1, delayed: 0 });
  });

  it('a message waiting for its host is cancelled too', async () => {
    const r = rig({ executor: new FakeExecutor(() => ({ latencyMs: 10_000 })) });
    r.publish('cattle-aaaa');
    r.publish('cattle-aaaa');
    const [d1, d2] = await r.pullNow();
    const cancel = new AbortController();
    const outs = [track(r.pipeline.handle(d1!, cancel.signal)), track(r.pipeline.handle(d2!, cancel.signal))];
    await vi.advanceTimersByTimeAsync(100);
    expect(r.executor.calls).toHaveLength(1);
    cancel.abort(new DOMException('shutdown', 'AbortError'));
    expect(await Promise.all(outs.map((o) => o.promise))).toEqual(['cancelled', 'cancelled']);
    expect(r.executor.calls).toHaveLength(1);
    expect(r.broker.stats()).toMatchObject({ nacked: 2, ready: 2, leased: 0 });
    expect(r.hostGuard.size).toBe(0);
  });
});

describe('dead letters', () => {
  it('dead-letters a message that failed maxDeliveries deliveries: stored with its error, logged once', async () => {
    const r = rig({
      pipeline: { maxDeliveries: 3 },
      executor: new FakeExecutor(() => ({ latencyMs: 10, fail: true })),
    });
    const id = r.publish('cattle-aaaa');
    for (let delivery = 1; delivery <= 3; delivery++) {
      const d = await pullOne(r);
      expect(d.deliveryCount).toBe(delivery);
      const out = track(r.pipeline.handle(d, live()));
      await vi.advanceTimersByTimeAsync(330);
      expect(await out.promise).toBe(delivery < 3 ? 'nacked' : 'dead-lettered');
      await vi.advanceTimersByTimeAsync(1000 * 2 ** (delivery - 1));
    }
    expect(r.executor.calls).toHaveLength(9);
    expect(r.memory.deadLetters).toHaveLength(1);
    expect(r.memory.deadLetters[0]).toMatchObject({ deliveries: 3, request: { messageId: id } });
    expect(r.memory.deadLetters[0]?.reason).toMatch(/^gave up after 3 deliveries: Could not restart/);
    expect(r.memory.records.get(id)).toMatchObject({ deadLettered: true, acked: false });
    expect(r.broker.deadLetters).toHaveLength(1);
    expect(r.broker.stats()).toMatchObject({ deadLettered: 1, ready: 0, delayed: 0, leased: 0, nacked: 2 });
    expect(r.log.messages().filter((m) => m.startsWith('Dead-lettered'))).toEqual(['Dead-lettered cattle-aaaa']);
    expect(r.counters.tally.dead_lettered).toBe(1);
  });

  it('dead-letters malformed messages at once, without touching the executor', async () => {
    const r = rig();
    r.broker.publishSync('not json at all');
    r.broker.publishSync(JSON.stringify({ messageId: 'x1', publishedAt: 1 }));
    r.broker.publishSync('[1,2,3]');
    r.broker.publishSync(new Uint8Array([0xff, 0xfe, 0x00]));
    r.broker.publishSync(JSON.stringify({ messageId: 'x2', instanceName: 'cattle-ok', publishedAt: 'yesterday' }));
    const outcomes = await Promise.all((await r.pullNow()).map((d) => r.pipeline.handle(d, live())));
    expect(outcomes).toEqual(Array(5).fill('dead-lettered'));
    expect(r.executor.calls).toHaveLength(0);
    expect(r.memory.deadLetters).toHaveLength(5);
    expect(r.memory.deadLetters.every((d) => d.reason.startsWith('malformed: ') && d.deliveries === 1)).toBe(true);
    expect(r.broker.deadLetters).toHaveLength(5);
    expect(r.broker.stats()).toMatchObject({ leased: 0, ready: 0, deadLettered: 5 });
    expect(r.counters.tally).toMatchObject({ malformed: 5, dead_lettered: 5 });
    const lines = r.log.lines.filter((l) => l.msg.startsWith('Dead-lettered malformed message: '));
    expect(lines).toHaveLength(5);
    expect(lines.every((l) => l.level === 50)).toBe(true);
    expect(r.log.lines).toHaveLength(5);
  });
});

describe('redelivery', () => {
  it('does not restart a host twice when the lease expired mid-restart and the message was redelivered', async () => {
    // extendEvery deliberately longer than the lease: the lease expires while the restart runs.
    const r = rig({
      ackDeadlineMs: 1000,
      pipeline: { extendEveryMs: 5000 },
      executor: new FakeExecutor(() => ({ latencyMs: 1500 })),
    });
    const id = r.publish('cattle-aaaa');
    const first = track(r.pipeline.handle(await pullOne(r), live()));
    await vi.advanceTimersByTimeAsync(1001);
    expect(r.broker.stats()).toMatchObject({ expired: 1, ready: 1 });
    const d2 = await pullOne(r);
    expect(d2.deliveryCount).toBe(2);
    const second = track(r.pipeline.handle(d2, live()));

    await vi.advanceTimersByTimeAsync(499);
    await Promise.all([first.promise, second.promise]);
    expect(r.executor.calls).toHaveLength(1);
    expect(r.counters.tally.restart_skipped).toBe(1);
    expect(r.log.messages()).toContain(`Already restarted ${HOST_A} for this message; not restarting again`);
    // The first handle's ack was stale and ignored; the redelivery's ack settled it.
    expect(r.broker.stats()).toMatchObject({ acked: 1, leased: 0, ready: 0 });
    expect(r.memory.records.get(id)).toMatchObject({ restarted: true, saved: true, acked: true, deliveries: 2 });
  });
});

describe('per-host serialization', () => {
  it('never restarts one host twice at once, while different hosts run concurrently', async () => {
    const r = rig({ executor: new FakeExecutor(() => ({ latencyMs: 100 })) });
    const ids = [
      r.publish('cattle-aaaa'),
      r.publish('cattle-aaaa'),
      r.publish('cattle-bbbb'),
      r.publish('cattle-aaaa'),
    ];
    const t0 = Date.now();
    const outs = (await r.pullNow()).map((d) => track(r.pipeline.handle(d, live())));

    await vi.advanceTimersByTimeAsync(50);
    // The waiting messages are saved already: only the restart waits for the host.
    for (const id of ids) expect(r.memory.records.get(id)?.saved).toBe(true);
    expect(r.executor.active).toBe(2);

    await vi.advanceTimersByTimeAsync(250);
    expect(await Promise.all(outs.map((o) => o.promise))).toEqual(['acked', 'acked', 'acked', 'acked']);
    expect(r.executor.callsFor(HOST_A).map((c) => c.at - t0)).toEqual([0, 100, 200]);
    expect(r.executor.callsFor('cattle-bbbb.example.net').map((c) => c.at - t0)).toEqual([0]);
    expect(r.executor.maxActivePerHost).toBe(1);
    expect(r.executor.maxActive).toBe(2);
    expect(r.hostGuard.size).toBe(0);
  });
});

describe('dry run', () => {
  it('logs what it would restart, restarts nothing, records no restart, acks', async () => {
    const r = rig({ pipeline: { dryRun: true } });
    const id = r.publish('cattle-aaaa');
    expect(await r.pipeline.handle(await pullOne(r), live())).toBe('acked');
    expect(r.executor.calls).toHaveLength(0);
    expect(r.memory.records.get(id)).toMatchObject({ restarted: false, restartClaimed: 0, saved: true, acked: true });
    expect(r.log.messages()).toContain(`Leashed: would restart ${HOST_A}`);
    expect(r.counters.tally.leashed).toBe(1);
  });
});

describe('the ack record', () => {
  it('is written before the ack goes to the broker', async () => {
    const r = rig();
    const id = r.publish('cattle-aaaa');
    const d = await pullOne(r);
    let recordedWhenAcked: boolean | undefined;
    const watched = wrapDelivery(d, {
      ack: () => {
        recordedWhenAcked = r.memory.records.get(id)?.acked;
        return d.ack();
      },
    });
    const out = track(r.pipeline.handle(watched, live()));
    await vi.advanceTimersByTimeAsync(100); // the default restart latency
    expect(await out.promise).toBe('acked');
    expect(recordedWhenAcked).toBe(true);
    expect(r.broker.stats().acked).toBe(1);
  });

  it('that fails is retried until written, the lease extended meanwhile; only then the ack goes out', async () => {
    let failures = 0;
    const r = rig({
      ackDeadlineMs: 1500,
      pipeline: { extendEveryMs: 1000 },
      storage: (memory) => ({
        ...memory,
        // The database is out for ~5 s: every ack record fails until then.
        markAcked: (record) =>
          Date.now() < 5000 ? (failures++, Promise.reject(new Error('disk full'))) : memory.markAcked(record),
      }),
    });
    vi.setSystemTime(0);
    const id = r.publish('cattle-aaaa');
    const out = track(r.pipeline.handle(await pullOne(r), live()));
    await vi.advanceTimersByTimeAsync(4900);
    expect(failures).toBeGreaterThan(3);
    expect(out.settled).toBe(false);
    // Not acked, and still ours: the extensions kept the 1.5 s lease alive for 5 s.
    expect(r.broker.stats()).toMatchObject({ acked: 0, leased: 1, ready: 0 });
    expect(r.counters.tally.extended).toBeGreaterThanOrEqual(4);
    await vi.advanceTimersByTimeAsync(5000);
    expect(await out.promise).toBe('acked');
    expect(r.memory.records.get(id)).toMatchObject({ acked: true, restarted: true });
    expect(r.broker.stats()).toMatchObject({ acked: 1, leased: 0, ready: 0 });
    expect(r.log.messages()).not.toContain('Could not record the ack; acking anyway');
  });

  it('that carries the restart and cannot be written before shutdown: neither acked nor nacked (left to its lease)', async () => {
    const r = rig({ storage: (memory) => ({ ...memory, markAcked: () => Promise.reject(new Error('disk full')) }) });
    const id = r.publish('cattle-aaaa');
    const shutdown = new AbortController();
    const out = track(r.pipeline.handle(await pullOne(r), shutdown.signal));
    await vi.advanceTimersByTimeAsync(3000);
    expect(out.settled).toBe(false);
    shutdown.abort();
    await vi.advanceTimersByTimeAsync(5000);
    expect(await out.promise).toBe('unsettled');
    // Neither acked nor nacked: its lease ran out meanwhile, so the broker has it ready again.
    expect(r.broker.stats()).toMatchObject({ acked: 0, nacked: 0, leased: 0, ready: 1 });
    // The restart ran; its intent is recorded, so the redelivery finds it in doubt, never free.
    expect(r.memory.records.get(id)).toMatchObject({ restarted: false, restartClaimed: 1, acked: false });
    expect(r.counters.tally.unsettled).toBe(1);
    expect(r.hostGuard.size).toBe(0);
  });

  it('that carries no restart and cannot be written before shutdown: nacked back', async () => {
    const r = rig({
      executor: new FakeExecutor(() => ({ latencyMs: 10 })),
      storage: (memory) => ({
        ...memory,
        // Slow saves: the restart is recorded on its own first; then the ack record fails.
        saveMessage: (req, n, signal) => sleep(100).then(() => memory.saveMessage(req, n, signal)),
        markAcked: () => Promise.reject(new Error('disk full')),
      }),
    });
    const id = r.publish('cattle-aaaa');
    const shutdown = new AbortController();
    const out = track(r.pipeline.handle(await pullOne(r), shutdown.signal));
    await vi.advanceTimersByTimeAsync(3000);
    shutdown.abort();
    await vi.advanceTimersByTimeAsync(5000);
    expect(await out.promise).toBe('cancelled');
    expect(r.broker.stats()).toMatchObject({ acked: 0, nacked: 1 });
    expect(r.memory.records.get(id)).toMatchObject({ restarted: true, acked: false });
  });
});

describe('the restart record', () => {
  it('rides on the ack record when the save was done first: one record write, the host held until it is written', async () => {
    const restartRecords: string[] = [];
    let heldWhileRecording: number | undefined;
    const r = rig({
      storage: (memory) => ({
        ...memory,
        markRestarted: (id, attempts, signal, audit) => {
          restartRecords.push(id);
          return memory.markRestarted(id, attempts, signal, audit);
        },
        markAcked: (record) => {
          heldWhileRecording = r.hostGuard.size;
          return memory.markAcked(record);
        },
      }),
    });
    const id = r.publish('cattle-aaaa');
    const out = track(r.pipeline.handle(await pullOne(r), live()));
    await vi.advanceTimersByTimeAsync(100);
    expect(await out.promise).toBe('acked');
    expect(restartRecords).toEqual([]);
    expect(heldWhileRecording).toBe(1);
    expect(r.hostGuard.size).toBe(0);
    expect(r.memory.records.get(id)).toMatchObject({ restarted: true, saved: true, acked: true, restartAttempts: 1 });
  });
});

describe('a restart that happened', () => {
  it('is recorded even when shutdown cancels the message while that record is being retried', async () => {
    let restartRecords = 0;
    const r = rig({
      executor: new FakeExecutor(() => ({ latencyMs: 100 })),
      storage: (memory) => ({
        ...memory,
        // The save honours the signal and is slow, so the restart is recorded on its own.
        saveMessage: (request, n, signal) => sleep(1000, signal).then(() => memory.saveMessage(request, n, signal)),
        markRestarted: (id, attempts, signal, audit) =>
          ++restartRecords === 1
            ? Promise.reject(new Error('db hiccup'))
            : memory.markRestarted(id, attempts, signal, audit),
      }),
    });
    const id = r.publish('cattle-aaaa');
    const shutdown = new AbortController();
    const out = track(r.pipeline.handle(await pullOne(r), shutdown.signal));
    await vi.advanceTimersByTimeAsync(150); // restarted at 100, first record failed, retry due at 200
    expect(restartRecords).toBe(1);
    shutdown.abort();
    await vi.advanceTimersByTimeAsync(50);
    expect(await out.promise).toBe('cancelled');
    expect(restartRecords).toBe(2);
    expect(r.memory.records.get(id)).toMatchObject({ restarted: true, acked: false });
    expect(r.broker.stats()).toMatchObject({ nacked: 1, acked: 0 });
    expect(r.hostGuard.size).toBe(0);
  });
});

describe('an error escaping a step (a bug)', () => {
  it('ends the message with that error, gives its host back and stops extending', async () => {
    const bug = new TypeError('metrics bug');
    let thrown = 0;
    const r = rig({
      executor: new FakeExecutor(() => ({ latencyMs: 10 })),
      // Throws where the restart succeeded, the host held: a bug in a continuation, not a failure.
      metrics: {
        increment: (name) => {
          if (name === 'restarted' && ++thrown === 1) throw bug;
        },
        gauge: () => undefined,
        timing: () => undefined,
        close: () => Promise.resolve(),
      },
    });
    r.publish('cattle-aaaa');
    r.publish('cattle-aaaa');
    const [first, second] = await r.pullNow();
    const failed = track(r.pipeline.handle(first!, live()).catch((e: unknown) => e));
    const next = track(r.pipeline.handle(second!, live()));
    await vi.advanceTimersByTimeAsync(10);
    expect(await failed.promise).toBe(bug);
    // The host went back at once: the second message for it restarts without waiting for the first.
    await vi.advanceTimersByTimeAsync(10);
    expect(await next.promise).toBe('acked');
    expect(r.executor.callsFor(HOST_A)).toHaveLength(2);
    expect(r.hostGuard.size).toBe(0);
    // No extension timer is left behind for the message that escaped.
    const extended = r.counters.tally.extended;
    await vi.advanceTimersByTimeAsync(5000);
    expect(r.counters.tally.extended).toBe(extended);
  });
});

describe('the restart intent (never twice, even when a process dies mid-restart)', () => {
  it('is recorded before the executor runs', async () => {
    let claimedWhenRestarting: number | undefined;
    const executor = new FakeExecutor(() => ({ latencyMs: 10 }));
    const r = rig({ executor });
    const restart = executor.restart.bind(executor);
    executor.restart = (host, signal) => {
      claimedWhenRestarting = r.memory.records.get(id)?.restartClaimed;
      return restart(host, signal);
    };
    const id = r.publish('cattle-aaaa');
    const out = track(r.pipeline.handle(await pullOne(r), live()));
    await vi.advanceTimersByTimeAsync(10);
    expect(await out.promise).toBe('acked');
    expect(claimedWhenRestarting).toBe(1);
  });

  it('found without an outcome (its instance died mid-restart): not restarted again, acked, recorded in doubt', async () => {
    const r = rig();
    const id = r.publish('cattle-aaaa');
    // What a killed instance leaves: the message saved and its restart claimed by delivery 1, nothing more.
    const req = { messageId: id, instanceName: 'cattle-aaaa', publishedAt: Date.now() };
    await r.memory.claimRestart(req, 1, 'claim');
    await r.memory.saveMessage(req, 1);
    const out = track(r.pipeline.handle(await pullOne(r), live()));
    await vi.advanceTimersByTimeAsync(100);
    expect(await out.promise).toBe('acked');
    expect(r.executor.calls).toHaveLength(0);
    expect(r.counters.tally.restart_in_doubt).toBe(1);
    expect(r.memory.records.get(id)).toMatchObject({ restarted: false, restartInDoubt: true, acked: true });
    expect(r.log.lines.filter((l) => l.msg.startsWith('Restart of cattle-aaaa.example.net is in doubt'))).toMatchObject(
      [{ level: 40, messageId: id }],
    );
  });

  it('with inDoubt restart (at least once), an in-doubt restart runs again', async () => {
    const r = rig({ pipeline: { inDoubt: 'restart' } });
    const id = r.publish('cattle-aaaa');
    await r.memory.claimRestart({ messageId: id, instanceName: 'cattle-aaaa', publishedAt: 0 }, 1, 'claim');
    const out = track(r.pipeline.handle(await pullOne(r), live()));
    await vi.advanceTimersByTimeAsync(100);
    expect(await out.promise).toBe('acked');
    expect(r.executor.calls).toHaveLength(1);
    expect(r.memory.records.get(id)).toMatchObject({ restarted: true, restartInDoubt: false });
  });

  it('a restart that failed for sure is released: the redelivery restarts the host', async () => {
    const r = rig({
      pipeline: { restartAttempts: 1 },
      executor: new FakeExecutor((_h, nth) => ({ latencyMs: 10, fail: nth === 1 })),
    });
    const id = r.publish('cattle-aaaa');
    const first = track(r.pipeline.handle(await pullOne(r), live()));
    await vi.advanceTimersByTimeAsync(10);
    expect(await first.promise).toBe('nacked');
    expect(r.memory.records.get(id)).toMatchObject({ restartClaimed: 1, restartReleased: 1, restarted: false });
    await vi.advanceTimersByTimeAsync(1000); // the nack delay
    const again = track(r.pipeline.handle(await pullOne(r), live()));
    await vi.advanceTimersByTimeAsync(10);
    expect(await again.promise).toBe('acked');
    expect(r.executor.callsFor(HOST_A)).toHaveLength(2);
    expect(r.memory.records.get(id)).toMatchObject({ restarted: true, restartClaimed: 2 });
  });

  it('a restart that ended without saying whether it happened stays in doubt: the redelivery does not run it', async () => {
    const r = rig({
      executor: new FakeExecutor((_h, nth) => ({
        latencyMs: 10,
        outcome: nth === 1 ? outcomeUnknown('ssh: connection reset') : undefined,
      })),
    });
    const id = r.publish('cattle-aaaa');
    const first = track(r.pipeline.handle(await pullOne(r), live()));
    await vi.advanceTimersByTimeAsync(10);
    expect(await first.promise).toBe('nacked');
    expect(r.memory.records.get(id)).toMatchObject({ restartClaimed: 1, restartReleased: 0, restarted: false });
    await vi.advanceTimersByTimeAsync(1000);
    const again = track(r.pipeline.handle(await pullOne(r), live()));
    await vi.advanceTimersByTimeAsync(10);
    expect(await again.promise).toBe('acked');
    expect(r.executor.callsFor(HOST_A)).toHaveLength(1);
    expect(r.memory.records.get(id)).toMatchObject({ restartInDoubt: true, acked: true });
  });
});

describe('a restart the executor refuses for good (`rejected`)', () => {
  it('is not retried and is dead-lettered at once with the reason; its claim released', async () => {
    const r = rig({
      executor: new FakeExecutor(() => ({
        latencyMs: 10,
        outcome: rejected('HTTP 404 from the restart webhook: no such host'),
      })),
    });
    const id = r.publish('cattle-aaaa');
    const out = track(r.pipeline.handle(await pullOne(r), live()));
    await vi.advanceTimersByTimeAsync(10);
    expect(await out.promise).toBe('dead-lettered');
    expect(r.executor.calls).toHaveLength(1);
    expect(r.memory.deadLetters[0]?.reason).toBe('rejected: HTTP 404 from the restart webhook: no such host');
    expect(r.memory.records.get(id)).toMatchObject({
      deadLettered: true,
      restartClaimed: 1,
      restartReleased: 1,
      restarted: false,
    });
  });
});

describe('a messageId reused for another instance', () => {
  it('is dead-lettered at once as a conflict; the first record and its host are left alone', async () => {
    const r = rig();
    const id = r.publish('cattle-aaaa');
    const first = track(r.pipeline.handle(await pullOne(r), live()));
    await vi.advanceTimersByTimeAsync(100);
    expect(await first.promise).toBe('acked');
    const before = { ...r.memory.records.get(id) };
    r.publish('cattle-bbbb', id);
    const reused = track(r.pipeline.handle(await pullOne(r), live()));
    await vi.advanceTimersByTimeAsync(100);
    expect(await reused.promise).toBe('dead-lettered');
    expect(r.executor.callsFor('cattle-bbbb.example.net')).toHaveLength(0);
    expect({ ...r.memory.records.get(id), updatedAt: 0 }).toEqual({ ...before, updatedAt: 0 });
    expect(r.memory.deadLetters).toHaveLength(1);
    expect(r.memory.deadLetters[0]).toMatchObject({ request: undefined, deliveries: 1 });
    expect(r.memory.deadLetters[0]?.reason).toMatch(
      /^conflict: messageId "m-\d+" is already recorded for another instance; not restarting cattle-bbbb\.example\.net$/,
    );
    expect(r.counters.tally).toMatchObject({ conflict: 1, dead_lettered: 1 });
  });
});
