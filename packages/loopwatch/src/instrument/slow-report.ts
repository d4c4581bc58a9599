/**
 * A slow turn's report: where the time went, best source first (a blocking call that covers the turn, the
 * watchdog's pause of the main thread, the profiler's hottest stack), folded down to the user's own frame.
 */
import type { Attribution, Frame, SlowCallbackReport } from '../model/report.js';
import { culpritOf, formatLocation } from '../model/report.js';
import { isOwnFile, resolveFrame, userFrames } from '../source/frames.js';
import { originOf } from '../model/paths.js';
import { withCallLines } from '../source/call-site-source.js';
import type { HotFrame, HotStack } from '../model/cpu-profile.js';
import type { PromiseRecord } from '../model/task.js';
import { taskRef } from '../model/task.js';
import { createdAtOf } from './describe.js';
import type { BlockingCall } from './blocking.js';
import type { RawFrame } from './watchdog-protocol.js';

/** Frames shown per stack. */
const STACK_LIMIT = 8;

/** A pause of the main thread by the watchdog's worker during a slow turn. */
export interface Slice {
  readonly atMs: number;
  readonly frames: readonly RawFrame[];
}

function withOrigin(f: Frame): Frame {
  const origin = originOf(f.file);
  return origin === 'user' ? f : { ...f, origin };
}

function hotFrameToFrame(f: HotFrame): Frame {
  const line = f.hotLine ?? f.lineNumber + 1;
  // A hot line carries no column: the line's first code column is found at resolution.
  return withOrigin(
    resolveFrame({
      functionName: f.functionName || '<anonymous>',
      file: f.url,
      line,
      column: f.hotLine !== undefined ? 0 : f.columnNumber + 1,
    }),
  );
}

function rawToFrame(f: RawFrame): Frame {
  return withOrigin(
    resolveFrame({
      functionName: f.functionName || '<anonymous>',
      file: f.url,
      line: f.line0 + 1,
      column: f.column0 + 1,
    }),
  );
}

/** The program's or a library's code: not node's own, not loopwatch's, not V8's (no URL). */
function isProgramUrl(url: string): boolean {
  return url !== '' && originOf(url) !== 'node' && !isOwnFile(url);
}

/** Whether a blocking call ended within the turn and took at least half of it. */
export function coversTurn(
  blocking: BlockingCall | undefined,
  startMs: number,
  durationMs: number,
): blocking is BlockingCall {
  return (
    blocking !== undefined &&
    blocking.endMs >= startMs &&
    blocking.endMs <= startMs + durationMs + 1 &&
    blocking.endMs - blocking.startMs >= durationMs / 2
  );
}

interface SlowTurn {
  readonly task: PromiseRecord | undefined;
  readonly startMs: number;
  readonly durationMs: number;
  readonly hot: HotStack;
  readonly blocking: BlockingCall | undefined;
  readonly slices: readonly Slice[];
  readonly time: number;
}

export function slowReport({ task, startMs, durationMs, hot, blocking, slices, time }: SlowTurn): SlowCallbackReport {
  const endMs = startMs + durationMs;
  let stack: Frame[] = [];
  let attribution: Attribution = hot.attribution;
  let slice = slices.find((s) => s.atMs >= startMs - 1 && s.atMs <= endMs + 1);
  // A pause that landed in node's own code between the program's callbacks (runMicrotask in a microtask
  // flood), or in loopwatch's own work, is one instant; the samples' hottest stack says more.
  if (
    slice &&
    !slice.frames.some((f) => isProgramUrl(f.url)) &&
    (hot.frames.some((f) => isProgramUrl(f.url)) || slice.frames.some((f) => isOwnFile(f.url)))
  )
    slice = undefined;
  // A blocking call that took most of this turn names the exact line, column included.
  if (coversTurn(blocking, startMs, durationMs)) {
    stack = userFrames(blocking.sites, STACK_LIMIT);
    attribution = 'blocking-call';
  } else if (slice && (hot.attribution === 'code' || hot.attribution === 'no-sample')) {
    stack = slice.frames
      .filter((f) => !isOwnFile(f.url))
      .slice(0, STACK_LIMIT + 4)
      .map(rawToFrame);
    attribution = 'code';
  } else if (hot.frames.length > 0) {
    stack = withCallLines(hot.frames.map(hotFrameToFrame), (f) => f.origin === undefined);
  }
  stack = foldToUser(stack);
  const culprit = culpritOf(stack);
  return {
    kind: 'slow-callback',
    time,
    durationMs: Math.round(durationMs * 10) / 10,
    attribution,
    ...(task && !task.internal ? { task: taskRef(task), createdAt: createdAtOf(task) } : {}),
    ...(culprit ? { location: formatLocation(culprit), functionName: culprit.functionName } : {}),
    stack,
  };
}

/** At most {@link STACK_LIMIT} frames, but always down to the first of the user's own. */
function foldToUser(stack: Frame[]): Frame[] {
  if (stack.length <= STACK_LIMIT) return stack;
  const kept = stack.slice(0, STACK_LIMIT);
  if (!kept.some((f) => f.origin === undefined)) {
    const mine = stack.slice(STACK_LIMIT).find((f) => f.origin === undefined);
    if (mine) kept.push(mine);
  }
  return kept;
}
