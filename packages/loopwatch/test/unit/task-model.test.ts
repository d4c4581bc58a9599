// Unit tier, in process, on fake time: the task model (tracking, parents, the await graph, ages,
// busy time, slow reactions, ended tasks) without a child process.
import { afterEach, describe, expect, it } from 'vitest';
import { setImmediate as turn } from 'node:timers/promises';
import { recordOf, TaskTracker } from '../../src/instrument/tasks.js';
import { captureSites } from '../../src/source/frames.js';
import { buildTaskDump, findCycles } from '../../src/instrument/dump.js';
import { spawnTask } from '../../src/instrument/spawn.js';
import type { PromiseRecord } from '../../src/model/task.js';
import { reportMessage } from '../../src/sinks/words.js';
import { FakeClock } from '../fake-clock.js';

const clock = new FakeClock();
let tracker: TaskTracker | undefined;
afterEach(() => {
  tracker?.stop();
  tracker = undefined;
});

function track(): TaskTracker {
  tracker = new TaskTracker(clock);
  tracker.start();
  return tracker;
}

const mine = (t: TaskTracker, ...names: string[]): PromiseRecord[] => t.pending().filter((r) => names.includes(r.name));

describe('task model', () => {
  it('tracks async calls as tasks with their parent, and forgets them when they settle', async () => {
    const t = track();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    async function child(): Promise<void> {
      await gate;
    }
    async function parent(): Promise<void> {
      await child();
    }
    const done = parent();
    const [p, c] = [mine(t, 'parent')[0], mine(t, 'child')[0]];
    expect(p?.isTask).toBe(true);
    expect(c?.parent).toBe(p);
    // parent awaits child's promise: the await graph.
    expect(p?.waitingOn).toBe(c);
    release();
    await done;
    expect(mine(t, 'parent', 'child')).toEqual([]);
  });

  it('where a resumed task waits: its last chained promise is the await, a `.then` is not', async () => {
    const t = track();
    // The generated line of the caller (raw, as the tracker's sites are).
    const nextLine = (): number => captureSites(nextLine, 1)[0]!.getLineNumber()! + 1;
    const gates = [0, 1].map(() => {
      let open!: () => void;
      const p = new Promise<void>((r) => (open = r));
      return { p, open };
    });
    const side = Promise.resolve(1);
    const lines: number[] = [];
    async function worker(): Promise<void> {
      await turn(); // from here on it runs in reactions that resume it
      void side.then(() => undefined);
      lines.push(nextLine());
      await gates[0]!.p;
      // A `.then` callback of the suspended task chains a promise: still where it was.
      void side.then(() => void side.then(() => undefined));
      void side.then(() => undefined);
      lines.push(nextLine());
      await gates[1]!.p;
      void side.then(() => undefined);
    }
    const done = worker();
    const w = mine(t, 'worker')[0]!;
    const settle = async (): Promise<void> => {
      for (let i = 0; i < 5; i++) await turn();
    };
    await settle();
    expect(w.waitingOn).toBe(recordOf(gates[0]!.p));
    expect(w.awaitSite?.getLineNumber()).toBe(lines[0]);
    gates[0]!.open();
    await settle();
    expect(w.waitingOn).toBe(recordOf(gates[1]!.p));
    expect(w.awaitSite?.getLineNumber()).toBe(lines[1]);
    gates[1]!.open();
    await done;
    expect(w.waitingOn).toBeUndefined();
    expect(w.awaitSite).toBeUndefined();
    expect(mine(t, 'worker')).toEqual([]);
  });

  it('ages come from the clock; a dump names and groups them', async () => {
    const t = track();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    async function handle(): Promise<void> {
      await gate;
    }
    const all = [handle(), handle(), handle()];
    clock.advance(250);
    const dump = buildTaskDump(t);
    const group = dump.groups?.find((g) => g.name === 'handle');
    expect(group?.count).toBe(3);
    expect(group?.oldestMs).toBe(250);
    expect(dump.tasks?.some((x) => x.name === 'handle')).toBe(false);
    expect(buildTaskDump(t, { all: true }).tasks?.filter((x) => x.name === 'handle')).toHaveLength(3);
    release();
    await Promise.all(all);
  });

  it('busy time is the time its own code ran after each await; a slow reaction is told with its task', async () => {
    const t = track();
    const slow: { task: string | undefined; ms: number }[] = [];
    t.setSlowReaction(100, (task, _start, ms) => slow.push({ task: task?.name, ms }));
    async function cruncher(): Promise<void> {
      await turn();
      clock.advance(30);
      await turn();
      clock.advance(120);
    }
    const p = cruncher();
    const rec = mine(t, 'cruncher')[0]!;
    await p;
    expect(rec.busyMs).toBe(150);
    expect(slow).toEqual([{ task: 'cruncher', ms: 120 }]);
  });

  it('remembers ended tasks: resolved, rejected with what, aborted by whom', async () => {
    const t = track();
    async function ok(): Promise<number> {
      await turn();
      return 1;
    }
    async function fails(): Promise<number> {
      await turn();
      throw new Error('disk full');
    }
    await ok();
    await fails().catch(() => 0);
    const handle = spawnTask(t, 'poller', async (signal) => {
      await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve()));
    });
    handle.abort(new Error('shutting down'));
    await handle.promise;
    const ended = t.terminated.list();
    const byName = (n: string) => ended.find((e) => e.rec.name === n)?.outcome;
    expect(byName('ok')).toEqual({ state: 'resolved' });
    expect(byName('fails')?.state).toBe('rejected');
    expect(byName('fails')?.error).toContain('disk full');
    expect(byName('poller')).toMatchObject({ state: 'resolved', abortedBy: { reason: 'shutting down' } });
    expect(byName('poller')?.abortedBy?.at[0]).toMatch(/task-model\.test\.ts:\d+:\d+$/);
  });

  it('finds each await cycle once and ignores chains', () => {
    const s = (id: number, awaitsId?: number) => ({
      id,
      name: `t${id}`,
      parentId: null,
      ageMs: 0,
      createdAt: [],
      waitingAt: [],
      ...(awaitsId ? { awaitsId } : {}),
    });
    expect(findCycles([s(1, 2), s(2, 3), s(3, 1), s(4, 1), s(5)]).map((c) => c.map((x) => x.id))).toEqual([
      [1, 2, 3, 1],
    ]);
  });

  it('without tracking the dump says so', () => {
    const dump = buildTaskDump(new TaskTracker(clock));
    expect(dump.tasks).toEqual([]);
    expect(reportMessage(dump)).toMatch(/tracking is off/);
  });
});
