// In-process unit tier: the pure rules behind register, reporting and never-awaited (no child processes).
import { describe, expect, it } from 'vitest';
import { OptionsError, optionsFromEnv } from '../src/options.js';
import { wantedHere } from '../src/entry.js';
import { PathGlobs } from '../src/model/glob.js';
import { useOfCallAt } from '../src/source/call-site-source.js';
import { ReportBus } from '../src/reporting.js';
import { findCycles } from '../src/instrument/dump.js';
import { hottestStack, type CpuProfile } from '../src/model/cpu-profile.js';
import { fieldsOf, type Report } from '../src/model/report.js';

describe('options for real suites', () => {
  it('reads kinds, ignore, silence, only and summary', () => {
    const o = optionsFromEnv({
      LOOPWATCH: 'debug',
      LOOPWATCH_KINDS: 'slow-callback, stall',
      LOOPWATCH_IGNORE: 'test/helpers/**',
      LOOPWATCH_SILENCE: 'src/db.ts:40',
      LOOPWATCH_ONLY: '**/*.test.js',
      LOOPWATCH_SUMMARY: '0',
    });
    expect(o).toMatchObject({
      kinds: ['slow-callback', 'stall'],
      ignore: ['test/helpers/**'],
      silence: ['src/db.ts:40'],
      only: ['**/*.test.js'],
      summary: false,
    });
  });
  it('names the valid kinds when one is wrong', () => {
    expect(() => optionsFromEnv({ LOOPWATCH_KINDS: 'slow' })).toThrow(OptionsError);
    expect(() => optionsFromEnv({ LOOPWATCH_KINDS: 'slow' })).toThrow(/kinds are task-dump, .*slow-callback/);
  });
});

describe('which processes register instruments', () => {
  it('never npm, npx, yarn or pnpm themselves', () => {
    expect(wantedHere(undefined, '/usr/lib/node_modules/npm/bin/npm-cli.js')).toBe(false);
    expect(wantedHere(undefined, '/usr/lib/node_modules/npm/bin/npx-cli.js')).toBe(false);
    expect(wantedHere(undefined, '/app/node_modules/.bin/yarn')).toBe(false);
    expect(wantedHere(undefined, '/app/server.js')).toBe(true);
  });
  it('LOOPWATCH_ONLY globs match the main script', () => {
    expect(wantedHere(['**/*.test.js'], '/app/test/a.test.js')).toBe(true);
    expect(wantedHere(['**/*.test.js'], '/app/node_modules/mocha/bin/_mocha')).toBe(false);
    expect(wantedHere(['server.js'], '/app/dist/server.js')).toBe(true);
  });
  it('globs: ** crosses directories, * does not', () => {
    const g = new PathGlobs(['/app/test/*.js']);
    expect(g.matches('/app/test/a.js')).toBe(true);
    expect(g.matches('/app/test/sub/a.js')).toBe(false);
    expect(new PathGlobs(['/app/**/a.js']).matches('file:///app/x/y/a.js')).toBe(true);
  });
});

