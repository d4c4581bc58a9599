/**
 * Source-map resolution from the generated file itself: it reads the file's `sourceMappingURL` and
 * lets `module.SourceMap` do the decoding. Used where `module.findSourceMap` has nothing: in the
 * watchdog worker (no access to the main thread's cache), and on the main thread for modules loaded
 * before loopwatch turned source maps on (`enableDebug()` from code, `mayhem run --debug`). Results
 * are cached per file; failures resolve to the generated position.
 */
import { SourceMap, type SourceMapPayload } from 'node:module';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import type { Frame } from '../model/report.js';
import { toPath } from '../model/paths.js';

interface Loaded {
  readonly map: SourceMap | undefined;
  readonly mapDir: string;
  readonly sourceRoot: string;
  readonly lines: readonly string[];
}

const cache = new Map<string, Loaded>();

function load(file: string): Loaded {
  const hit = cache.get(file);
  if (hit) return hit;
  let loaded: Loaded = { map: undefined, mapDir: '', sourceRoot: '', lines: [] };
  try {
    const text = readFileSync(file, 'utf8');
    const lines = text.split('\n');
    loaded = { ...loaded, lines };
    const refs = [...text.matchAll(/\/\/[#@] sourceMappingURL=(\S+)/g)];
    const ref = refs[refs.length - 1]?.[1];
    if (ref !== undefined) {
      let json: string;
      let mapDir = path.dirname(file);
      const data = /^data:application\/json[^,]*?(;base64)?,(.*)$/.exec(ref);
      if (data) {
        json = data[1] ? Buffer.from(data[2] ?? '', 'base64').toString('utf8') : decodeURIComponent(data[2] ?? '');
      } else {
        const mapFile = ref.startsWith('file://') ? fileURLToPath(ref) : path.resolve(mapDir, ref);
        json = readFileSync(mapFile, 'utf8');
        mapDir = path.dirname(mapFile);
      }
      const payload = JSON.parse(json) as SourceMapPayload;
      loaded = { map: new SourceMap(payload), mapDir, sourceRoot: payload.sourceRoot ?? '', lines };
    }
  } catch {
    // No map, unreadable file or bad JSON: report the generated position.
  }
  cache.set(file, loaded);
  return loaded;
}

function originalFile(l: Loaded, source: string): string {
  if (source.startsWith('file://')) return toPath(source);
  if (path.isAbsolute(source)) return source;
  if (/^[a-z][a-z0-9+.-]*:/i.test(source)) return source;
  return path.resolve(l.mapDir, l.sourceRoot, source);
}

/**
 * A generated position (0-based line and column, as the inspector gives them) → a frame in the
 * user's source. `column` undefined means "line only" (profile samples): the line's first code column is used.
 */
export function resolvePosition(functionName: string, url: string, line0: number, column0: number | undefined): Frame {
  const file = toPath(url);
  const name = functionName === '' ? '<anonymous>' : functionName;
  if (!path.isAbsolute(file)) return { functionName: name, file, line: line0 + 1, column: (column0 ?? 0) + 1 };
  const l = load(file);
  if (line0 < 0) {
    // Code compiled before the profiler started carries no positions: name the source file only.
    const only = l.map?.payload.sources.length === 1 ? l.map.payload.sources[0] : undefined;
    return {
      functionName: name,
      file: only === undefined || l.map === undefined ? file : originalFile(l, only),
      line: 0,
      column: 0,
    };
  }
  const col0 = column0 ?? Math.max(0, (l.lines[line0] ?? '').search(/\S/));
  if (l.map) {
    const e = l.map.findEntry(line0, col0) as Partial<{
      originalSource: string;
      originalLine: number;
      originalColumn: number;
    }>;
    if (e.originalSource !== undefined && e.originalLine !== undefined) {
      return {
        functionName: name,
        file: originalFile(l, e.originalSource),
        line: e.originalLine + 1,
        column: (e.originalColumn ?? 0) + 1,
      };
    }
  }
  return { functionName: name, file, line: line0 + 1, column: col0 + 1 };
}
