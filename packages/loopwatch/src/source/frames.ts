/**
 * Stack capture and formatting. Capture is the expensive part (about a microsecond per frame walked: bench/micro/claims.bench.ts), so it keeps
 * V8's raw structured call sites and does nothing else per capture: paths, URLs, source maps and
 * names are worked out only when a report or dump turns call sites into {@link Frame}s.
 */
import { findSourceMap } from 'node:module';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import type { Frame } from '../model/report.js';
import { resolvePosition } from './source-map-file.js';
import { PathGlobs } from '../model/glob.js';
import { originOf, toPath } from '../model/paths.js';
import { isBuiltinSite, safe, siteName, sitesOf, type RawSites } from '../model/call-sites.js';

/** Frames kept per capture: the function's own frame plus `print_stack(limit=5)` callers. */
export const CAPTURE_LIMIT = 6;

/**
 * Raw V8 call sites of the caller, frames above and including `skip` removed (formatted now).
 * `Error.stackTraceLimit` and `prepareStackTrace` are restored so the program's own errors are untouched
 * (and node's source-map-aware formatter never runs for ours).
 */
// eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
export function captureSites(skip: Function, limit = CAPTURE_LIMIT): NodeJS.CallSite[] {
  return sitesOf(captureRaw(skip, limit));
}

/**
 * A capture V8 has not formatted yet: `Error.captureStackTrace` keeps the raw frames and formats them on
 * the first read of `stack`. Walking the frames is about a third of an eager capture's cost; making the
 * call-site objects (and node's formatting hook around it) is the rest, so captures that only a report
 * or a dump will ever read are left raw, and turned into call sites by {@link sitesOf} if somebody asks.
 */
// eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
export function captureRaw(skip: Function, limit = CAPTURE_LIMIT): RawSites {
  const oldLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = limit;
  const holder: { stack?: unknown } = {};
  try {
    Error.captureStackTrace(holder, skip);
  } finally {
    Error.stackTraceLimit = oldLimit;
  }
  return holder;
}

/** Where loopwatch's own compiled sources live: frames from here are never "the user's". */
const OWN_SRC_URL = new URL('..', import.meta.url).href;
const OWN_SRC_DIR = path.dirname(path.dirname(fileURLToPath(import.meta.url))) + path.sep;

/**
 * Verdicts per file name. Called per capture (task classification), so no URL parsing here: V8 hands
 * out the same few script names over and over, and a string-keyed lookup is a fraction of a parse.
 */
const internalByFile = new Map<string, boolean>();
/** `LOOPWATCH_IGNORE`: files whose frames count as nobody's (test helpers, generated code). */
let ignored = new PathGlobs([]);

export function setIgnoredPaths(globs: readonly string[]): void {
  ignored = new PathGlobs(globs);
  internalByFile.clear();
}

/** loopwatch's own compiled sources. */
export function isOwnFile(file: string): boolean {
  // Another copy of loopwatch in the same process (the program's own import beside register's) is ours too.
  return file.startsWith(OWN_SRC_URL) || file.startsWith(OWN_SRC_DIR) || file.includes('/node_modules/loopwatch/dist/');
}

export function isInternalFile(file: string): boolean {
  let v = internalByFile.get(file);
  if (v === undefined) {
    v =
      file.startsWith('node:') ||
      file.startsWith('internal/') ||
      isOwnFile(file) ||
      (!ignored.empty && ignored.matches(file));
    // Bounded: eval'd code can mint endless names.
    if (internalByFile.size > 10_000) internalByFile.clear();
    internalByFile.set(file, v);
  }
  return v;
}

/** One call site → a frame in the user's own source (source maps honoured). */
export function siteToFrame(site: NodeJS.CallSite): Frame {
  const file = site.getFileName() ?? '<anonymous>';
  const f = resolveFrame({
    functionName: siteName(site),
    file,
    line: site.getLineNumber() ?? 0,
    column: site.getColumnNumber() ?? 0,
  });
  const origin = originOf(f.file);
  // Only the exception is marked: a frame without `origin` is the user's.
  return origin === 'user' ? f : { ...f, origin };
}

/** Maps a generated position back through the file's source map, if it has one. */
export function resolveFrame(frame: Frame): Frame {
  const file = toPath(frame.file);
  if (frame.line <= 0 || isInternalFile(frame.file)) return { ...frame, file };
  const map = safe(() => findSourceMap(file));
  // Loaded before source maps were turned on: node kept no map, so read it from the file.
  if (!map)
    return path.isAbsolute(file)
      ? resolvePosition(frame.functionName, file, frame.line - 1, frame.column > 0 ? frame.column - 1 : undefined)
      : { ...frame, file };
  const column = frame.column > 0 ? frame.column : firstCodeColumn(file, frame.line);
  type Entry = { originalSource?: string; originalLine?: number; originalColumn?: number };
  const entry = safe<Entry>(() => map.findEntry(frame.line - 1, column - 1));
  if (!entry || entry.originalSource === undefined || entry.originalLine === undefined)
    return { ...frame, file, column };
  return {
    functionName: frame.functionName,
    file: toPath(entry.originalSource),
    line: entry.originalLine + 1,
    column: (entry.originalColumn ?? 0) + 1,
  };
}

const sourceLines = new Map<string, string[]>();

/** The first non-blank column (1-based) of a generated line: sampled positions carry a line only. */
function firstCodeColumn(file: string, line: number): number {
  let lines = sourceLines.get(file);
  if (!lines) {
    lines = safe(() => readFileSync(file, 'utf8').split('\n')) ?? [];
    sourceLines.set(file, lines);
  }
  const text = lines[line - 1];
  if (text === undefined) return 1;
  const m = /\S/.exec(text);
  return m ? m.index + 1 : 1;
}

/** Frames of the user's own code, builtins and loopwatch dropped, at most `limit`. */
export function userFrames(sites: readonly NodeJS.CallSite[], limit = 5): Frame[] {
  const out: Frame[] = [];
  for (const site of sites) {
    if (out.length >= limit) break;
    if (isBuiltinSite(site)) continue;
    const file = site.getFileName() ?? '';
    if (isInternalFile(file)) continue;
    out.push(siteToFrame(site));
  }
  return out;
}

/** Whether a raw file name belongs to the user (not node, not loopwatch). */
export function isUserFile(file: string | null | undefined): boolean {
  return !!file && !isInternalFile(file);
}
