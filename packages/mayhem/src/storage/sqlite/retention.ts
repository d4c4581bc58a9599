/**
 * Retention for the SQLite storage: settled records older than their window are deleted, off the
 * hot path, in small batches that never hold the event loop for more than a few ms.
 *
 * - acked messages: after `retentionMs` (`--retention`, default 7 days);
 * - dead-lettered messages and the dead letters themselves: after `deadLetterRetentionMs`
 *   (`--dead-letter-retention`, default 30 days: they are what an operator comes back to look at);
 * - unfinished messages (neither acked nor dead-lettered) are never deleted;
 * - 0 keeps everything of that kind.
 *
 * Rows are in arrival order, so a pass walks them from the oldest and stops at the first row
 * younger than every window; deleting a range of rows touches few pages. Their entries in the id
 * index are random keys, though: deleting them with the rows would dirty a page per row (measured
 * 8.6 µs of CPU per row at 300k rows). So the rows go first and their index entries are left
 * dangling (a lookup joins the row, so a dangling entry finds nothing; a new row for the same id
 * replaces it); once they are a third of the index, a sweep walks the index one key range per
 * batch and deletes, in key order, the entries below the deleted rows whose row is gone.
 *
 * Each batch is one transaction; its size adapts so a batch takes about `TARGET_BATCH_MS`, and the
 * event loop gets a turn between batches. Freed pages are reused by new rows, so a database that
 * runs for months stays the size of its retention window. A message redelivered after its record
 * was deleted is, to this storage, a new message.
 */
import type Database from 'better-sqlite3';
import type { Logger } from 'pino';
import type { IdIndex } from './id-index.js';

export interface RetentionOptions {
  /** Acked messages older than this (ms since their last update) are deleted; 0 keeps them. */
  readonly retentionMs: number;
  /** Dead letters and dead-lettered messages older than this are deleted; 0 keeps them. */
  readonly deadLetterRetentionMs: number;
  /** Time between passes (default 10 s). */
  readonly everyMs?: number;
  /** Wall clock in ms (tests). */
  readonly now?: () => number;
}

/** Counters of the pruner, for tests and the benchmark. */
export interface RetentionStats {
  passes: number;
  batches: number;
  /** Message records deleted. */
  rows: number;
  /** Index entries of deleted rows swept, and the sweeps. */
  swept: number;
  sweeps: number;
  /** Dead letters deleted. */
  deadLetters: number;
  /** Audit rows deleted (kept as long as the dead letters). */
  audit: number;
  /** The most records one batch deleted, and the longest a batch held the loop. */
  largestBatch: number;
  longestBatchMs: number;
}

export interface Pruner {
  readonly stats: Readonly<RetentionStats>;
  /** Run one whole pass now (batch by batch, yielding between them); resolves when it is done. */
  pass(): Promise<void>;
  stop(): void;
}

export const DEFAULT_RETENTION_MS = 7 * 86_400_000;
export const DEFAULT_DEAD_LETTER_RETENTION_MS = 30 * 86_400_000;
const EVERY_MS = 10_000;
const TARGET_BATCH_MS = 2;
const MIN_BATCH = 64;
const MAX_BATCH = 4_096;
// The fewest dangling index entries worth a sweep.
const SWEEP_AFTER = 4_096;

// A row is expired when settled and older than its kind's window (a cutoff of -1 matches nothing).
const EXPIRED = `((acked = 1 AND dead_lettered = 0 AND updated_at < ?) OR (dead_lettered = 1 AND updated_at < ?))`;

/**
 * Start pruning `db` every `everyMs`. `canWrite` says whether a write may start now (not while the
 * checkpointer holds writes, not after close).
 */
