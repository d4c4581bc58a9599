/**
 * Where every instrument sends its reports. One sink at a time; a sink that throws must not take the
 * program down, so failures are swallowed here (a debugging aid must never be the crash).
 */
import type { Report, Sink } from '../model/report.js';

let sink: Sink | undefined;

export function setSink(next: Sink | undefined): void {
  sink = next;
}

export function currentSink(): Sink | undefined {
  return sink;
}

export function emit(report: Report): void {
  try {
    sink?.write(report);
  } catch {
    // Reporting is best effort by design.
  }
}
