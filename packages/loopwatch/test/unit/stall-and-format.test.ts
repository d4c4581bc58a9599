// Unit tier: the heartbeat on fake time (a blocked turn is one stall, published to the feed), the
// stall report built from the worker's findings, and how the text and JSON sinks write reports.
import { describe, expect, it } from 'vitest';
import { Heartbeat } from '../../src/instrument/heartbeat.js';
import { StallFeed, type StallEvent } from '../../src/instrument/watchdog-feed.js';
import { stallReport } from '../../src/instrument/watchdog.js';
import type { StallMessage } from '../../src/instrument/watchdog-protocol.js';
import { formatText } from '../../src/sinks/text.js';
import { formatJson } from '../../src/sinks/json.js';
import { reportMessage } from '../../src/sinks/words.js';
import type { Frame, Report } from '../../src/model/report.js';
import { FakeClock } from '../fake-clock.js';

describe('heartbeat', () => {
  it('a turn blocked past the threshold is one stall, timed by how late the beat ran', () => {
    const clock = new FakeClock();
    const feed = new StallFeed();
    const seen: StallEvent[] = [];
    const told: StallEvent[] = [];
    feed.subscribe((e) => seen.push(e));
    const cell = new BigInt64Array(new SharedArrayBuffer(16));
    const hb = new Heartbeat({ clock, heartbeatMs: 50, thresholdMs: 1000, feed, cell, onStall: (e) => told.push(e) });
    clock.advance(500);
    expect(Number(Atomics.load(cell, 0))).toBe(clock.origin + clock.now());
    clock.block(900);
    expect(seen).toEqual([]);
    clock.block(2_000);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.durationMs).toBe(1950);
    expect(told).toEqual(seen);
    expect(hb.lastStall).toBe(seen[0]);
    hb.stop();
    expect(clock.pending).toBe(0);
  });

  it('a reader polling the feed settles a stall whose beat has not run yet', () => {
    const clock = new FakeClock();
    const feed = new StallFeed();
    const seen: StallEvent[] = [];
    feed.subscribe((e) => seen.push(e));
    const hb = new Heartbeat({
      clock,
      heartbeatMs: 50,
      thresholdMs: 1000,
      feed,
      cell: new BigInt64Array(new SharedArrayBuffer(16)),
    });
    clock.jump(1_500);
    expect(feed.hasSource).toBe(true);
    feed.poll();
    expect(seen.map((e) => e.durationMs)).toEqual([1450]);
    hb.stop();
    expect(feed.hasSource).toBe(false);
  });
});

const user: Frame = { functionName: 'crunch', file: '/app/src/crunch.ts', line: 10, column: 3 };
const native: Frame = { functionName: 'execSync', file: 'node:child_process', line: 961, column: 13, origin: 'node' };
const base: StallMessage = {
  type: 'stall',
  durationMs: 1500,
  detectedAfterMs: 1040,
  capture: 'paused',
  pausedStack: [user],
  sampledStack: [],
};

describe('stall report', () => {
  it('paused: the exact frame and the task', () => {
    const r = stallReport(
      { ...base, task: { id: 7, name: 'cruncher', createdAt: ['start (/app/src/main.ts:4:9)'] } },
      1512,
      0,
    );
    expect(reportMessage(r)).toBe(
      'event loop stalled for 1512 ms in crunch (/app/src/crunch.ts:10:3) while running task "cruncher" (#7)',
    );
    expect(r.location).toBe('/app/src/crunch.ts:10:3');
    expect(r.createdAt).toEqual([{ functionName: 'start', file: '/app/src/main.ts', line: 4, column: 9 }]);
  });
  it('paused after a native call: names the call and says V8 could not interrupt it', () => {
    const r = stallReport(
      { ...base, capture: 'paused-after-native', pausedStack: [native, user], pauseLatencyMs: 1282 },
      2351,
      0,
    );
    expect(reportMessage(r)).toBe(
      'event loop stalled for 2351 ms in a native call under execSync (node:child_process:961:13) made by crunch (/app/src/crunch.ts:10:3); V8 could not interrupt it, the frame is where it returned (1282 ms after the pause request)',
    );
  });
  it('sampled only, and nothing at all', () => {
    expect(
      reportMessage(stallReport({ ...base, capture: 'sampled', pausedStack: [], sampledStack: [user] }, 1500, 0)),
    ).toBe('event loop stalled for 1500 ms, mostly in crunch (/app/src/crunch.ts:10:3) (CPU samples; no pause)');
    expect(
      reportMessage(stallReport({ ...base, capture: 'none', pausedStack: [], note: 'frame capture is off' }, 1500, 0)),
    ).toBe('event loop stalled for 1500 ms (blocking frame unknown: frame capture is off)');
  });
});