export function startPruner(
  db: Database.Database,
  ids: IdIndex,
  o: RetentionOptions,
  hooks: { canWrite: () => boolean; logger: Logger },
): Pruner {
  const now = o.now ?? Date.now;
  const stats: RetentionStats = {
    passes: 0,
    batches: 0,
    rows: 0,
    swept: 0,
    sweeps: 0,
    deadLetters: 0,
    audit: 0,
    largestBatch: 0,
    longestBatchMs: 0,
  };
  const st = {
    first: db.prepare<[number], { id: number; created_at: number }>(
      'SELECT id, created_at FROM message_rows WHERE id >= ? ORDER BY id LIMIT 1',
    ),
    deleteRows: db.prepare<[number, number, number, number]>(
      `DELETE FROM message_rows WHERE id >= ? AND id < ? AND ${EXPIRED}`,
    ),
    // When some of the range's ids may still be only in memory: which rows went.
    deleteRowsReturning: db.prepare<[number, number, number, number], { id: number; message_id: Buffer | string }>(
      `DELETE FROM message_rows WHERE id >= ? AND id < ? AND ${EXPIRED} RETURNING id, message_id`,
    ),
    // One key range of the index: entries below the deleted rows whose row is gone, in key order.
    sweepRange: db.prepare<[Buffer | string, Buffer | string, number]>(
      'DELETE FROM message_ids WHERE message_id >= ? AND message_id < ? AND id < ? AND NOT EXISTS (SELECT 1 FROM message_rows r WHERE r.id = message_ids.id)',
    ),
    sweepFrom: db.prepare<[Buffer | string, number]>(
      'DELETE FROM message_ids WHERE message_id >= ? AND id < ? AND NOT EXISTS (SELECT 1 FROM message_rows r WHERE r.id = message_ids.id)',
    ),
    deleteDeadLetters: db.prepare<[number, number]>(
      'DELETE FROM dead_letters WHERE id IN (SELECT id FROM dead_letters WHERE created_at < ? ORDER BY created_at LIMIT ?)',
    ),
    // The audit trail is kept as long as the dead letters (--dead-letter-retention).
    deleteAudit: db.prepare<[number, number]>(
      'DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE at < ? ORDER BY at LIMIT ?)',
    ),
    // So are the probes' checks (one per probe every --probe-every).
    deleteChecks: db.prepare<[number, number]>(
      'DELETE FROM probe_checks WHERE id IN (SELECT id FROM probe_checks WHERE at < ? ORDER BY at LIMIT ?)',
    ),
  };
  // Rows deleted whose index entries may still dangle, and the highest row id deleted so far.
  let dangling = 0;
  let deletedBelow = 0;
  // The first row younger than the cutoff when the rows phase last caught up: rows from it on are
  // the window (plus the rare old unfinished ones).
  let youngFrom = 0;
  let size = 256;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let running: Promise<void> | undefined;

  /** One batch of rows (and dead letters); true when it found expired work (there may be more). */
  const batch = (cursor: { at: number }, cut: { acked: number; dead: number; scanBelow: number }): boolean => {
    const t0 = performance.now();
    let deleted = 0;
    let returned: { id: number; message_id: Buffer | string }[] = [];
    let deadLetters = 0;
    let more = false;
    db.transaction(() => {
      const first = st.first.get(cursor.at);
      if (first !== undefined && first.created_at >= cut.scanBelow) youngFrom = first.id;
      if (first !== undefined && first.created_at < cut.scanBelow) {
        const hi = first.id + size;
        if (ids.mayBePending(hi - 1)) {
          returned = st.deleteRowsReturning.all(first.id, hi, cut.acked, cut.dead);
          deleted = returned.length;
        } else {
          deleted = st.deleteRows.run(first.id, hi, cut.acked, cut.dead).changes;
        }
        cursor.at = hi;
        if (deleted > 0 && hi > deletedBelow) deletedBelow = hi;
        more = true;
      }
      if (cut.dead > 0) {
        deadLetters = st.deleteDeadLetters.run(cut.dead, size).changes;
        const audit = st.deleteAudit.run(cut.dead, size).changes;
        const checks = st.deleteChecks.run(cut.dead, size).changes;
        if (deadLetters === size || audit === size || checks === size) more = true;
        stats.audit += audit;
      }
    }).immediate();
    // Committed: ids of deleted rows that were only in memory are forgotten too.
    for (const r of returned) if (ids.mayBePending(r.id)) ids.forget(textOf(r.message_id));
    dangling += deleted;
    const ms = performance.now() - t0;
    const n = deleted + deadLetters;
    stats.batches++;
    stats.rows += deleted;
    stats.deadLetters += deadLetters;
    if (n > stats.largestBatch) stats.largestBatch = n;
    if (ms > stats.longestBatchMs) stats.longestBatchMs = ms;
    // Aim at TARGET_BATCH_MS of loop time per batch.
    if (ms < TARGET_BATCH_MS / 2) size = Math.min(MAX_BATCH, size * 2);
    else if (ms > TARGET_BATCH_MS) size = Math.max(MIN_BATCH, Math.floor(size / 2));
    return more;
  };

  const cutoffs = (): { acked: number; dead: number; scanBelow: number } => {
    const t = now();
    const acked = o.retentionMs > 0 ? t - o.retentionMs : -1;
    const dead = o.deadLetterRetentionMs > 0 ? t - o.deadLetterRetentionMs : -1;
    // No row created after the later cutoff can be expired: the rows phase stops there.
    return { acked, dead, scanBelow: Math.max(acked, dead) };
  };

  /**
   * A pass: batch after batch, rows first (the cutoff moves with the clock, so at a high rate the
   * pass keeps up with what expires meanwhile), a sweep batch when no row is due; it ends when
   * neither has work. Each batch is followed by a turn of the event loop.
   */
  const runPass = async (): Promise<void> => {
    const cursor = { at: 0 };
    stats.passes++;
    for (;;) {
      if (stopped) return;
      if (!hooks.canWrite()) {
        await new Promise((r) => setTimeout(r, 10));
        continue;
      }
      let worked: boolean;
      try {
        worked = batch(cursor, cutoffs()) || sweepBatch();
      } catch (err) {
        // A locked or full database: the storage's own writes report it; try again next pass.
        hooks.logger.debug(
          { err: err instanceof Error ? err.message : String(err) },
          'Retention batch failed; retrying next pass',
        );
        return;
      }
      if (!worked) return;
      await new Promise((r) => setImmediate(r)); // the loop's turn between batches
    }
  };

  // A sweep under way: the deleted-row bound it cleans below, how many dangling it covers, and
  // where it is in the key space (-1: the text ids; then 16-bit UUID prefixes up to 65,536).
  let sweeping: { below: number; counted: number; next: number; swept: number } | undefined;
  let width = 256;
  const prefix = (i: number): Buffer => Buffer.from([i >> 8, i & 255]);

  /** One key range of a sweep (starting one once enough entries dangle); false when there is nothing to sweep. */
  const sweepBatch = (): boolean => {
    if (sweeping === undefined) {
      // Sweep once the dangling entries are a third of the index (a sweep reads all of it: about
      // three entries read per entry deleted), and not for a handful.
      const live = ids.nextRow - youngFrom;
      if (dangling < Math.max(SWEEP_AFTER, live / 2)) return false;
      sweeping = { below: deletedBelow, counted: dangling, next: -1, swept: 0 };
    }
    const sw = sweeping;
    const t0 = performance.now();
    const lo = sw.next;
    const hi = lo < 0 ? 0 : Math.min(65_536, lo + width);
    const n = db
      .transaction(
        () =>
          (lo < 0
            ? st.sweepRange.run('', Buffer.alloc(0), sw.below) // '' up to the empty blob: every text id
            : hi >= 65_536
              ? st.sweepFrom.run(prefix(lo), sw.below)
              : st.sweepRange.run(prefix(lo), prefix(hi), sw.below)
          ).changes,
      )
      .immediate();
    const ms = performance.now() - t0;
    sw.swept += n;
    sw.next = hi;
    stats.batches++;
    if (n > stats.largestBatch) stats.largestBatch = n;
    if (ms > stats.longestBatchMs) stats.longestBatchMs = ms;
    // Aim at TARGET_BATCH_MS per range, as the row batches do.
    if (lo >= 0) {
      if (ms < TARGET_BATCH_MS / 2) width = Math.min(8_192, width * 2);
      else if (ms > TARGET_BATCH_MS) width = Math.max(1, Math.floor(width / 2));
    }
    if (hi >= 65_536) {
      stats.sweeps++;
      stats.swept += sw.swept;
      dangling = Math.max(0, dangling - sw.counted);
      sweeping = undefined;
    }
    return true;
  };

  const pass = (): Promise<void> => (running ??= runPass().finally(() => (running = undefined)));
  const schedule = (): void => {
    if (stopped) return;
    timer = setTimeout(() => void pass().then(schedule), o.everyMs ?? EVERY_MS);
    timer.unref();
  };
  if (o.retentionMs > 0 || o.deadLetterRetentionMs > 0) schedule();

  return {
    stats,
    pass,
    stop(): void {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

/** The text form of a stored id (16 bytes → canonical UUID). */
export function textOf(stored: Buffer | string): string {
  if (typeof stored === 'string') return stored;
  const h = stored.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
