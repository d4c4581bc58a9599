// Unit tier, in process, on fake time: the work-unit table behind `trackWork` (phases, ages, the
// ended history, the shared no-op while off, the process-wide tracker) without a child process.
import { afterEach, describe, expect, it } from 'vitest';
import { trackWork, NO_WORK } from '../../src/work.js';
import { WORK_HISTORY, WorkTable, type WorkRecord, type WorkObserver } from '../../src/instrument/work.js';
import { captureSites, userFrames } from '../../src/source/frames.js';
import { recordOf, TaskTracker } from '../../src/instrument/tasks.js';
import { FakeClock } from '../fake-clock.js';

const clock = new FakeClock();
let table: WorkTable | undefined;
afterEach(() => {
  table?.uninstall();
  table = undefined;
});

function installed(): WorkTable {
  table = new WorkTable(clock);
  table.install();
  return table;
}

describe('trackWork', () => {
  it('returns the one frozen no-op unit while loopwatch is off', () => {
    const w = trackWork('message', 'a');
    expect(w).toBe(NO_WORK);
    expect(w.live).toBe(false);
    expect(Object.isFrozen(w)).toBe(true);
    w.phase('saving');
    w.end();
    expect(trackWork('message', 42)).toBe(NO_WORK);
  });

  it('reaches the installed table; uninstalling (disable) makes it a no-op again', () => {
    const t = installed();
    const w = trackWork('message', 7);
    expect(w.live).toBe(true);
    expect(t.live().map((r) => r.name)).toEqual(['message 7']);
    t.uninstall();
    expect(trackWork('message', 8)).toBe(NO_WORK);
  });

  it('another table uninstalling leaves the installed one alone', () => {
    const t = installed();
    new WorkTable(clock).uninstall();
    trackWork('job', 'x');
    expect(t.size).toBe(1);
  });
});

describe('work table', () => {
  it('keeps the current phase, since when, and (debug mode) the earlier phases with how long each lasted', () => {
    const t = installed();
    t.captureSites = true;
    const w = trackWork('message', 'm1') as WorkRecord;
    const start = clock.now();
    clock.advance(100);
    w.phase('restarting web-3 (attempt 1)');
    clock.advance(250);
    w.phase('restarting web-3 (attempt 2)');
    clock.advance(40);
    w.phase('saving');
    clock.advance(5);
    expect(w.phaseText).toBe('saving');
    expect(clock.now() - w.phaseAt).toBe(5);
    expect(clock.now() - w.startedAt).toBe(395);
    expect(w.past?.map((p) => [p.text, p.at - start])).toEqual([
      ['restarting web-3 (attempt 1)', 100],
      ['restarting web-3 (attempt 2)', 350],
    ]);
    expect(t.find(w.id)).toBe(w);
  });

  it('production mode keeps the current phase only: a phase change allocates nothing that outlives it', () => {
    installed();
    const w = trackWork('message', 'm2') as WorkRecord;
    w.phase('restarting web-3 (attempt 1)');
    clock.advance(10);
    w.phase('saving');
    expect(w.phaseText).toBe('saving');
    expect(clock.now() - w.phaseAt).toBe(0);
    expect(w.past).toBeUndefined();
    expect(w.sites).toBeUndefined();
  });

  it('an ended unit leaves the live table for the ended history, newest first, and ignores later calls', () => {
    const t = installed();
    const a = trackWork('message', 'a') as WorkRecord;
    const b = trackWork('message', 'b') as WorkRecord;
    a.phase('acking');
    clock.advance(10);
    a.end();
    b.fail(new Error('disk full'));
    expect(t.size).toBe(0);
    expect(t.ended().map((r) => [r.key, r.error])).toEqual([
      ['b', 'disk full'],
      ['a', undefined],
    ]);
    expect(a.live).toBe(false);
    a.phase('too late');
    a.fail('again');
    expect(a.phaseText).toBe('acking');
    expect(a.error).toBeUndefined();
  });

  it('the ended history is bounded', () => {
    const t = installed();
    for (let i = 0; i < WORK_HISTORY + 20; i++) trackWork('job', i).end();
    const ended = t.ended();
    expect(ended).toHaveLength(WORK_HISTORY);
    expect(ended[0]!.key).toBe(String(WORK_HISTORY + 19));
  });

  it('captures where a phase was set only when asked (debug mode), as raw call sites', () => {
    const t = installed();
    const w = trackWork('message', 'm') as WorkRecord;
    w.phase('off');
    expect(w.sites).toBeUndefined();
    t.captureSites = true;
    const setPhase = (): void => w.phase('on');
    setPhase();
    const f = userFrames(w.sites!, 1)[0];
    expect(f?.functionName).toBe('setPhase');
    expect(f?.file).toMatch(/work-table\.test\.ts$/);
  });

  it('a phase naming a promise with a record takes its line from that record: the call that made it', async () => {
    const tracker = new TaskTracker(clock);
    tracker.start();
    try {
      const t = new WorkTable(clock, () => undefined, recordOf);
      t.captureSites = true;
      const w = t.begin('message', 'm') as WorkRecord;
      let open!: () => void;
      // A plain promise, made by a helper: the phase's line is the helper's call, not its `new Promise`.
      const makeGate = (): Promise<void> => new Promise<void>((r) => (open = r));
      async function restartHost(): Promise<void> {
        await makeGate();
      }
      const lines: number[] = [];
      const nextLine = (): number => captureSites(nextLine, 1)[0]!.getLineNumber()! + 1;
      lines.push(nextLine());
      const gate = makeGate();
      w.phase('waiting at the gate', gate);
      expect(w.raw).toBeUndefined(); // no second capture
      expect(w.sites?.[0]?.getLineNumber()).toBe(lines[0]);
      lines.push(nextLine());
      const restarting = restartHost();
      w.phase('restarting', restarting);
      // An async function's promise: its call.
      expect(w.sites?.[0]?.getLineNumber()).toBe(lines[1]);
      // A promise loopwatch has no record of: the phase() call is captured.
      lines.push(nextLine());
      w.phase('untracked', { then: () => undefined } as unknown as Promise<void>);
      expect(w.raw).toBeDefined();
      expect(w.sites?.find((s) => s.getFileName()?.endsWith('work-table.test.ts'))?.getLineNumber()).toBe(lines[2]);
      open();
      await restarting;
    } finally {
      tracker.stop();
    }
  });

  it('records the task that began a unit, and tells an observer every change in order', () => {
    const seen: string[] = [];
    const observer: WorkObserver = {
      begun: (u) => seen.push(`begun ${u.name}`),
      phased: (u) => seen.push(`phase ${u.phaseText}`),
      ended: (u) => seen.push(`ended ${u.error ?? 'done'}`),
    };
    const parent = { id: 9 } as never;
    table = new WorkTable(clock, () => parent);
    table.install();
    table.observer = observer;
    const w = trackWork('message', 'k') as WorkRecord;
    w.phase('saving');
    w.fail('boom');
    expect(w.parent).toBe(parent);
    expect(seen).toEqual(['begun message k', 'phase saving', 'ended boom']);
  });
});
