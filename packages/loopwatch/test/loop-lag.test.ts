// Loop-lag monitor (report kind `loop-lag`): figures per interval, stalls fed in, ELU as a delta,
// and the StatsD / Prometheus outputs over a real UDP socket and a real prom-client Registry.
import { afterEach, describe, expect, it } from 'vitest';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { Registry } from 'prom-client';
import { mergeFigures, type LoopLagMonitor } from '../src/instrument/loop-lag.js';
import { monitorLoopLagTo as monitorLoopLag } from '../src/loop-lag-outputs.js';
import { startStallWatchdog, type StallWatchdog } from '../src/instrument/watchdog.js';
import { importOptional } from '../src/sinks/statsd.js';
import { fieldsOf, type LoopLagFigures, type Report } from '../src/model/report.js';
import { reportMessage } from '../src/sinks/words.js';
import { runFixture } from './run-fixture.js';

function block(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

let lag: LoopLagMonitor | undefined;
let watchdog: StallWatchdog | undefined;
afterEach(async () => {
  lag?.stop();
  lag = undefined;
  await watchdog?.stop();
  watchdog = undefined;
});

describe('mergeFigures', () => {
  it('subtracts the histogram resolution', () => {
    const f = mergeFigures(
      {
        count: 100,
        maxNs: 12e6,
        percentiles: new Map([
          [0, 10e6],
          [50, 10.5e6],
          [99, 11e6],
          [100, 12e6],
        ]),
      },
      [],
      10,
    );
    expect(f.p50Ms).toBeCloseTo(0.5);
    expect(f.p99Ms).toBeCloseTo(1);
    expect(f.maxMs).toBeCloseTo(2);
  });

  it('weighs a stall as the delays of the work it held up, not as one sample', () => {
    // 100 healthy samples and one 1 s stall (≈100 delays of 0..1000 ms at 10 ms resolution).
    const f = mergeFigures(
      {
        count: 100,
        maxNs: 11e6,
        percentiles: new Map([
          [0, 10e6],
          [100, 11e6],
        ]),
      },
      [1000],
      10,
    );
    expect(f.maxMs).toBe(1000);
    expect(f.p99Ms).toBeGreaterThan(900);
    expect(f.p50Ms).toBeLessThan(50);
  });
});

describe('OpenTelemetry figures (nodejs.eventloop.delay.*)', () => {
  it('min, mean and stddev pool the histogram with the stalls; p90 between p50 and p99', () => {
    const hist = {
      count: 100,
      maxNs: 14e6,
      minNs: 10.5e6,
      meanNs: 11e6,
      stddevNs: 0.5e6,
      percentiles: new Map([
        [0, 10.5e6],
        [50, 11e6],
        [90, 12e6],
        [99, 13e6],
        [100, 14e6],
      ]),
    };
    const quiet = mergeFigures(hist, [], 10);
    expect(quiet.minMs).toBeCloseTo(0.5);
    expect(quiet.meanMs).toBeCloseTo(1);
    expect(quiet.stddevMs).toBeCloseTo(0.5);
    expect(quiet.p90Ms).toBeCloseTo(2);
    // One 1 s stall: ~100 delays spread over 0..1000 ms join the 100 histogram samples.
    const stalled = mergeFigures(hist, [1000], 10);
    expect(stalled.meanMs).toBeGreaterThan(200);
    expect(stalled.meanMs).toBeLessThan(300);
    expect(stalled.stddevMs).toBeGreaterThan(250);
    expect(stalled.minMs).toBeCloseTo(0.5);
    expect(stalled.p90Ms).toBeGreaterThan(stalled.p50Ms);
    expect(stalled.p90Ms).toBeLessThanOrEqual(stalled.p99Ms);
  });

  it('the monitor fills every figure, all consistent with each other', async () => {
    lag = monitorLoopLag({ intervalMs: 3_600_000 });
    await sleep(30);
    block(120);
    await sleep(30);
    const f = lag.sample();
    expect(f.minMs).toBeLessThanOrEqual(f.p50Ms);
    expect(f.p50Ms).toBeLessThanOrEqual(f.p90Ms!);
    expect(f.p90Ms).toBeLessThanOrEqual(f.p99Ms);
    expect(f.p99Ms).toBeLessThanOrEqual(f.maxMs);
    expect(f.meanMs).toBeGreaterThan(0);
    expect(f.meanMs).toBeLessThan(f.maxMs);
    expect(f.stddevMs).toBeGreaterThan(0);
  });

  it('StatsD gets nodejs.eventloop.delay.* in seconds and nodejs.eventloop.utilization (hot-shots)', async () => {
    const socket = createSocket('udp4');
    socket.bind(0, '127.0.0.1');
    await once(socket, 'listening');
    const packets: string[] = [];
    const names = ['min', 'max', 'mean', 'stddev', 'p50', 'p90', 'p99']
      .map((s) => `nodejs.eventloop.delay.${s}`)
      .concat('nodejs.eventloop.utilization');
    const allSeen = new Promise<void>((resolve) => {
      socket.on('message', (m) => {
        packets.push(...m.toString('utf8').split('\n'));
        if (names.every((n) => packets.some((p) => p.startsWith(`${n}:`)))) resolve();
      });
    });
    try {
      lag = monitorLoopLag({ intervalMs: 3_600_000, statsd: `127.0.0.1:${socket.address().port}` });
      await lag.ready;
      await sleep(50);
      block(60);
      // The histogram takes the late sample when its timer next runs.
      await sleep(30);
      const f = lag.sample();
      await allSeen;
      const value = (n: string): number =>
        Number(/:([\d.e-]+)\|g$/.exec(packets.find((p) => p.startsWith(`${n}:`))!)![1]);
      expect(value('nodejs.eventloop.delay.max')).toBeCloseTo(f.maxMs / 1000, 5);
      expect(value('nodejs.eventloop.delay.p99')).toBeCloseTo(f.p99Ms / 1000, 5);
      expect(value('nodejs.eventloop.delay.max')).toBeGreaterThan(0.04);
      expect(value('nodejs.eventloop.utilization')).toBeCloseTo(f.utilization, 4);
    } finally {
      lag?.stop();
      socket.close();
    }
  });

  it('Prometheus gets nodejs_eventloop_delay_*_seconds and nodejs_eventloop_utilization_ratio (prom-client)', async () => {
    const registry = new Registry();
    lag = monitorLoopLag({ intervalMs: 3_600_000, registry });
    await lag.ready;
    block(60);
    const f = lag.sample();
    const text = await registry.metrics();
    const read = (name: string): number => Number(new RegExp(`^${name} ([\\d.e-]+)$`, 'm').exec(text)?.[1]);
    for (const s of ['min', 'max', 'mean', 'stddev', 'p50', 'p90', 'p99'])
      expect(text).toContain(`# TYPE nodejs_eventloop_delay_${s}_seconds gauge`);
    expect(read('nodejs_eventloop_delay_max_seconds')).toBeCloseTo(f.maxMs / 1000, 5);
    expect(read('nodejs_eventloop_delay_p90_seconds')).toBeCloseTo(f.p90Ms! / 1000, 5);
    expect(read('nodejs_eventloop_delay_stddev_seconds')).toBeCloseTo(f.stddevMs! / 1000, 5);
    expect(read('nodejs_eventloop_utilization_ratio')).toBeCloseTo(f.utilization, 4);
    // The loopwatch names stay beside them.
    expect(text).toContain('# TYPE loopwatch_event_loop_lag_seconds gauge');
  });
});

describe('monitorLoopLag', () => {
  it('resets per interval and reports utilisation as a delta', async () => {
    lag = monitorLoopLag({ intervalMs: 3_600_000 });
    await sleep(50);
    lag.sample();
    block(400);
    await sleep(30);
    const busy = lag.sample();
    expect(busy.maxMs).toBeGreaterThan(300);
    expect(busy.utilization).toBeGreaterThan(0.6);
    await sleep(400);
    const idle = lag.sample();
    // Reset per interval: the block is not carried over (how small an idle lag is: bench/timing-checks).
    expect(idle.maxMs).toBeLessThan(busy.maxMs / 2);
    // Relative: CPU contention from neighbours inflates ELU (descheduled time counts as active).
    expect(idle.utilization).toBeLessThan(busy.utilization - 0.3);
    expect(idle.intervalMs).toBeGreaterThanOrEqual(390);
  });

  it('counts the stalls the watchdog measured, in the interval they happened', async () => {
    lag = monitorLoopLag({ intervalMs: 3_600_000 });
    const stalled = new Promise<number>((resolve) => {
      watchdog = startStallWatchdog({
        thresholdMs: 100,
        emit: () => undefined,
        onStall: (e) => resolve(e.durationMs),
        captureFrames: false,
      });
    });
    await sleep(100);
    lag.sample();
    block(600);
    const measured = await stalled;
    const f = lag.sample();
    expect(f.stalls).toBe(1);
    expect(measured).toBeGreaterThan(400);
    expect(f.maxMs).toBeGreaterThanOrEqual(measured - 1);
    expect(f.p99Ms).toBeGreaterThan(300);
    await sleep(200);
    const next = lag.sample();
    expect(next.stalls).toBe(0);
    expect(next.maxMs).toBeLessThan(measured / 2);
  });

  it('delivers on its timer to onSample and emit', async () => {
    const reports: Report[] = [];
    const first = new Promise<LoopLagFigures>((resolve) => {
      lag = monitorLoopLag({ intervalMs: 150, onSample: resolve, emit: (r) => reports.push(r) });
    });
    const f = await first;
    expect(f.intervalMs).toBeGreaterThanOrEqual(140);
    expect(reports[0]?.kind).toBe('loop-lag');
    expect(fieldsOf(reports[0]!).lag).toEqual(f);
    expect(reportMessage(reports[0]!)).toMatch(/lag p50 .* ms, p99 .* ms, max .* ms; utilisation \d+%/);
  });

  it('sends StatsD gauges over UDP (hot-shots)', async () => {
    const socket = createSocket('udp4');
    socket.bind(0, '127.0.0.1');
    await once(socket, 'listening');
    const packets: string[] = [];
    const names = [
      'app.loop.lag.p50',
      'app.loop.lag.p99',
      'app.loop.lag.max',
      'app.loop.utilization',
      'app.loop.stalls',
    ];
    const allSeen = new Promise<void>((resolve) => {
      socket.on('message', (m) => {
        packets.push(...m.toString('utf8').split('\n'));
        if (names.every((n) => packets.some((p) => p.startsWith(`${n}:`)))) resolve();
      });
    });
    try {
      lag = monitorLoopLag({ intervalMs: 3_600_000, statsd: `127.0.0.1:${socket.address().port}`, prefix: 'app.' });
      await lag.ready;
      lag.sample();
      await allSeen;
      expect(packets.find((p) => p.startsWith('app.loop.lag.max:'))).toMatch(/^app\.loop\.lag\.max:[\d.]+\|g$/);
      expect(packets.find((p) => p.startsWith('app.loop.stalls:'))).toBe('app.loop.stalls:0|c');
    } finally {
      lag?.stop();
      socket.close();
    }
  });

  it('sets gauges on a prom-client Registry', async () => {
    const registry = new Registry();
    lag = monitorLoopLag({ intervalMs: 3_600_000, registry });
    await lag.ready;
    block(50);
    const f = lag.sample();
    const text = await registry.metrics();
    expect(text).toContain('# TYPE loopwatch_event_loop_lag_seconds gauge');
    const max = /loopwatch_event_loop_lag_seconds\{stat="max"\} ([\d.e-]+)/.exec(text);
    expect(Number(max?.[1])).toBeCloseTo(f.maxMs / 1000, 5);
    expect(text).toMatch(/loopwatch_event_loop_utilization [\d.e-]+/);
    expect(text).toContain('loopwatch_event_loop_stalls_total 0');
    // A second monitor on the same registry reuses the metrics instead of throwing.
    const again = monitorLoopLag({ intervalMs: 3_600_000, registry });
    await again.ready;
    again.stop();
  });

  it('a missing optional package is one clear line', async () => {
    await expect(importOptional('loopwatch-no-such-package', 'StatsD output')).rejects.toThrow(
      "loopwatch: StatsD output needs the optional package 'loopwatch-no-such-package' (npm install loopwatch-no-such-package)",
    );
  });
});

describe('loop-lag under register (production mode)', () => {
  it('the stall shows in max of its interval; later intervals are quiet again', async () => {
    const run = await runFixture('lag-stall', {
      env: { LOOPWATCH: 'production', LOOPWATCH_FORMAT: 'json', LOOPWATCH_MONITOR_MS: '1000' },
    });
    expect(run.code).toBe(0);
    const lags = run.reports.filter((r) => r.kind === 'loop-lag').map((r) => r.lag!);
    const withStall = lags.findIndex((l) => l.maxMs > 1200);
    expect(withStall).toBeGreaterThanOrEqual(0);
    expect(lags[withStall]!.utilization).toBeGreaterThan(0.5);
    const later = lags.slice(withStall + 1);
    expect(later.length).toBeGreaterThanOrEqual(1);
    expect(later.at(-1)!.maxMs).toBeLessThan(lags[withStall]!.maxMs / 2);
    // Relative, as above: a loaded machine inflates even an idle interval's ELU.
    expect(later.at(-1)!.utilization).toBeLessThan(lags[withStall]!.utilization - 0.3);
  });
});
