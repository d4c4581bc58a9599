/**
 * Micro-benchmarks behind the figures quoted in loopwatch's code comments, rerunnable by anyone:
 *   npm run bench:micro (or node --expose-gc packages/loopwatch/dist/bench/micro/claims.bench.js)
 * - instrument/tasks.ts: v8.promiseHooks vs async_hooks per promise-heavy call (the "async_hooks'
 *   hooks cost ~4-5× as much": their added time over "no hook");
 * - source/frames.ts: a raw call-site capture (the "about a microsecond per frame walked" at six);
 * - instrument/terminated.ts: reading a settled promise's outcome from V8 (promise-state.ts) beside the
 *   util.inspect text it replaced (the "µs");
 * - instrument/stall-capture.ts: promise-heavy code with a Debugger domain enabled (the "~8×" that is
 *   why the watchdog enables it lazily, per stall).
 */
import { bench, group, run, summary, do_not_optimize } from 'mitata';
import { createHook } from 'node:async_hooks';
import { promiseHooks } from 'node:v8';
import { inspect } from 'node:util';
import { Session } from 'node:inspector';
import { captureSites } from '../../src/source/frames.js';
import { promiseState } from '../../src/instrument/promise-state.js';

async function leaf(n: number): Promise<number> {
  await Promise.resolve();
  return n + 1;
}
/** One "request": a few awaits deep, the shape the task tracker sees most. */
async function work(): Promise<number> {
  let s = 0;
  for (let i = 0; i < 5; i++) s += await leaf(i);
  return s;
}

const noop = (): void => undefined;

// Generator benches: setup before the yield, teardown after it (the hooks are on only for their own bench).
group('per promise-heavy call (5 awaits)', () => {
  summary(() => {
    bench('no hook', async () => do_not_optimize(await work()));
    bench('v8.promiseHooks (init/before/after/settled)', function* () {
      const stop = promiseHooks.createHook({ init: noop, before: noop, after: noop, settled: noop }) as () => void;
      yield async () => do_not_optimize(await work());
      stop();
    });
    bench('async_hooks.createHook (init/before/after/promiseResolve)', function* () {
      const hook = createHook({ init: noop, before: noop, after: noop, promiseResolve: noop }).enable();
      yield async () => do_not_optimize(await work());
      hook.disable();
    });
  });
});

function nested(depth: number, limit: number): NodeJS.CallSite[] {
  return depth === 0 ? captureSites(nested, limit) : nested(depth - 1, limit);
}

group('stack capture (raw call sites)', () => {
  bench('6 frames', () => do_not_optimize(nested(20, 6)));
  bench('12 frames', () => do_not_optimize(nested(20, 12)));
  bench('24 frames', () => do_not_optimize(nested(30, 24)));
});

const settled = Promise.reject(new Error('disk full'));
settled.catch(() => undefined);
group('outcome of a settled promise', () => {
  bench('V8 [[PromiseState]] (inspector)', () => do_not_optimize(promiseState(settled)));
  bench('util.inspect(promise)', () =>
    do_not_optimize(inspect(settled, { depth: 0, breakLength: Infinity, compact: true })),
  );
});

group('promise-heavy call with a Debugger domain enabled', () => {
  summary(() => {
    bench('no session', async () => do_not_optimize(await work()));
    bench('session connected, Debugger.enable', function* () {
      const session = new Session();
      session.connect();
      session.post('Debugger.enable');
      yield async () => do_not_optimize(await work());
      session.disconnect();
    });
  });
});

await run();
