/**
 * What earlier runs left unfinished in the SQLite file: records saved or claimed, but neither acked
 * nor dead-lettered. The memory broker is not durable, so after a crash these are the trace of what
 * was lost; with a durable broker they are redelivered. Read once at start, in chunks of rows (a few
 * ms each, the loop turning between them), only over the rows that existed at open.
 */
import type Database from 'better-sqlite3';
import type { UnfinishedReport } from '../../core/contracts.js';

const CHUNK = 16_384;

interface Tally {
  total: number;
  restarted: number | null;
  inDoubt: number | null;
  oldest: number | null;
}

/** Scan rows [1, endRow); rows from `previousRunFrom` on were written by the run before this one. */
export async function readUnfinished(
  db: Database.Database,
  endRow: number,
  previousRunFrom: number,
  isOpen: () => boolean,
): Promise<UnfinishedReport> {
  const chunk = db.prepare<[number, number], Tally>(
    `SELECT count(*) AS total, sum(restarted) AS restarted, sum(restarted = 0 AND restart_claimed > restart_released) AS inDoubt,
            min(created_at) AS oldest
     FROM message_rows WHERE id >= ? AND id < ? AND acked = 0 AND dead_lettered = 0`,
  );
  const report = {
    total: 0,
    fromPreviousRun: 0,
    restarted: 0,
    inDoubt: 0,
    notRestarted: 0,
    oldestAt: undefined as number | undefined,
  };
  for (let lo = 1; lo < endRow && isOpen(); lo += CHUNK) {
    const hi = Math.min(endRow, lo + CHUNK);
    // Split at the previous run's first row, so its share is counted exactly.
    for (const [a, b] of previousRunFrom > lo && previousRunFrom < hi
      ? [
          [lo, previousRunFrom],
          [previousRunFrom, hi],
        ]
      : [[lo, hi]]) {
      const t = chunk.get(a!, b!)!;
      report.total += t.total;
      if (a! >= previousRunFrom) report.fromPreviousRun += t.total;
      report.restarted += t.restarted ?? 0;
      report.inDoubt += t.inDoubt ?? 0;
      if (t.oldest !== null && (report.oldestAt === undefined || t.oldest < report.oldestAt))
        report.oldestAt = t.oldest;
    }
    await new Promise((r) => setImmediate(r));
  }
  report.notRestarted = report.total - report.restarted - report.inDoubt;
  return report;
}
