/**
 * The safety rails in the pipeline, on fake time with the memory broker and storage: each rail
 * decides before any executor runs, what it decides is recorded in the audit trail, and a deferral
 * is a nack with the rail's delay (nothing failed), a skip an ack with the reason recorded.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { HostFilter, RestartWindow } from '../../src/core/policy.js';
import type { Delivery } from '../../src/core/contracts.js';
import { outcomeUnknown } from '../../src/core/restart-outcome.js';
import type { RailCheck, Rails } from '../../src/core/rails.js';
import { ShadowControl } from '../../src/core/shadow-control.js';
import { FakeExecutor, rig, track } from '../pipeline-harness.js';

vi.setConfig({ testTimeout: 5_000 });

const live = (): AbortSignal => new AbortController().signal;

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(Date.parse('2026-11-30T10:00:00Z')); // a Monday, 10:00 UTC
});
afterEach(() => {
  vi.useRealTimers();
});

async function pullOne(r: ReturnType<typeof rig>): Promise<Delivery> {
  const [d] = await r.pullNow(1);
  if (!d) throw new Error('nothing to pull');
  return d;
}

describe('--allow-hosts / --deny-hosts', () => {
  it('a denied host is acked as skipped, recorded with the rule, audited, never restarted', async () => {
    const r = rig({ rails: { hosts: new HostFilter(['cattle-*'], ['cattle-db*']) } });
    const id = r.publish('cattle-db01');
    const out = track(r.pipeline.handle(await pullOne(r), live()));
    await vi.advanceTimersByTimeAsync(10);
    expect(await out.promise).toBe('acked');
    expect(r.executor.calls).toHaveLength(0);
    expect(r.memory.records.get(id)).toMatchObject({
      acked: true,
      restarted: false,
      restartClaimed: 0,
      skipReason: 'denied by policy: cattle-db01.example.net matches --deny-hosts cattle-db*',
    });
    expect(r.control.entries).toMatchObject([
      {
        messageId: id,
        host: 'cattle-db01.example.net',
        outcome: 'skipped-denied',
        instance: 'test:1',
        executor: 'mock',
      },
    ]);
    expect(r.counters.tally.rail_skipped).toBe(1);
  });

  it('an allowed host restarts as usual, and the restart is audited', async () => {
    const r = rig({ rails: { hosts: new HostFilter(['cattle-*'], ['cattle-db*']) } });
    const id = r.publish('cattle-web1');
    const out = track(r.pipeline.handle(await pullOne(r), live()));
    await vi.advanceTimersByTimeAsync(100);
    expect(await out.promise).toBe('acked');
    expect(r.executor.calls).toHaveLength(1);
    expect(r.control.entries).toMatchObject([{ messageId: id, outcome: 'restarted', reason: '' }]);
  });
});

describe('--window', () => {
  it('outside the window: nacked with a delay until it opens (not a failure); restarted once it is open', async () => {
    const r = rig({ rails: { window: RestartWindow.parse('Mon-Fri 12:00-13:00 UTC') } });
    const id = r.publish('cattle-aaaa');
    const out = track(r.pipeline.handle(await pullOne(r), live()));
    await vi.advanceTimersByTimeAsync(10);
    expect(await out.promise).toBe('deferred');
    expect(r.executor.calls).toHaveLength(0);
    expect(r.memory.records.get(id)).toMatchObject({ restarted: false, restartClaimed: 0, lastError: null });
    expect(r.control.entries).toMatchObject([
      {
        outcome: 'deferred-outside-window',
        reason: 'outside the restart window Mon-Fri 12:00-13:00 UTC; it opens in 2h 0m',
      },
    ]);
    // Capped at an hour: redelivered at 11:00, deferred again, then at 12:00 it runs.
    expect(r.broker.stats()).toMatchObject({ nacked: 1, delayed: 1 });
    await vi.advanceTimersByTimeAsync(60 * 60_000);
    const again = track(r.pipeline.handle(await pullOne(r), live()));
    await vi.advanceTimersByTimeAsync(10);
    expect(await again.promise).toBe('deferred');
    await vi.advanceTimersByTimeAsync(60 * 60_000);
    const third = track(r.pipeline.handle(await pullOne(r), live()));
    await vi.advanceTimersByTimeAsync(100);
    expect(await third.promise).toBe('acked');
    expect(r.executor.calls).toHaveLength(1);
    expect(r.counters.tally.deferred).toBe(2);
  });
});

describe('--min-interval-per-host', () => {
  it('a second restart of a host within the interval waits (deferred until then), fleet state shared through storage', async () => {
    const r = rig({ rails: { minIntervalMs: 10 * 60_000 } });
    r.publish('cattle-aaaa');
    r.publish('cattle-aaaa');
    const [first, second] = await r.pullNow();
    const a = track(r.pipeline.handle(first!, live()));
    await vi.advanceTimersByTimeAsync(100);
    expect(await a.promise).toBe('acked');
    const b = track(r.pipeline.handle(second!, live()));
    await vi.advanceTimersByTimeAsync(10);
    expect(await b.promise).toBe('deferred');
    expect(r.control.entries.at(-1)?.outcome).toBe('deferred-too-soon');
    expect(r.control.entries.at(-1)?.reason).toMatch(
      /^cattle-aaaa\.example\.net was restarted \d+ ms ago; --min-interval-per-host is 10m$/,
    );
    expect(r.executor.calls).toHaveLength(1);
    // Redelivered once the interval has passed: restarted then.
    await vi.advanceTimersByTimeAsync(11 * 60_000);
    const c = track(r.pipeline.handle(await pullOne(r), live()));
    await vi.advanceTimersByTimeAsync(100);
    expect(await c.promise).toBe('acked');
    expect(r.executor.calls).toHaveLength(2);
  });

  it('with --on-limit skip, the second is acked as skipped instead', async () => {
    const r = rig({ rails: { minIntervalMs: 10 * 60_000, onLimit: 'skip' } });
    r.publish('cattle-aaaa');
    const second = r.publish('cattle-aaaa');
    const [d1, d2] = await r.pullNow();
    const a = track(r.pipeline.handle(d1!, live()));
    await vi.advanceTimersByTimeAsync(100);
    await a.promise;
    const b = track(r.pipeline.handle(d2!, live()));
    await vi.advanceTimersByTimeAsync(10);
    expect(await b.promise).toBe('acked');
    expect(r.memory.records.get(second)?.restarted).toBe(false);
    expect(r.memory.records.get(second)?.skipReason).toMatch(/--min-interval-per-host is 10m$/);
    expect(r.executor.calls).toHaveLength(1);
  });
});

describe('--max-concurrent-restarts', () => {
  it('never more restarts at once than the limit; the rest wait (deferred briefly) and all run in the end', async () => {
    const r = rig({ rails: { maxConcurrent: 2 }, executor: new FakeExecutor(() => ({ latencyMs: 1000 })) });
    for (let i = 0; i < 6; i++) r.publish(`cattle-c${i}`);
    const consumer = r.consumer({ maxInFlight: 10, pullBatch: 10 });
    const stop = new AbortController();
    const run = track(consumer.run(stop.signal, new AbortController().signal));
    await vi.advanceTimersByTimeAsync(30_000);
    expect(r.executor.maxActive).toBe(2);
    expect(r.counters.tally.acked).toBe(6);
    expect(r.counters.tally.deferred).toBeGreaterThan(0);
    expect(r.control.slotsTaken).toBe(0);
    stop.abort();
    await run.promise;
  });
});

describe('the kill switch (mayhem pause / resume)', () => {
  it('paused: new restarts are deferred, a retry does not start, a running restart finishes; resumed: all run', async () => {
    const r = rig({
      rails: {},
      executor: new FakeExecutor((host, nth) => ({
        latencyMs: 500,
        fail: host.startsWith('cattle-flaky') && nth === 1,
      })),
    });
    const running = r.publish('cattle-running');
    const flaky = r.publish('cattle-flaky');
    const [d1, d2] = await r.pullNow();
    const a = track(r.pipeline.handle(d1!, live()));
    const b = track(r.pipeline.handle(d2!, live()));
    await vi.advanceTimersByTimeAsync(100);
    await r.control.setPause({ by: 'ops@example', at: Date.now(), reason: 'incident 42' });
    const late = r.publish('cattle-late');
    const c = track(r.pipeline.handle(await pullOne(r), live()));
    await vi.advanceTimersByTimeAsync(1000);
    expect(await a.promise).toBe('acked'); // was already restarting
    expect(await b.promise).toBe('deferred'); // failed once, the retry did not start
    expect(await c.promise).toBe('deferred');
    expect(r.executor.calls.map((x) => x.host)).toEqual(['cattle-running.example.net', 'cattle-flaky.example.net']);
    expect(r.memory.records.get(flaky)).toMatchObject({ restartClaimed: 1, restartReleased: 1 });
    expect(
      r.control.entries
        .filter((e) => e.outcome === 'deferred-paused')
        .map((e) => e.messageId)
        .sort(),
    ).toEqual([flaky, late].sort());
    expect(r.control.entries.find((e) => e.messageId === late)?.reason).toMatch(
      /^restarts paused by ops@example at .*: incident 42$/,
    );
    await r.control.setPause(undefined);
    await vi.advanceTimersByTimeAsync(10_000);
    const rest = await r.pullNow();
    const outs = rest.map((d) => track(r.pipeline.handle(d, live())));
    await vi.advanceTimersByTimeAsync(1000);
    expect(await Promise.all(outs.map((o) => o.promise))).toEqual(['acked', 'acked']);
    expect(r.memory.records.get(running)).toMatchObject({ restarted: true });
  });
});

describe('leashed', () => {
  it('logs and audits what would be restarted, restarts nothing', async () => {
    const r = rig({ rails: { leashed: true } });
    const id = r.publish('cattle-aaaa');
    const out = track(r.pipeline.handle(await pullOne(r), live()));
    await vi.advanceTimersByTimeAsync(10);
    expect(await out.promise).toBe('acked');
    expect(r.executor.calls).toHaveLength(0);
    expect(r.control.entries).toMatchObject([{ messageId: id, outcome: 'leashed' }]);
  });
});

describe('the audit trail', () => {
  it('has a row per decision: restarted, failed, in doubt, already done', async () => {
    const r = rig({
      rails: {},
      pipeline: { restartAttempts: 1 },
      executor: new FakeExecutor((host) => ({
        latencyMs: 10,
        fail: host.startsWith('cattle-bad'),
        outcome: host.startsWith('cattle-odd') ? outcomeUnknown('ssh: connection reset') : undefined,
      })),
    });
    const ok = r.publish('cattle-good');
    const bad = r.publish('cattle-bad');
    const odd = r.publish('cattle-odd');
    const outs = (await r.pullNow()).map((d) => track(r.pipeline.handle(d, live())));
    await vi.advanceTimersByTimeAsync(100);
    expect(await Promise.all(outs.map((o) => o.promise))).toEqual(['acked', 'nacked', 'nacked']);
    const byId = new Map(r.control.entries.map((e) => [e.messageId, e]));
    expect(byId.get(ok)).toMatchObject({ outcome: 'restarted' });
    expect(byId.get(bad)).toMatchObject({ outcome: 'failed', reason: 'Could not restart cattle-bad.example.net' });
    expect(byId.get(odd)).toMatchObject({
      outcome: 'in-doubt',
      reason: 'ended without saying whether it happened: ssh: connection reset',
    });
    const recent = await r.control.readAudit({ limit: 2 });
    expect(recent.map((e) => e.messageId)).toEqual(
      [...r.control.entries]
        .reverse()
        .slice(0, 2)
        .map((e) => e.messageId),
    );
  });
});

describe('intake while the rails hold it', () => {
  it('paused: nothing is pulled (the broker keeps it), one line each way; resumed within half a second', async () => {
    const r = rig({ rails: {} });
    await r.control.setPause({ by: 'ops', at: Date.now(), reason: '' });
    const consumer = r.consumer({ maxInFlight: 10, pullBatch: 10 });
    const stop = new AbortController();
    const run = track(consumer.run(stop.signal, new AbortController().signal));
    await vi.advanceTimersByTimeAsync(600);
    for (let i = 0; i < 3; i++) r.publish(`cattle-p${i}`);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(r.broker.stats()).toMatchObject({ ready: 3, leased: 0 });
    expect(consumer.hold?.kind).toBe('paused');
    await r.control.setPause(undefined);
    await vi.advanceTimersByTimeAsync(500);
    expect(r.counters.tally.pulled).toBe(3);
    await vi.advanceTimersByTimeAsync(1000);
    expect(r.counters.tally.acked).toBe(3);
    expect(r.log.lines.filter((l) => l.hold !== undefined).map((l) => l.msg)).toEqual([
      'Intake paused: restarts paused by ops',
      'Intake resumed',
    ]);
    stop.abort();
    await run.promise;
  });

  it('outside the window: nothing is pulled until it opens', async () => {
    const r = rig({ rails: { window: RestartWindow.parse('Mon-Fri 10:30-11:00 UTC') } });
    for (let i = 0; i < 3; i++) r.publish(`cattle-w${i}`);
    const consumer = r.consumer({ maxInFlight: 10, pullBatch: 10 });
    const stop = new AbortController();
    const run = track(consumer.run(stop.signal, new AbortController().signal));
    await vi.advanceTimersByTimeAsync(29 * 60_000);
    expect(r.counters.tally.pulled).toBe(0);
    expect(r.log.messages()).toContain(
      'Intake paused: outside the restart window Mon-Fri 10:30-11:00 UTC (opens in 30m)',
    );
    await vi.advanceTimersByTimeAsync(2 * 60_000);
    expect(r.counters.tally.acked).toBe(3);
    stop.abort();
    await run.promise;
  });
});

describe('--max-restart-percent (blast radius)', () => {
  const inventory = ['a', 'b', 'c', 'd'].map((h) => `cattle-${h}.example.net`);

  it('at most floor(P × N) distinct hosts of the inventory per window: the rest wait until it has room', async () => {
    const r = rig({
      rails: { blast: { percent: 50, windowMs: 10 * 60_000, inventory, inventorySource: 'hosts.txt' } },
    });
    const ids = ['a', 'b', 'c', 'a'].map((h) => r.publish(`cattle-${h}`));
    for (const d of await r.pullNow()) {
      const out = track(r.pipeline.handle(d, live()));
      await vi.advanceTimersByTimeAsync(100);
      await out.promise;
    }
    const byId = new Map(r.control.entries.map((e) => [e.messageId, e]));
    expect(ids.map((id) => byId.get(id)?.outcome)).toEqual([
      'restarted',
      'restarted',
      'deferred-blast-radius',
      'restarted', // cattle-a is in the window already: it does not count twice
    ]);
    expect(byId.get(ids[2]!)?.reason).toBe(
      '2 of 4 hosts of the inventory hosts.txt were restarted in the last 10m; --max-restart-percent 50 allows 2',
    );
    // Redelivered once the oldest restart has left the window: then it runs.
    await vi.advanceTimersByTimeAsync(11 * 60_000);
    const c = track(r.pipeline.handle(await pullOne(r), live()));
    await vi.advanceTimersByTimeAsync(100);
    expect(await c.promise).toBe('acked');
    expect(r.control.entries.at(-1)).toMatchObject({ messageId: ids[2], outcome: 'restarted' });
  });

  it('without an inventory, the hosts seen in the window (the one decided included) are the whole; --on-limit skip acks it', async () => {
    const r = rig({ rails: { blast: { percent: 50, windowMs: 60_000 }, onLimit: 'skip' } });
    r.publish('cattle-a');
    const second = r.publish('cattle-b');
    for (const d of await r.pullNow()) {
      const out = track(r.pipeline.handle(d, live()));
      await vi.advanceTimersByTimeAsync(100);
      await out.promise;
    }
    expect(r.control.entries.map((e) => e.outcome)).toEqual(['restarted', 'skipped-blast-radius']);
    expect(r.memory.records.get(second)?.skipReason).toBe(
      '1 of 2 hosts seen in it were restarted in the last 60 s; --max-restart-percent 50 allows 1',
    );
  });
});

describe('one decision, traced: what each rail said', () => {
  it('the rails set are listed in order, up to the one that refused', async () => {
    const r = rig({ rails: { hosts: new HostFilter([], ['db-*']), minIntervalMs: 60_000, maxConcurrent: 1 } });
    const rails = r.rails;
    const trace: RailCheck[] = [];
    expect(await rails!.decide('web-1', Date.now(), trace)).toBeUndefined();
    expect(trace.map((t) => `${t.rail}:${t.verdict?.outcome ?? 'go'}`)).toEqual([
      'hosts:go',
      'pause:go',
      'interval:go',
      'concurrency:go',
    ]);
    trace.length = 0;
    await rails!.decide('web-2', Date.now(), trace);
    expect(trace.map((t) => `${t.rail}:${t.verdict?.outcome ?? 'go'}`)).toEqual([
      'hosts:go',
      'pause:go',
      'interval:go',
      'concurrency:deferred-busy',
    ]);
  });
});

describe("the fleet's settings change while running", () => {
  it('update(): the next decision follows the new rails; a slot taken before is given back where it came from', async () => {
    const r = rig({ rails: { maxConcurrent: 1 } });
    const rails = railsOf(r);
    expect(await rails.decide('web-1', Date.now())).toBeUndefined();
    expect(r.control.slotsTaken).toBe(1);
    rails.update({ ...rails.settings, maxConcurrent: 0, hosts: new HostFilter([], ['web-*']) });
    expect((await rails.decide('web-2', Date.now()))?.outcome).toBe('skipped-denied');
    rails.releaseSlot();
    expect(r.control.slotsTaken).toBe(0);
  });
});

describe('leashed, faithfully', () => {
  it('its own messages: the interval and the slots hold for restarts it would make, kept off the fleet state', async () => {
    const r = rig({
      rails: { leashed: true, minIntervalMs: 60_000, maxConcurrent: 1 },
      railsOptions: (control) => ({
        shadow: new ShadowControl(control, { restartMs: 5_000, now: Date.now, forwardAudit: true }),
      }),
    });
    const ids = ['cattle-a', 'cattle-b', 'cattle-a'].map((h) => r.publish(h));
    const outs = (await r.pullNow()).map((d) => track(r.pipeline.handle(d, live())));
    await vi.advanceTimersByTimeAsync(100);
    await Promise.all(outs.map((o) => o.promise));
    const byId = new Map(r.control.entries.map((e) => [e.messageId, e.outcome]));
    expect(ids.map((id) => byId.get(id))).toEqual(['leashed', 'deferred-busy', 'deferred-too-soon']);
    expect(r.executor.calls).toHaveLength(0);
    // Nothing of it reached the fleet's own state.
    expect(await r.control.lastRestart('cattle-a.example.net')).toBeUndefined();
    expect(r.control.slotsTaken).toBe(0);
  });

  it('a member of a shared-broker fleet (hold): takes nothing while leashed, intake paused; unleashed, it restarts', async () => {
    const r = rig({ rails: { leashed: true }, railsOptions: () => ({ leash: 'hold' }) });
    const rails = railsOf(r);
    const id = r.publish('cattle-a');
    const out = track(r.pipeline.handle(await pullOne(r), live()));
    await vi.advanceTimersByTimeAsync(10);
    expect(await out.promise).toBe('deferred');
    expect(r.control.entries).toMatchObject([{ messageId: id, outcome: 'deferred-leashed' }]);
    expect(r.pipeline.holdIntake()?.kind).toBe('leashed');
    rails.update({ ...rails.settings, leashed: false });
    expect(r.pipeline.holdIntake()).toBeUndefined();
    await vi.advanceTimersByTimeAsync(10_000);
    const again = track(r.pipeline.handle(await pullOne(r), live()));
    await vi.advanceTimersByTimeAsync(100);
    expect(await again.promise).toBe('acked');
    expect(r.executor.calls).toHaveLength(1);
  });
});

function railsOf(r: ReturnType<typeof rig>): Rails {
  if (r.rails === undefined) throw new Error('the rig has no rails');
  return r.rails;
}
