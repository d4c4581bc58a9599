// Unit tier: one stall's capture against a fake inspector — what it concludes from a prompt pause, a
// pause that lands late (a native call), no pause at all with CPU samples, and no inspector.
import { describe, expect, it } from 'vitest';
import { StallCapture } from '../../src/instrument/stall-capture.js';
import type { CallFrame, InspectorPort } from '../../src/instrument/inspector-client.js';
import type { CpuProfile } from '../../src/model/cpu-profile.js';

const frame = (functionName: string, url: string, lineNumber: number): CallFrame => ({
  callFrameId: `${functionName}-id`,
  functionName,
  url,
  location: { scriptId: '1', lineNumber, columnNumber: 2 },
});

interface FakeOptions {
  /** ms after Debugger.pause the pause lands; undefined = never. */
  readonly pauseAfterMs?: number;
  /** ms before the main thread takes up the queue and answers anything (a native call holds it); default 0. */
  readonly answersAfterMs?: number;
  readonly frames?: readonly CallFrame[];
  readonly profile?: CpuProfile;
  readonly task?: { id: number; name: string; createdAt: string[] };
}

function fakePort(o: FakeOptions): InspectorPort & { calls: string[] } {
  let onPause: ((f: readonly CallFrame[] | undefined) => void) | undefined;
  const calls: string[] = [];
  return {
    calls,
    urlOf: (f) => f.url ?? '',
    nextPause() {
      let cancel = (): void => undefined;
      const paused = new Promise<readonly CallFrame[] | undefined>((resolve) => {
        onPause = resolve;
        cancel = () => resolve(undefined);
      });
      return { paused, cancel };
    },
    async call<T>(method: string): Promise<T> {
      calls.push(method);
      if (o.answersAfterMs) await new Promise((r) => setTimeout(r, o.answersAfterMs));
      if (method === 'Debugger.pause' && o.pauseAfterMs !== undefined)
        setTimeout(() => onPause?.(o.frames ?? []), o.pauseAfterMs);
      if (method === 'Debugger.evaluateOnCallFrame') return Promise.resolve({ result: { value: o.task } } as T);
      if (method === 'Profiler.stop')
        return o.profile ? Promise.resolve({ profile: o.profile } as T) : Promise.reject(new Error('no profile'));
      return Promise.resolve({} as T);
    },
  };
}

const settings = { stackLimit: 10, isOwn: (url: string) => url.includes('/loopwatch/dist/') };
const ended = (): Promise<void> => new Promise((r) => setTimeout(r, 20));

describe('stall capture', () => {
  it('a prompt pause is the exact frame, with the running task; the thread is resumed', async () => {
    const port = fakePort({
      pauseAfterMs: 5,
      frames: [frame('crunch', '/app/crunch.js', 9), frame('main', '/app/main.js', 2)],
      task: { id: 7, name: 'cruncher', createdAt: [] },
    });
    const c = new StallCapture(port, settings, ended);
    await c.run();
    const m = c.message(1500, 1040);
    expect(m.capture).toBe('paused');
    expect(m.pausedStack.map((f) => `${f.functionName} ${f.file}:${f.line}`)).toEqual([
      'crunch /app/crunch.js:10',
      'main /app/main.js:3',
    ]);
    expect(m.task?.name).toBe('cruncher');
    expect(port.calls).toContain('Debugger.resume');
    expect(port.calls.indexOf('Debugger.pause')).toBeLessThan(port.calls.indexOf('Debugger.resume'));
  });

  it('a pause that lands late means the thread sat in a native call', async () => {
    const port = fakePort({
      pauseAfterMs: 150,
      answersAfterMs: 150,
      frames: [frame('execSync', 'node:child_process', 960), frame('shellOut', '/app/sh.js', 7)],
    });
    const c = new StallCapture(port, settings, ended);
    await c.run();
    expect(c.capture).toBe('paused-after-native');
    expect(c.pauseLatencyMs).toBeGreaterThanOrEqual(100);
  });

  it('a pause late behind Debugger.enable, with a prompt first answer, is a prompt pause (a loaded machine)', async () => {
    const port = fakePort({
      pauseAfterMs: 150,
      frames: [frame('spin', '/app/spin.js', 4)],
    });
    const c = new StallCapture(port, settings, ended);
    await c.run();
    expect(c.capture).toBe('paused');
    expect(c.pauseLatencyMs).toBeGreaterThanOrEqual(100);
  });

  it('no pause: the hottest CPU sample names the code, loopwatch frames dropped', async () => {
    const profile: CpuProfile = {
      startTime: 0,
      endTime: 100,
      nodes: [
        { id: 1, callFrame: { functionName: '(root)', url: '', lineNumber: 0, columnNumber: 0 }, children: [2] },
        {
          id: 2,
          callFrame: { functionName: 'spin', url: 'file:///app/spin.js', lineNumber: 3, columnNumber: 0 },
          children: [3],
        },
        {
          id: 3,
          callFrame: {
            functionName: 'beat',
            url: 'file:///x/loopwatch/dist/src/instrument/heartbeat.js',
            lineNumber: 1,
            columnNumber: 0,
          },
        },
      ],
      samples: [2, 2, 3],
      timeDeltas: [10, 10, 10],
    };
    const c = new StallCapture(fakePort({ profile }), settings, () => new Promise((r) => setTimeout(r, 600)));
    await c.run();
    const m = c.message(1200, 1000);
    expect(m.capture).toBe('sampled');
    expect(m.note).toBe('the inspector did not pause the main thread in time');
    expect(m.sampledStack.map((f) => f.functionName)).toEqual(['spin']);
  });

  it('without an inspector it only times the stall', async () => {
    const c = new StallCapture(undefined, settings, ended);
    c.note = 'frame capture is off';
    await c.run();
    expect(c.message(1100, 1000)).toMatchObject({
      capture: 'none',
      pausedStack: [],
      sampledStack: [],
      note: 'frame capture is off',
    });
  });
});
