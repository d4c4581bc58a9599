/**
 * The words of a report: its one sentence, written from the facts the instruments produced. The JSON
 * sink puts it in `message`, the text sink on the head line. A new output reuses it; a new kind adds
 * one case here.
 */
import path from 'node:path';
import type { Attribution, Frame, LoopLagFigures, RateLimited, Report, ReportOf } from '../model/report.js';
import { culpritOf, formatLocation, onlyNodeFrames } from '../model/report.js';
import { shortLocation } from '../model/paths.js';

const plural = (n: number, one: string): string => `${n} ${one}${n === 1 ? '' : 's'}`;

const ATTRIBUTION_TEXT: Record<Attribution, string> = {
  code: '',
  'blocking-call': '',
  'garbage-collection': 'mostly in garbage collection (no code stood out in the samples)',
  compilation: 'mostly compiling code',
  'module-loading': 'loading modules',
  native: 'in native code or V8 itself (no JavaScript frame in the samples)',
  'no-sample': 'no profiler sample fell in this turn (too short, or the profiler was busy)',
};

function taskDump(r: ReportOf<'task-dump'>): string {
  if (!r.tracking) return 'task tracking is off (enable debug mode to see async function tasks)';
  let m = `${r.count} pending task${r.count === 1 ? '' : 's'}`;
  if (r.groups && r.groups.length > 0) m += ` (${r.groups.map((g) => `${g.count} × ${g.name}`).join(', ')})`;
  if (r.cycles && r.cycles.length > 0)
    m += `; await-graph contains cycles: ${r.cycles.map((c) => c.map((t) => t.name).join(' → ')).join('; ')}`;
  return m;
}

function suppressedNote(s: RateLimited): string {
  return ` (plus ${plural(s.count, 'more slow callback')} since the previous report, longest ${Math.round(s.longestMs)} ms, not analysed: reports are rate-limited)`;
}

/**
 * The frame to name as where the time went inside the culprit: the leaf, except that under node's own
 * frames alone it is the API the program called (`pbkdf2Sync`, `gzipSync`, `queueMicrotask`: the node frame
 * right inside the culprit), not node's helper at the bottom (`run`, `slice`, `enqueueMicrotask`).
 */
function apiLeaf(stack: readonly Frame[], culprit: Frame): Frame | undefined {
  const at = stack.indexOf(culprit);
  if (at <= 0) return stack[0];
  const inner = stack.slice(0, at);
  if (!inner.every((f) => f.origin === 'node')) return stack[0];
  // V8's glue frames have no file (`consoleCall`, `run`): the outermost of node's with one.
  return inner.filter((f) => f.file !== '').at(-1) ?? stack[0];
}

function slowCallback(r: ReportOf<'slow-callback'>): string {
  if (r.burst) {
    const b = r.burst;
    return `${plural(b.count, 'more slow callback')} since ${new Date(b.sinceMs).toISOString()}, longest ${Math.round(b.longestMs)} ms, ${Math.round(b.totalMs)} ms in all (not analysed: reports are rate-limited)`;
  }
  const culprit = culpritOf(r.stack);
  let where = '';
  if (culprit && onlyNodeFrames(r.stack)) {
    // Only node's own frames (processTicksAndRejections, the test runner's reporter): nothing of the
    // program's to blame, and no line of it to change; said as such, not as a culprit.
    where = ` in node's own code (${culprit.functionName}, ${path.basename(culprit.file)}:${culprit.line}), no frame of the program on the stack`;
  } else if (culprit) {
    where = ` in ${culprit.functionName} (${formatLocation(culprit)})`;
    const leaf = apiLeaf(r.stack, culprit);
    if (leaf && leaf !== culprit) where += `, inside ${leaf.functionName} (${path.basename(leaf.file)}:${leaf.line})`;
  } else if (ATTRIBUTION_TEXT[r.attribution]) where = `, ${ATTRIBUTION_TEXT[r.attribution]}`;
  const who = r.task ? `task ${r.task.name}` : 'a callback';
  return `Executing ${who} took ${Math.round(r.durationMs)} ms${where}${r.suppressed ? suppressedNote(r.suppressed) : ''}`;
}