describe('what a call site does with the value', () => {
  it.each([
    ['  void work(', 'void'],
    ['function kick() { void this.store.save(', 'void'],
    ['  return work(', 'returned'],
    ["em.on('go', (v) => work(", 'returned'],
    ['  work(', 'other'],
    ['  const p = work(', 'other'],
    ['  avoid(', 'other'],
  ])('%j → %s', (text, use) => {
    // The position V8 gives is the callee's name: strip the `(` and what follows.
    expect(useOfCallAt(text.replace(/[\w$]+\($/, ''))).toBe(use);
  });
});

describe('reporting', () => {
  // The bus treats every kind alike: a bare report of the kind, with a site where given.
  const r = (kind: Report['kind'], location?: string): Report =>
    ({ kind, time: 0, ...(location ? { location, functionName: 'f' } : {}) }) as Report;
  it('writes one report per site, counts repeats, filters kinds and silenced sites, and sums up', () => {
    const out: Report[] = [];
    const bus = new ReportBus();
    bus.sink = { write: (x) => void out.push(x) };
    bus.configure({ kinds: ['slow-callback', 'never-awaited'], silence: ['db.ts:40'] });
    bus.emit(r('slow-callback', '/app/a.ts:1:1'));
    bus.emit(r('slow-callback', '/app/a.ts:1:1'));
    bus.emit(r('slow-callback', '/app/src/db.ts:40:7'));
    bus.emit(r('stall', '/app/a.ts:1:1'));
    bus.emit(r('never-awaited', '/app/b.ts:2:3'));
    expect(out.map((x) => fieldsOf(x).location)).toEqual(['/app/a.ts:1:1', '/app/b.ts:2:3']);
    expect(out[0]?.pid).toBe(process.pid);
    const s = bus.summary();
    expect(s?.summary?.bySite).toEqual([
      { kind: 'slow-callback', site: 'f (/app/a.ts:1:1)', count: 2 },
      { kind: 'never-awaited', site: 'f (/app/b.ts:2:3)', count: 1 },
    ]);
  });
});

describe('one bug, one report', () => {
  const r = (kind: Report['kind'], location: string): Report =>
    ({ kind, time: 0, location, functionName: 'handle' }) as Report;
  const emitAll = (...reports: Report[]): { bus: ReportBus; out: Report[] } => {
    const out: Report[] = [];
    const bus = new ReportBus();
    bus.sink = { write: (x) => void out.push(x) };
    for (const x of reports) bus.emit(x);
    return { bus, out };
  };
  it('a never-awaited after an unhandled-task-error at the same site is dropped, not counted', () => {
    const { bus, out } = emitAll(
      r('unhandled-task-error', '/app/a.ts:6:3'),
      r('never-awaited', '/app/a.ts:6:3'),
      r('never-awaited', '/app/a.ts:9:3'),
    );
    expect(out.map((x) => `${x.kind} ${fieldsOf(x).location}`)).toEqual([
      'unhandled-task-error /app/a.ts:6:3',
      'never-awaited /app/a.ts:9:3',
    ]);
    expect(bus.summary()?.summary?.byKind).toEqual({ 'unhandled-task-error': 1, 'never-awaited': 1 });
  });
  it('the other way round both are written: the failure brings an error not seen yet', () => {
    const { out } = emitAll(r('never-awaited', '/app/a.ts:6:3'), r('unhandled-task-error', '/app/a.ts:6:3'));
    expect(out.map((x) => x.kind)).toEqual(['never-awaited', 'unhandled-task-error']);
  });
});

describe('await cycles', () => {
  const t = (id: number, awaitsId?: number) => ({
    id,
    name: `t${id}`,
    parentId: null,
    ageMs: 0,
    createdAt: [],
    waitingAt: [],
    ...(awaitsId ? { awaitsId } : {}),
  });
  it('finds each cycle once and ignores chains', () => {
    expect(findCycles([t(1, 2), t(2, 3), t(3, 1), t(4, 1), t(5)]).map((c) => c.map((x) => x.id))).toEqual([
      [1, 2, 3, 1],
    ]);
  });
});

describe('hottest stack of a profile', () => {
  const frame = (functionName: string, url: string, lineNumber = 0) => ({
    functionName,
    url,
    lineNumber,
    columnNumber: 0,
  });
  const profile: CpuProfile = {
    startTime: 0,
    endTime: 100,
    nodes: [
      { id: 1, callFrame: frame('(root)', ''), children: [2, 5, 6] },
      { id: 2, callFrame: frame('handler', 'file:///app/h.js', 9), children: [3] },
      { id: 3, callFrame: frame('settled', 'file:///lw/dist/src/instrument/tasks.js'), children: [4] },
      {
        id: 4,
        callFrame: frame('parse', 'file:///app/node_modules/lib/p.js', 4),
        positionTicks: [{ line: 7, ticks: 5 }],
      },
      { id: 5, callFrame: frame('(garbage collector)', '') },
      { id: 6, callFrame: frame('report', 'file:///lw/dist/src/instrument/slow.js') },
    ],
    samples: [4, 4, 4, 5, 6, 6, 6, 6],
    timeDeltas: [10, 10, 10, 10, 10, 10, 10, 10],
  };
  const isOwn = (u: string): boolean => u.startsWith('file:///lw/');
  it('drops loopwatch frames and loopwatch-only samples, keeps the leaf hot line', () => {
    const h = hottestStack([{ profile, offsetUs: 0 }], 0, 1000, { isOwn });
    expect(h.attribution).toBe('code');
    expect(h.samples).toBe(4);
    expect(h.frames.map((f) => f.functionName)).toEqual(['parse', 'handler']);
    expect(h.frames[0]?.hotLine).toBe(7);
  });
  it('loopwatch’s own work with the node internals it called (profiler rotation, source-map reads) is not counted', () => {
    const own: CpuProfile = {
      startTime: 0,
      endTime: 100,
      nodes: [
        { id: 1, callFrame: frame('(root)', ''), children: [2, 4] },
        { id: 2, callFrame: frame('rotate', 'file:///lw/dist/src/instrument/profiler.js'), children: [3] },
        { id: 3, callFrame: frame('post', 'node:inspector') },
        { id: 4, callFrame: frame('handler', 'file:///app/h.js', 9) },
      ],
      samples: [3, 3, 3, 3, 3, 4],
      timeDeltas: [10, 10, 10, 10, 10, 10],
    };
    const h = hottestStack([{ profile: own, offsetUs: 0 }], 0, 1000, { isOwn });
    expect(h.samples).toBe(1);
    expect(h.frames.map((f) => f.functionName)).toEqual(['handler']);
  });
  it('a microtask flood: the re-queued function beats node’s dispatch alone when it has a tenth of its samples', () => {
    const flood: CpuProfile = {
      startTime: 0,
      endTime: 100,
      nodes: [
        { id: 1, callFrame: frame('(root)', ''), children: [2] },
        { id: 2, callFrame: frame('runMicrotask', 'node:internal/process/task_queues'), children: [3] },
        { id: 3, callFrame: frame('requeue', 'file:///app/flood.js', 3) },
      ],
      samples: [2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3],
      timeDeltas: [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
    };
    const h = hottestStack([{ profile: flood, offsetUs: 0 }], 0, 1000, { isOwn });
    expect(h.frames.map((f) => f.functionName)).toEqual(['requeue', 'runMicrotask']);
  });
  it('says garbage collection when that is what the window was', () => {
    const h = hottestStack([{ profile, offsetUs: 0 }], 35, 45, { isOwn });
    expect(h).toMatchObject({ attribution: 'garbage-collection', frames: [] });
    expect(hottestStack([{ profile, offsetUs: 0 }], 500, 600, { isOwn }).attribution).toBe('no-sample');
  });
});
