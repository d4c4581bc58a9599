/**
 * `loopwatch/work` (also exported by `loopwatch`): name units of work that are not async functions
 * and say which phase each is in, for `loopwatch ps`, `top`, `where` and the recording.
 *
 * Costless when loopwatch is off, so a library can import it unconditionally: `trackWork` is one
 * property read and returns a shared frozen no-op unit (bench/micro/work.bench.ts). This module imports
 * nothing else of loopwatch, so importing it loads no instrument either.
 */
import { WORK_TRACKER, type WorkTracker, type WorkUnit } from './model/work.js';

export type { WorkUnit } from './model/work.js';

const noop = (): void => undefined;

/** The unit every call gets while loopwatch is off. */
export const NO_WORK: WorkUnit = Object.freeze({ live: false, phase: noop, end: noop, fail: noop });

/**
 * Starts tracking one unit of work of `kind` (`message`) identified by `key` (its id): it shows in
 * `loopwatch ps` as `message <key>` with its phase, how long it has been in it, and (debug mode) the
 * line that set the phase. Call `phase(text)` as it moves on and `end()` (or `fail(err)`) when done.
 */
export function trackWork(kind: string, key: string | number): WorkUnit {
  const tracker = (globalThis as { [WORK_TRACKER]?: WorkTracker })[WORK_TRACKER];
  return tracker === undefined ? NO_WORK : tracker.begin(kind, typeof key === 'string' ? key : String(key));
}