function stall(r: ReportOf<'stall'>): string {
  const ms = Math.round(r.durationMs);
  const stack = r.stack ?? [];
  if (r.stall.ongoing) {
    const top = culpritOf(stack);
    return `event loop blocked for ${ms} ms and still blocked${top ? ` in ${top.functionName} (${formatLocation(top)})` : ''}`;
  }
  const top = culpritOf(stack);
  const where =
    top && onlyNodeFrames(stack)
      ? `node's own code (${top.functionName}, ${path.basename(top.file)}:${top.line}; no frame of the program on the stack)`
      : r.location !== undefined
        ? `${r.functionName ?? '<anonymous>'} (${r.location})`
        : 'unknown code';
  const task = r.task ? ` while running task "${r.task.name}" (#${r.task.id})` : '';
  switch (r.stall.capture) {
    case 'paused':
      return `event loop stalled for ${ms} ms in ${where}${task}`;
    case 'paused-after-native': {
      const at = stack.findIndex((f) => formatLocation(f) === r.location);
      const inner = at > 0 ? stack[at - 1] : undefined;
      const native = inner ? ` under ${inner.functionName} (${formatLocation(inner)})` : '';
      return (
        `event loop stalled for ${ms} ms in a native call${native} made by ${where}${task}; ` +
        `V8 could not interrupt it, the frame is where it returned (${r.stall.pauseLatencyMs ?? '?'} ms after the pause request)`
      );
    }
    case 'sampled':
      return `event loop stalled for ${ms} ms, mostly in ${where} (CPU samples; no pause)${task}`;
    default:
      return `event loop stalled for ${ms} ms (blocking frame unknown${r.stall.note ? `: ${r.stall.note}` : ''})${task}`;
  }
}

export function lagSentence(f: LoopLagFigures): string {
  return (
    `event loop over ${(f.intervalMs / 1000).toFixed(1)} s: lag p50 ${f.p50Ms.toFixed(1)} ms, p99 ${f.p99Ms.toFixed(1)} ms, ` +
    `max ${f.maxMs.toFixed(1)} ms; utilisation ${(f.utilization * 100).toFixed(0)}%; ${plural(f.stalls, 'stall')}`
  );
}

function startUp(r: ReportOf<'start-up'>): string {
  const top = r.modules[0];
  const most = top
    ? `; most in ${shortLocation({ functionName: '', file: top.file, line: 0, column: 0 }).replace(/:0:0$/, '')} (${top.ms} ms)`
    : '';
  return `loading modules took ${Math.round(r.durationMs)} ms in ${plural(r.turns, 'slow turn')} (longest ${Math.round(r.longestMs)} ms)${most}`;
}

function summary(r: ReportOf<'summary'>): string {
  const counted = Object.entries(r.summary.byKind).filter(([k]) => k !== 'task-dump' && k !== 'loop-lag');
  return `${counted.map(([k, n]) => `${n} ${k}`).join(', ')} in this process`;
}

/** The one sentence that says what a report is about. */
export function reportMessage(r: Report): string {
  switch (r.kind) {
    case 'task-dump':
      return taskDump(r);
    case 'unhandled-task-error':
      return r.task
        ? `Task ${r.task.name} failed and nobody handled it: ${r.error.name}: ${r.error.message}`
        : `Unhandled rejection: ${r.error.name}: ${r.error.message}`;
    case 'task-destroyed-pending':
      return `Task ${r.task.name} was destroyed but it is pending: it awaited something nobody can settle any more`;
    case 'never-awaited':
      return `Promise from ${r.task.name}() was never awaited, chained or registered as a task`;
    case 'slow-callback':
      return slowCallback(r);
    case 'stall':
      return stall(r);
    case 'loop-lag':
      return lagSentence(r.lag);
    case 'thread-affinity':
      return `${r.api} blocked the main thread for ${r.durationMs.toFixed(1)} ms; move it off the loop (runInWorker) or use the async API`;
    case 'start-up':
      return startUp(r);
    case 'summary':
      return summary(r);
  }
}
