/** Readable multi-line reports on stderr, shaped like asyncio's debug log. */
import type { Frame, Report, Sink, TaskGroup, TaskSnapshot } from '../model/report.js';
import { fieldsOf } from '../model/report.js';
import { reportMessage } from './words.js';
import { shortLocation } from '../model/paths.js';
import { writeStderr } from './stderr.js';

const MARK: Record<string, string> = { library: '  [library]', node: '  [node]' };

function frameLines(frames: readonly Frame[] | undefined, indent: string): string[] {
  const out: string[] = [];
  let folded = 0;
  const list = frames ?? [];
  list.forEach((f, i) => {
    // Runs of node-internal frames between the user's say little: fold them into one line.
    if (f.origin === 'node' && i > 0 && i < list.length - 1 && list[i + 1]?.origin === 'node') {
      folded++;
      return;
    }
    if (folded > 0) {
      out.push(`${indent}… ${folded} node frame${folded === 1 ? '' : 's'}`);
      folded = 0;
    }
    out.push(`${indent}at ${f.functionName} (${shortLocation(f)})${MARK[f.origin ?? 'user'] ?? ''}`);
  });
  return out;
}

function clock(time: number): string {
  return new Date(time).toISOString().slice(11, 23);
}

function seconds(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${ms} ms`;
}

function chain(frames: readonly Frame[]): string {
  return frames.map(shortLocation).join(' ← ');
}

function dumpLines(tasks: readonly TaskSnapshot[], groups: readonly TaskGroup[]): string[] {
  const byParent = new Map<number | null, TaskSnapshot[]>();
  const ids = new Set(tasks.map((t) => t.id));
  for (const t of tasks) {
    const key = t.parentId !== null && ids.has(t.parentId) ? t.parentId : null;
    const list = byParent.get(key) ?? [];
    list.push(t);
    byParent.set(key, list);
  }
  const out: string[] = [];
  for (const g of groups) {
    out.push(
      `  ${g.count} × ${g.name}, oldest ${seconds(g.oldestMs)}${g.waitingAt.length > 0 ? `, waiting at ${chain(g.waitingAt)}` : ''}`,
    );
  }
  const walk = (parent: number | null, depth: number): void => {
    for (const t of byParent.get(parent) ?? []) {
      const pad = '  '.repeat(depth + 1);
      const lock = t.waitsForLock !== undefined ? `waits for lock "${t.waitsForLock}"` : '';
      const awaits =
        t.awaitsId !== undefined ? `, ${lock ? `${lock} held by` : 'awaits'} #${t.awaitsId}` : lock ? `, ${lock}` : '';
      out.push(
        `${pad}Task #${t.id} ${t.name} pending for ${t.ageMs} ms${t.parentId !== null ? ` (parent #${t.parentId}${awaits})` : awaits ? ` (${awaits.slice(2)})` : ''}`,
      );
      if (t.waitingAt.length > 0) out.push(`${pad}  waiting at:`, ...frameLines(t.waitingAt, `${pad}    `));
      if (t.createdAt.length > 0) out.push(`${pad}  created at:`, ...frameLines(t.createdAt, `${pad}    `));
      walk(t.id, depth + 1);
    }
  };
  walk(null, 0);
  return out;
}

function head(r: Report): string {
  const who =
    r.pid === undefined ? 'loopwatch' : `loopwatch[${r.pid}${r.script && r.script !== '-' ? ` ${r.script}` : ''}]`;
  return `${clock(r.time)} ${who} ${r.kind}: ${reportMessage(r)}`;
}

export function formatText(report: Report): string {
  const lines = [head(report)];
  const r = { kind: report.kind, ...fieldsOf(report) };
  if (r.task) lines.push(`  task: #${r.task.id} ${r.task.name}`);
  const timed = r.kind === 'slow-callback' || r.kind === 'stall';
  if (r.location && !timed) lines.push(`  at ${r.functionName ?? '<anonymous>'} (${r.location})`);
  if (timed && r.stack && r.stack.length > 0)
    lines.push(r.kind === 'stall' ? '  stack:' : '  time went to:', ...frameLines(r.stack, '    '));
  else if (r.kind === 'task-destroyed-pending' && r.stack && r.stack.length > 0)
    lines.push('  was waiting at:', ...frameLines(r.stack, '    '));
  else if (!timed && r.stack && r.stack.length > 1) lines.push('  stack:', ...frameLines(r.stack, '    '));
  if (r.createdAt && r.createdAt.length > 0)
    lines.push('  source_traceback: task created at (most recent call first):', ...frameLines(r.createdAt, '    '));
  if (r.abortedBy)
    lines.push(
      `  aborted: ${r.abortedBy.reason}, by (most recent call first):`,
      ...r.abortedBy.at.map((a) => `    ${a}`),
      ...(r.abortedBy.via ?? []).map((v) => `    via ${v}`),
    );
  if (r.error?.stack) lines.push(...r.error.stack.split('\n').map((l) => `  ${l}`));
  if (r.cycles) for (const c of r.cycles) lines.push(`  cycle: ${c.map((t) => `${t.name} (#${t.id})`).join(' → ')}`);
  if (r.tasks) lines.push(...dumpLines(r.tasks, r.groups ?? []));
  if (r.modules) for (const m of r.modules) lines.push(`    ${Math.round(m.ms)} ms  ${m.file}`);
  if (r.summary) for (const s of r.summary.bySite.slice(0, 20)) lines.push(`  ${s.count} × ${s.kind} ${s.site}`);
  if (r.summary?.notWatched)
    lines.push(`  not watched (read-only on this Node, left alone): ${r.summary.notWatched.join(', ')}`);
  if (r.lag) {
    const l = r.lag;
    lines.push(
      `  p50 ${l.p50Ms.toFixed(1)} ms, p99 ${l.p99Ms.toFixed(1)} ms, max ${l.maxMs.toFixed(1)} ms, utilisation ${(l.utilization * 100).toFixed(1)}%, stalls ${l.stalls}`,
    );
  }
  return lines.join('\n') + '\n';
}

export function textSink(): Sink {
  return { write: (r) => writeStderr(formatText(r)) };
}
