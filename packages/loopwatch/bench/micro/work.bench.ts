/**
 * What `trackWork` costs a library that calls it unconditionally (README "Units of work"):
 *   node --expose-gc packages/loopwatch/dist/bench/micro/work.bench.js
 * - loopwatch off: `trackWork` is one property read returning the shared no-op unit, `phase`/`end` empty calls;
 * - on, production mode: a record per unit, a few field writes per phase;
 * - on, debug mode: plus a raw capture of the frames calling `phase()`.
 * Each bench is one unit's life: trackWork, two phases (one built from a template), end.
 */
import { bench, group, run, summary, do_not_optimize } from 'mitata';
import { trackWork } from '../../src/work.js';
import { WorkTable } from '../../src/instrument/work.js';
import { realClock } from '../../src/instrument/clock.js';

let n = 0;
function life(): void {
  const w = trackWork('message', ++n);
  w.phase('restarting');
  w.phase('saving');
  w.end();
}
function oneCall(): void {
  do_not_optimize(trackWork('message', 'k'));
}

group('one trackWork call, loopwatch off', () => {
  bench('trackWork() alone', oneCall);
  bench('a function that does nothing (baseline)', () => do_not_optimize(n));
});

summary(() => {
  group("one unit's life: trackWork, 2 phases, end", () => {
    bench('loopwatch off (shared no-op)', life);
    bench('on, production (no call sites)', function* () {
      const t = new WorkTable(realClock);
      t.install();
      yield life;
      t.uninstall();
    });
    bench('on, debug (call site per phase)', function* () {
      const t = new WorkTable(realClock);
      t.captureSites = true;
      t.install();
      yield life;
      t.uninstall();
    });
  });
});

await run();
