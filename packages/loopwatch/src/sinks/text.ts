/** Readable multi-line reports on stderr, shaped like asyncio's debug log. */
import type { Frame, Report, Sink, TaskSnapshot } from '../model/report.js';
import { shortLocation } from '../model/frames.js';
import { writeStderr } from './stderr.js';

function frameLines(frames: readonly Frame[] | undefined, indent: string): string[] {
  return (frames ?? []).map((f) => `${indent}at ${f.functionName} (${shortLocation(f)})`);
}

function clock(time: number): string {
  return new Date(time).toISOString().slice(11, 23);
}

function dumpLines(tasks: readonly TaskSnapshot[]): string[] {
  const byParent = new Map<number | null, TaskSnapshot[]>();
  const ids = new Set(tasks.map((t) => t.id));
  for (const t of tasks) {
    const key = t.parentId !== null && ids.has(t.parentId) ? t.parentId : null;
    const list = byParent.get(key) ?? [];
    list.push(t);
    byParent.set(key, list);
  }
  const out: string[] = [];
  const walk = (parent: number | null, depth: number): void => {
    for (const t of byParent.get(parent) ?? []) {
      const pad = '  '.repeat(depth + 1);
      out.push(`${pad}Task #${t.id} ${t.name} pending for ${t.ageMs} ms${t.parentId !== null ? ` (parent #${t.parentId})` : ''}`);
      if (t.waitingAt.length > 0) out.push(`${pad}  waiting at:`, ...frameLines(t.waitingAt, `${pad}    `));
      if (t.createdAt.length > 0) out.push(`${pad}  created at:`, ...frameLines(t.createdAt, `${pad}    `));
      walk(t.id, depth + 1);
    }
  };
  walk(null, 0);
  return out;
}

export function formatText(r: Report): string {
  const head = `${clock(r.time)} loopwatch ${r.kind}: ${r.message}`;
  const lines = [head];
  if (r.task) lines.push(`  task: #${r.task.id} ${r.task.name}`);
  if (r.location && r.kind !== 'slow-callback') lines.push(`  at ${r.functionName ?? '<anonymous>'} (${r.location})`);
  if (r.kind === 'slow-callback' && r.stack && r.stack.length > 0) lines.push('  time went to:', ...frameLines(r.stack, '    '));
  else if (r.kind === 'task-destroyed-pending' && r.stack && r.stack.length > 0) lines.push('  was waiting at:', ...frameLines(r.stack, '    '));
  else if (r.kind !== 'slow-callback' && r.stack && r.stack.length > 1) lines.push('  stack:', ...frameLines(r.stack, '    '));
  if (r.createdAt && r.createdAt.length > 0) lines.push('  source_traceback: task created at (most recent call first):', ...frameLines(r.createdAt, '    '));
  if (r.error?.stack) lines.push(...r.error.stack.split('\n').map((l) => `  ${l}`));
  if (r.tasks) lines.push(...dumpLines(r.tasks));
  if (r.lag) {
    const l = r.lag;
    lines.push(`  p50 ${l.p50Ms.toFixed(1)} ms, p99 ${l.p99Ms.toFixed(1)} ms, max ${l.maxMs.toFixed(1)} ms, utilisation ${(l.utilization * 100).toFixed(1)}%, stalls ${l.stalls}`);
  }
  return lines.join('\n') + '\n';
}

export function textSink(): Sink {
  return { write: (r) => writeStderr(formatText(r)) };
}
