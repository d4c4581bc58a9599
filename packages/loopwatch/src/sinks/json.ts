/** Exactly one JSON object per report, one line each, on stderr (for log shippers and tests). */
import type { Report, Sink } from '../model/report.js';
import { writeStderr } from './stderr.js';

export function formatJson(r: Report): string {
  // JSON.stringify never emits a raw newline, so one report stays one line.
  return JSON.stringify(r) + '\n';
}

export function jsonSink(): Sink {
  return { write: (r) => writeStderr(formatJson(r)) };
}
