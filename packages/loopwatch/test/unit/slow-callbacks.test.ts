// Unit tier, on fake time: slow-callback accounting (the late ticker, the one-a-second budget, the
// summary of what was left out, start-up gathered apart) with a fake sampling profiler.
import { describe, expect, it } from 'vitest';
import { SlowCallbackWatcher, type WindowSampler } from '../../src/instrument/slow.js';
import type { HotStack } from '../../src/model/cpu-profile.js';
import { fieldsOf, type Report } from '../../src/model/report.js';
import { reportMessage } from '../../src/sinks/words.js';
import { FakeClock } from '../fake-clock.js';

const codeIn = (functionName: string): HotStack => ({
  frames: [
    { functionName, url: 'file:///app/src/busy.js', lineNumber: 9, columnNumber: 2, hotLine: 12 },
    { functionName: 'main', url: 'file:///app/src/main.js', lineNumber: 3, columnNumber: 0 },
  ],
  attribution: 'code',
  samples: 20,
  share: 1,
});
const loading: HotStack = {
  frames: [],
  attribution: 'module-loading',
  samples: 10,
  share: 1,
  modules: new Map([['file:///app/node_modules/big/index.js', 10]]),
};

function watcher(hot: () => HotStack = () => codeIn('crunch')) {
  const clock = new FakeClock();
  const reports: Report[] = [];
  const sampler: WindowSampler = { hottest: () => hot(), close: () => undefined };
  const w = new SlowCallbackWatcher({ thresholdMs: 100, sampleMs: 5, clock, sampler, emit: (r) => reports.push(r) });
  return { clock, reports, w };
}

describe('slow-callback accounting', () => {
  it('a turn longer than the threshold is one report naming the hot function and line', () => {
    const { clock, reports, w } = watcher();
    clock.advance(100);
    clock.block(300);
    expect(reports).toHaveLength(1);
    const r = reports[0]!;
    // The ticker (every 25 ms) ran 275 ms late.
    expect(r).toMatchObject({
      kind: 'slow-callback',
      durationMs: 275,
      functionName: 'crunch',
      location: '/app/src/busy.js:12:1',
      attribution: 'code',
    });
    expect(reportMessage(r)).toBe('Executing a callback took 275 ms in crunch (/app/src/busy.js:12:1)');
    expect(fieldsOf(r).stack?.map((f) => f.functionName)).toEqual(['crunch', 'main']);
    expect(w.recent()).toMatchObject([{ durationMs: 275, functionName: 'crunch' }]);
    w.stop();
  });

  it('turns shorter than the threshold are not reported', () => {
    const { clock, reports, w } = watcher();
    clock.block(90);
    clock.advance(5_000);
    expect(reports).toEqual([]);
    w.stop();
  });

  it('at most one analysed report a second; the rest are counted and summed up when the burst ends', () => {
    const { clock, reports, w } = watcher();
    clock.block(300);
    clock.advance(50);
    clock.block(200);
    clock.advance(50);
    clock.block(400);
    expect(reports).toHaveLength(1);
    clock.advance(2_000);
    expect(reports).toHaveLength(2);
    expect(reportMessage(reports[1]!)).toMatch(
      /^2 more slow callbacks since .*, longest 375 ms, 550 ms in all \(not analysed: reports are rate-limited\)$/,
    );
    expect(w.recent()).toHaveLength(3);
    w.stop();
  });

  it('the next analysed report carries the count of those left out before it', () => {
    const { clock, reports, w } = watcher();
    clock.block(300);
    clock.advance(50);
    clock.block(200);
    clock.advance(600);
    clock.block(300);
    expect(reports).toHaveLength(2);
    expect(reportMessage(reports[1]!)).toMatch(
      /\(plus 1 more slow callback since the previous report, longest 175 ms, not analysed: reports are rate-limited\)$/,
    );
    w.stop();
  });

  it('turns spent loading modules are one start-up report, outside the budget', () => {
    let hot = loading;
    const { clock, reports, w } = watcher(() => hot);
    clock.block(300);
    clock.advance(50);
    clock.block(200);
    hot = codeIn('crunch');
    clock.advance(50);
    clock.block(300);
    expect(reports.map((r) => r.kind)).toEqual(['slow-callback']);
    clock.advance(1_500);
    const startUp = reports.find((r) => r.kind === 'start-up');
    expect(startUp && reportMessage(startUp)).toMatch(
      /^loading modules took 450 ms in 2 slow turns \(longest 275 ms\); most in \/app\/node_modules\/big\/index\.js \(100 ms\)$/,
    );
    w.stop();
  });

  it('a slow reaction the task tracker timed is reported once, not again by the ticker', async () => {
    const { clock, reports, w } = watcher();
    const start = clock.now();
    clock.jump(300);
    w.onSlowReaction(undefined, start, 300);
    clock.runDue();
    await new Promise((r) => setImmediate(r));
    expect(reports.map((r) => fieldsOf(r).durationMs)).toEqual([300]);
    w.stop();
  });

  it('stop cancels every timer it started', () => {
    const { clock, w } = watcher();
    clock.block(300);
    clock.advance(10);
    clock.block(300);
    w.stop();
    expect(clock.pending).toBe(0);
  });
});
