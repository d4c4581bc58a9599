/**
 * Issue 23 in the pipeline: the restart's audit rows ride on its records (one transaction), a lost
 * `restarted` row is written by the redelivery (recovered), one in-doubt row per message; a restart
 * that could not start for want of a resource is retried until it runs, told once, never in doubt;
 * expected faults are not the central handler's "Handling general error".
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Delivery } from '../../src/core/contracts.js';
import { notRestarted, outcomeUnknown } from '../../src/core/restart-outcome.js';
import { FakeExecutor, rig, track } from '../pipeline-harness.js';

vi.setConfig({ testTimeout: 5_000 });

const live = (): AbortSignal => new AbortController().signal;

async function pullOne(r: ReturnType<typeof rig>): Promise<Delivery> {
  const [d] = await r.pullNow(1);
  if (!d) throw new Error('nothing to pull');
  return d;
}

async function rows(r: ReturnType<typeof rig>, messageId: string): Promise<string[]> {
  const all = await r.control.readAudit({ limit: 1000 });
  return all
    .filter((e) => e.messageId === messageId)
    .reverse()
    .map((e) => `${e.outcome}${e.reason.startsWith('recovered') ? ' (recovered)' : ''}`);
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('the audit rows of a restart ride on its records', () => {
  it('a restart is recorded with its restarted row: neither is written without the other', async () => {
    let acks = 0;
    const r = rig({
      storage: (memory) => ({
        ...memory,
        // The ack record (which carries the restart) fails once: no row may appear before it is written.
        markAcked: (record) =>
          ++acks === 1 ? Promise.reject(new Error('database is locked')) : memory.markAcked(record),
      }),
    });
    const id = r.publish('cattle-aaaa');
    const out = track(r.pipeline.handle(await pullOne(r), live()));
    await vi.advanceTimersByTimeAsync(101);
    expect(acks).toBe(1);
    expect(r.memory.records.get(id)).toMatchObject({ restarted: false });
    expect(await rows(r, id)).toEqual([]);
    await vi.advanceTimersByTimeAsync(1000);
    expect(await out.promise).toBe('acked');
    expect(r.memory.records.get(id)).toMatchObject({ restarted: true, restartAudited: true });
    expect(await rows(r, id)).toEqual(['restarted']);
  });

  it('a redelivery that finds the restart done but its row lost writes the row, recovered', async () => {
    const r = rig();
    const id = r.publish('cattle-aaaa');
    // What an instance killed between its record and its (separately batched) audit row left behind.
    await r.memory.claimRestart({ messageId: id, instanceName: 'cattle-aaaa', publishedAt: 1 }, 1, 'claim');
    await r.memory.markRestarted(id, 1);
    const out = track(r.pipeline.handle(await pullOne(r), live()));
    await vi.advanceTimersByTimeAsync(50);
    expect(await out.promise).toBe('acked');
    expect(r.executor.calls).toEqual([]);
    expect(await rows(r, id)).toEqual(['already-done', 'restarted (recovered)']);
    // Another redelivery finds it audited: no second restarted row.
    r.broker.publishSync(
      JSON.stringify({ messageId: id, instanceName: 'cattle-aaaa', publishedAt: new Date().toISOString() }),
    );
    const again = track(r.pipeline.handle(await pullOne(r), live()));
    await vi.advanceTimersByTimeAsync(50);
    expect(await again.promise).toBe('acked');
    expect(await rows(r, id)).toEqual(['already-done', 'restarted (recovered)', 'already-done']);
  });

  it('one in-doubt row per message, however many deliveries find it in doubt', async () => {
    const r = rig({
      executor: new FakeExecutor(() => ({ latencyMs: 10, outcome: outcomeUnknown('ran past 10ms and was killed') })),
      pipeline: { maxDeliveries: 10 },
    });
    const id = r.publish('cattle-aaaa');
    const first = track(r.pipeline.handle(await pullOne(r), live()));
    await vi.advanceTimersByTimeAsync(50);
    expect(await first.promise).toBe('nacked');
    // Each later delivery finds it in doubt; the first of them has its ack fail, so it comes again.
    for (let i = 0; i < 3; i++) {
      await vi.advanceTimersByTimeAsync(10_000);
      const d = await pullOne(r);
      const out = track(r.pipeline.handle(d, live()));
      await vi.advanceTimersByTimeAsync(50);
      expect(await out.promise).toBe('acked');
      if (i < 2) r.broker.publishSync(JSON.stringify({ messageId: id, instanceName: 'cattle-aaaa', publishedAt: 1 }));
    }
    expect(r.executor.calls).toHaveLength(1);
    expect((await rows(r, id)).filter((o) => o === 'in-doubt')).toHaveLength(1);
    // A timeout is an expected fault, told where it happened: not the central handler's bug line.
    expect(r.log.lines.some((l) => l.msg.startsWith('Handling general error'))).toBe(false);
    expect(r.log.lines.filter((l) => l.msg.includes('ended without saying whether it happened'))).toHaveLength(1);
  });
});

describe('a restart that could not start for want of a resource', () => {
  it('is retried with backoff until it runs (not one of its attempts), told once, never in doubt', async () => {
    const r = rig({
      executor: new FakeExecutor((_host, nth) =>
        nth <= 6 ? { latencyMs: 0, outcome: notRestarted('could not start: EMFILE', 'EMFILE') } : { latencyMs: 10 },
      ),
      pipeline: { restartAttempts: 2 },
    });
    const ids = [r.publish('cattle-aaaa'), r.publish('cattle-bbbb')];
    const outs = (await r.pullNow(2)).map((d) => track(r.pipeline.handle(d, live())));
    await vi.advanceTimersByTimeAsync(20_000);
    for (const o of outs) expect(await o.promise).toBe('acked');
    for (const id of ids) {
      expect(r.memory.records.get(id)).toMatchObject({ restarted: true, restartAttempts: 1 });
      expect(await rows(r, id)).toEqual(['restarted']);
    }
    expect(r.counters.tally.restart_failed).toBe(0);
    const told = r.log.lines.filter((l) => l.msg.includes('could not start: EMFILE'));
    expect(told).toHaveLength(1);
    expect(told[0]!.msg).toContain('Restart executor (mock)');
    expect(r.log.lines.some((l) => l.msg.startsWith('Retrying for failure to restart'))).toBe(false);
    expect(r.log.lines.some((l) => /leaving it in doubt|Restart of .* is in doubt/.test(l.msg))).toBe(false);
    r.pipeline.close();
    expect(r.log.lines.filter((l) => l.msg.includes('starting again'))).toHaveLength(1);
  });
});