describe('sinks write the words', () => {
  const time = Date.UTC(2026, 0, 2, 13, 38, 38, 619);
  it('text: head line with process and script, stack with node frames folded and libraries marked', () => {
    const r: Report = {
      kind: 'slow-callback',
      durationMs: 286.4,
      attribution: 'code',
      location: '/app/db.ts:7:11',
      functionName: 'openDb',
      time,
      pid: 42,
      script: 'dist/app.js',
      stack: [
        { functionName: 'busy', file: '/app/node_modules/lib/index.js', line: 5, column: 3, origin: 'library' },
        { functionName: 'a', file: 'node:internal/a', line: 1, column: 1, origin: 'node' },
        { functionName: 'b', file: 'node:internal/b', line: 1, column: 1, origin: 'node' },
        { functionName: 'c', file: 'node:internal/c', line: 1, column: 1, origin: 'node' },
        { functionName: 'openDb', file: '/app/db.ts', line: 7, column: 11 },
      ],
    };
    expect(formatText(r)).toBe(
      [
        '13:38:38.619 loopwatch[42 dist/app.js] slow-callback: Executing a callback took 286 ms in openDb (/app/db.ts:7:11), inside busy (index.js:5)',
        '  time went to:',
        '    at busy (/app/node_modules/lib/index.js:5:3)  [library]',
        '    … 2 node frames',
        '    at c (node:internal/c:1:1)  [node]',
        '    at openDb (/app/db.ts:7:11)',
        '',
      ].join('\n'),
    );
  });
  it('text: a task dump is a tree under its parents, groups first', () => {
    const frame = (line: number): Frame => ({ functionName: 'f', file: '/app/a.ts', line, column: 1 });
    const r: Report = {
      kind: 'task-dump',
      tracking: true,
      count: 52,
      time,
      groups: [{ name: 'handle', count: 50, oldestMs: 1500, waitingAt: [frame(25)], ids: [] }],
      tasks: [
        { id: 1, name: 'runService', parentId: null, ageMs: 22, createdAt: [], waitingAt: [frame(21)] },
        { id: 2, name: 'consumer', parentId: 1, ageMs: 21, createdAt: [], waitingAt: [frame(14)], awaitsId: 3 },
      ],
    };
    expect(formatText(r).split('\n').slice(1)).toEqual([
      '  50 × handle, oldest 1.5 s, waiting at /app/a.ts:25:1',
      '  Task #1 runService pending for 22 ms',
      '    waiting at:',
      '      at f (/app/a.ts:21:1)',
      '    Task #2 consumer pending for 21 ms (parent #1, awaits #3)',
      '      waiting at:',
      '        at f (/app/a.ts:14:1)',
      '',
    ]);
  });
  it('json: one line per report, every field kept', () => {
    const r: Report = {
      kind: 'loop-lag',
      time,
      lag: { intervalMs: 1000, p50Ms: 0.1, p99Ms: 1, maxMs: 1.2, utilization: 0.5, stalls: 0 },
    };
    const line = formatJson(r);
    expect(line.endsWith('\n')).toBe(true);
    expect(line.indexOf('\n')).toBe(line.length - 1);
    expect(Object.keys(JSON.parse(line) as object).slice(0, 2)).toEqual(['kind', 'message']);
    expect(JSON.parse(line)).toEqual({
      ...r,
      message: 'event loop over 1.0 s: lag p50 0.1 ms, p99 1.0 ms, max 1.2 ms; utilisation 50%; 0 stalls',
    });
  });
});
