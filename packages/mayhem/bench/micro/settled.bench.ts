/**
 * core/settled.ts: a synchronous adapter returning one shared settled promise (`DONE`) against a
 * fresh `Promise.resolve()` per call, awaited the way the pipeline awaits a memory-storage write.
 * Run with --expose-gc (npm run bench:micro does) to see the heap figure per iteration.
 */
import { bench, do_not_optimize, group, run, summary } from 'mitata';
import { promiseHooks } from 'node:v8';
import { DONE } from '../../src/core/settled.js';

function shared(): Promise<void> {
  return DONE;
}
function fresh(): Promise<void> {
  return Promise.resolve();
}

group('a synchronous write, awaited (100 per iteration)', () => {
  summary(() => {
    bench('return DONE (one shared promise)', async () => {
      for (let n = 0; n < 100; n++) await shared();
    });
    bench('return Promise.resolve()', async () => {
      for (let n = 0; n < 100; n++) await fresh();
    });
  });
});

group('a synchronous write, not awaited (the promise only)', () => {
  summary(() => {
    bench('return DONE', () => do_not_optimize(shared()));
    bench('return Promise.resolve()', () => do_not_optimize(fresh()));
  });
});

// Under loopwatch's debug mode a promise hook runs for every promise made: a fresh one pays it.
const noop = (): void => undefined;
group('a synchronous write, awaited (100 per iteration), with a promise hook on', () => {
  summary(() => {
    bench('return DONE', function* () {
      const stop = promiseHooks.createHook({ init: noop, settled: noop }) as () => void;
      yield async () => {
        for (let n = 0; n < 100; n++) await shared();
      };
      stop();
    });
    bench('return Promise.resolve()', function* () {
      const stop = promiseHooks.createHook({ init: noop, settled: noop }) as () => void;
      yield async () => {
        for (let n = 0; n < 100; n++) await fresh();
      };
      stop();
    });
  });
});

await run();
