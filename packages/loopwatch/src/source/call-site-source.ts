/**
 * What the statement around a call does with its value, read from the source text at the call's
 * position (the user's own source, through source maps): `void f()` (the marked fire-and-forget of
 * typescript-eslint's no-floating-promises), `return f()` / `=> f()` (handed to the caller), or
 * anything else. Read only when a never-awaited promise is collected, cached per site.
 */
import { readFileSync } from 'node:fs';
import type { Frame } from '../model/report.js';

export type ValueUse = 'void' | 'returned' | 'other' | 'unknown';

const files = new Map<string, string[] | null>();
const verdicts = new Map<string, ValueUse>();

function linesOf(file: string): string[] | null {
  let lines = files.get(file);
  if (lines === undefined) {
    try {
      lines = readFileSync(file, 'utf8').split('\n');
    } catch {
      lines = null;
    }
    if (files.size > 500) files.clear();
    files.set(file, lines);
  }
  return lines;
}

/** The text before the callee: `obj.save(` at the call's column → what precedes `obj.`. */
export function useOfCallAt(text: string): ValueUse {
  // The position is the callee's name; step back over a member chain (`this.store.`, `a?.b.`).
  const before = text.replace(/(?:[\w$#]+\s*(?:\?\.|\.)\s*)*$/, '').replace(/\s+$/, '');
  if (/(?:^|[^\w$.])void$/.test(before)) return 'void';
  if (/(?:^|[^\w$.])return$/.test(before) || before.endsWith('=>')) return 'returned';
  return 'other';
}

export function valueUseAt(frame: Frame): ValueUse {
  const key = `${frame.file}:${frame.line}:${frame.column}`;
  let v = verdicts.get(key);
  if (v !== undefined) return v;
  const lines = frame.line > 0 && frame.column > 0 ? linesOf(frame.file) : null;
  if (!lines || lines[frame.line - 1] === undefined) v = 'unknown';
  else {
    // A few lines of context: `return (\n  save()\n)` and `=>\n  save()`.
    const from = Math.max(0, frame.line - 4);
    const text = [...lines.slice(from, frame.line - 1), lines[frame.line - 1]!.slice(0, frame.column - 1)]
      .join('\n')
      .replace(/\(\s*$/, '');
    v = useOfCallAt(text);
  }
  if (verdicts.size > 10_000) verdicts.clear();
  verdicts.set(key, v);
  return v;
}

/**
 * The line inside a function that calls `callee`, for a frame a CPU profile gives only at the function's
 * first line (a profile's node has no call-site line for its parent: `hashIt` calling `pbkdf2Sync` shows as
 * `hashIt`'s own first line). Searched from that line to the function's closing brace (the first `}` line
 * indented no deeper than the function's own line); the first call of the callee's name wins. Undefined
 * when the source cannot be read or names no such call.
 */
export function callLineIn(
  file: string,
  fromLine: number,
  callee: string,
): { readonly line: number; readonly column: number } | undefined {
  const name = callee
    .split('.')
    .at(-1)
    ?.replace(/^(get|set) /, '');
  if (!name || !/^[\w$]+$/.test(name) || fromLine <= 0) return undefined;
  const lines = linesOf(file);
  const first = lines?.[fromLine - 1];
  if (!lines || first === undefined) return undefined;
  const indent = first.search(/\S/);
  const call = new RegExp(`(?<![\\w$])${name.replace(/\$/g, '\\$')}\\s*\\(`);
  for (let i = fromLine - 1; i < lines.length && i < fromLine + 500; i++) {
    const text = lines[i]!;
    if (i > fromLine - 1 && /^\s*\}/.test(text) && text.search(/\S/) <= indent) return undefined;
    const m = call.exec(text);
    if (m) return { line: i + 1, column: m.index + 1 };
  }
  return undefined;
}

/**
 * A profile gives a caller only at its function's first line: the user's frames above the leaf get the line
 * in them that calls the frame below (`hashIt` → the `pbkdf2Sync(` line), so that a report from samples
 * names the line a pause would have, and the slow-callback and the stall agree.
 */
export function withCallLines(stack: readonly Frame[], isUser: (f: Frame) => boolean): Frame[] {
  return stack.map((f, i) => {
    if (i === 0 || !isUser(f)) return f;
    const at = callLineIn(f.file, f.line, stack[i - 1]!.functionName);
    return at ? { ...f, line: at.line, column: at.column } : f;
  });
}
