/** Exactly one JSON object per report, one line each, on stderr (for log shippers and tests). */
import type { Report, Sink } from '../model/report.js';
import { writeStderr } from './stderr.js';
import { reportMessage } from './words.js';

/** One line: `kind`, the sentence (`message`), then the facts. */
export function formatJson(r: Report): string {
  const { kind, ...facts } = r;
  // JSON.stringify never emits a raw newline, so one report stays one line.
  return JSON.stringify({ kind, message: reportMessage(r), ...facts }) + '\n';
}

export function jsonSink(): Sink {
  return { write: (r) => writeStderr(formatJson(r)) };
}
