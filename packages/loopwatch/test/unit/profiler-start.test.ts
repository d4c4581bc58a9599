// The sampling profiler behind slow-callback attribution: started at once (debug mode), or only in the
// first timer turn (production under register: a process's start does not pay for V8's profiler).
import { afterEach, describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { WindowProfiler } from '../../src/instrument/profiler.js';

let profiler: WindowProfiler | undefined;
afterEach(() => {
  profiler?.close();
  profiler = undefined;
});

function spinNamedForThisTest(ms: number): number {
  const end = performance.now() + ms;
  let n = 0;
  while (performance.now() < end) n++;
  return n;
}

/** The hottest stack's samples while spinning for `ms`. */
function spinWindow(p: WindowProfiler, ms: number): { samples: number; inThisFile: boolean } {
  const from = performance.now();
  spinNamedForThisTest(ms);
  const hot = p.hottest(from, performance.now());
  // (V8 may inline the spin into its caller: the frame's file is what holds.)
  return { samples: hot.samples, inThisFile: hot.frames.some((f) => f.url.includes('profiler-start.test')) };
}

describe('WindowProfiler start', () => {
  it('deferred: no samples in the turn it was made in; the spin is named once a timer turn has passed', async () => {
    profiler = new WindowProfiler(1_000, undefined, true);
    expect(spinWindow(profiler, 60).samples).toBe(0);
    await sleep(1); // the first timer turn: sampling begins
    const after = spinWindow(profiler, 60);
    expect(after.samples).toBeGreaterThan(0);
    expect(after.inThisFile).toBe(true);
  });

  it('at once: the spin in the same turn is named', () => {
    profiler = new WindowProfiler(1_000);
    const now = spinWindow(profiler, 60);
    expect(now.samples).toBeGreaterThan(0);
    expect(now.inThisFile).toBe(true);
  });

  it('closed before it began: never begins', async () => {
    profiler = new WindowProfiler(1_000, undefined, true);
    profiler.close();
    await sleep(5);
    expect(spinWindow(profiler, 30).samples).toBe(0);
  });
});
