// Unit tier, in process, on fake time: the recording's ring (slots overwritten, definitions handed on,
// keyframes), the replay model at any cursor, and the chrome-trace export of both, without a child process.
import { afterAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Recorder } from '../../src/record/recorder.js';
import { parseRecording, readRecording, RecordingError } from '../../src/record/reader.js';
import { Timeline } from '../../src/record/timeline.js';
import { toChromeTrace } from '../../src/record/chrome-trace.js';
import { HEADER_SIZE } from '../../src/record/format.js';
import { WorkTable, type WorkRecord } from '../../src/instrument/work.js';
import { sizeOf, OptionsError } from '../../src/options.js';
import { FakeClock } from '../fake-clock.js';
import { validateTrace } from '../trace-validator.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-rec-unit-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
let n = 0;

function recorder(clock: FakeClock, work: WorkTable, maxBytes: number, lagMs = 2): Recorder {
  const rec = new Recorder({
    file: path.join(dir, `u${++n}.lwrec`),
    maxBytes,
    clock,
    meta: { pid: 4242, command: 'node app.js', node: process.version, mode: 'production' },
    liveWork: () => work.live(),
    lag: () => ({ p50Ms: lagMs / 2, p99Ms: lagMs, maxMs: lagMs * 2 }),
    elu: () => ({ idle: 0, active: 0, utilization: 0 }),
  });
  work.observer = rec;
  return rec;
}

describe('the ring', () => {
  it('stays within its cap over many laps; what is left reads back whole', async () => {
    const clock = new FakeClock();
    const work = new WorkTable(clock);
    const rec = recorder(clock, work, 1 << 20);
    // A unit that lives through every lap: only the keyframes can keep it.
    const old = work.begin('daemon', 'd-1') as WorkRecord;
    old.phase('watching');
    for (let i = 0; i < 60_000; i++) {
      const w = work.begin('message', `m-${i}`);
      // Many distinct phase texts: the string tables must be handed on and forgotten as slots go.
      w.phase(`restarting host-${i % 5000} (attempt ${1 + (i % 3)})`);
      clock.advance(0.05);
      w.phase('saving');
      if (i % 1000 === 999)
        rec.slowTurn({ atMs: clock.now() - 150, durationMs: 150, functionName: 'crunch', location: 'a.ts:1:1' });
      clock.advance(0.05);
      w.end();
      if (i % 500 === 0) rec.flush();
    }
    await rec.close();
    const size = fs.statSync(rec.ring.path).size;
    expect(size).toBeLessThanOrEqual(1 << 20);
    expect(rec.ring.seq).toBeGreaterThan(rec.ring.slotCount * 2);
    const r = readRecording(rec.ring.path);
    expect(r.lostBytes).toBe(0);
    // The oldest messages were overwritten; the newest are there, each with its phases' texts.
    const begun = r.events.filter((e) => e.type === 'wbegin');
    expect(begun.some((e) => e.key === 'm-0')).toBe(false);
    expect(begun.at(-1)?.key).toBe('m-59999');
    for (const e of r.events) {
      if (e.type === 'wphase')
        expect(r.strings.get(e.phase), `phase string ${e.phase}`).toMatch(
          /^(restarting host-\d+ \(attempt \d\)|saving|watching)$/,
        );
      if (e.type === 'wbegin' || e.type === 'kwork') expect(r.strings.get(e.kind)).toMatch(/^(message|daemon)$/);
    }
    // Times run forward across slots.
    for (let i = 1; i < r.events.length; i++) expect(r.events[i]!.t).toBeGreaterThanOrEqual(r.events[i - 1]!.t - 1e-6);
    const tl = new Timeline(r);
    const end = tl.top(tl.endMs);
    expect(end.work?.map((w) => [w.name, w.phase])).toEqual([['daemon d-1', 'watching']]);
    expect(end.work?.[0]?.ageMs).toBeCloseTo(clock.now() - old.startedAt, 0);
    expect(validateTrace(toChromeTrace(r))).toEqual([]);
  });

  it('a chunk too big for a slot is dropped as a counted loss, and the ring goes on', async () => {
    const clock = new FakeClock();
    const work = new WorkTable(clock);
    const rec = recorder(clock, work, 1 << 20);
    // One "turn" (no timer, no flush) making far more than a slot (64 KiB) holds.
    for (let i = 0; i < 20_000; i++) work.begin('burst', `key-${i}-${'x'.repeat(20)}`).end();
    rec.flush();
    work.begin('after', 'a').phase('fine');
    clock.advance(1_000);
    await rec.close();
    const r = readRecording(rec.ring.path);
    expect(rec.lost).toBeGreaterThan(0);
    expect(r.lostBytes).toBe(rec.lost);
    expect(new Timeline(r).top(Infinity).work?.map((w) => w.phase)).toEqual(['fine']);
  });
});

describe('the replay model', () => {
  it('shows each moment as it was, moving forward and back', async () => {
    const clock = new FakeClock();
    const work = new WorkTable(clock);
    const rec = recorder(clock, work, 1 << 20, 4);
    const t0 = clock.now();
    const w = work.begin('message', 'k');
    w.phase('restarting');
    clock.advance(1_000);
    w.phase('saving');
    clock.advance(1_000);
    rec.slowTurn({ atMs: clock.now() - 300, durationMs: 300, functionName: 'crunch', location: '/app/a.ts:3:5' });
    clock.advance(1_000);
    w.fail(new Error('disk full'));
    clock.advance(500);
    await rec.close();
    const tl = new Timeline(readRecording(rec.ring.path));
    const at = (dt: number): ReturnType<Timeline['top']> => tl.top(t0 + dt);
    expect(at(2_500).work?.map((u) => [u.phase, u.phaseMs])).toEqual([['saving', 1_500]]);
    expect(at(500).work?.map((u) => [u.phase, u.phaseMs])).toEqual([['restarting', 500]]);
    expect(at(3_200).work).toEqual([]);
    expect(tl.where(t0 + 3_200, { work: 1 }).work).toMatchObject({
      outcome: 'failed',
      error: 'disk full',
      phase: 'saving',
    });
    expect(at(1_500).slow).toEqual([]);
    expect(at(2_500).slow).toEqual([
      { agoMs: 800, durationMs: 300, functionName: 'crunch', location: '/app/a.ts:3:5' },
    ]);
    expect(at(2_500).info.lag.p99Ms).toBe(4);
    expect(tl.slowTurns()).toEqual([t0 + 1_700]);
  });

  it('refuses a file that is not a recording, in one line', () => {
    expect(() => parseRecording(new Uint8Array(HEADER_SIZE), 'x.json')).toThrow(
      new RecordingError('loopwatch: x.json is not a loopwatch recording (LOOPWATCH_RECORD writes them)'),
    );
  });
});

describe('LOOPWATCH_RECORD_MAX', () => {
  it('reads sizes with units; below 1mb is refused', () => {
    expect(sizeOf('X', '64mb')).toBe(64 << 20);
    expect(sizeOf('X', '1g')).toBe(1 << 30);
    expect(sizeOf('X', '2048KiB')).toBe(2 << 20);
    expect(sizeOf('X', '1048576')).toBe(1 << 20);
    expect(() => sizeOf('X', '512k')).toThrow(OptionsError);
    expect(() => sizeOf('X', 'lots')).toThrow('loopwatch: X="lots" must be a size of at least 1mb (like 64mb, 1g)');
  });
});
