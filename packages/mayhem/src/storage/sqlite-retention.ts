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
 * replaces it); once enough dangle, a sweep walks the index one key range per batch and deletes,
 * in key order, the entries below the deleted rows whose row is gone.
 *
 * Each batch is one transaction; its size adapts so a batch takes about `TARGET_BATCH_MS`, and the
 * event loop gets a turn between batches. Freed pages are reused by new rows, so a database that
 * runs for months stays the size of its retention window. A message redelivered after its record
 * was deleted is, to this storage, a new message.
 */
import type Database from 'better-sqlite3';
import type { Logger } from 'pino';
import type { IdIndex } from './sqlite-id-index.js';

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
// Sweep when this many index entries dangle (or an eighth of the index, if less); a key range of
// the sweep holds about SWEEP_RANGE entries (a few ms).
const SWEEP_AFTER = 65_536;
const SWEEP_RANGE = 4_096;

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
  const stats: RetentionStats = { passes: 0, batches: 0, rows: 0, swept: 0, sweeps: 0, deadLetters: 0, largestBatch: 0, longestBatchMs: 0 };
  const st = {
    first: db.prepare<[number], { id: number; created_at: number }>('SELECT id, created_at FROM message_rows WHERE id >= ? ORDER BY id LIMIT 1'),
    oldest: db.prepare<[], number | null>('SELECT min(id) FROM message_rows').pluck(),
    deleteRows: db.prepare<[number, number, number, number]>(`DELETE FROM message_rows WHERE id >= ? AND id < ? AND ${EXPIRED}`),
    // When some of the range's ids may still be only in memory: which rows went.
    deleteRowsReturning: db.prepare<[number, number, number, number], { id: number; message_id: Buffer | string }>(
      `DELETE FROM message_rows WHERE id >= ? AND id < ? AND ${EXPIRED} RETURNING id, message_id`),
    // One key range of the index: entries below the deleted rows whose row is gone, in key order.
    sweepRange: db.prepare<[Buffer | string, Buffer | string, number]>(
      'DELETE FROM message_ids WHERE message_id >= ? AND message_id < ? AND id < ? AND NOT EXISTS (SELECT 1 FROM message_rows r WHERE r.id = message_ids.id)'),
    sweepFrom: db.prepare<[Buffer | string, number]>(
      'DELETE FROM message_ids WHERE message_id >= ? AND id < ? AND NOT EXISTS (SELECT 1 FROM message_rows r WHERE r.id = message_ids.id)'),
    deleteDeadLetters: db.prepare<[number, number]>(
      'DELETE FROM dead_letters WHERE id IN (SELECT id FROM dead_letters WHERE created_at < ? ORDER BY created_at LIMIT ?)'),
  };
  // Rows deleted whose index entries may still dangle, and the highest row id deleted so far.
  let dangling = 0;
  let deletedBelow = 0;
  let size = 256;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let running: Promise<void> | undefined;

  /** One batch; true while there is more to do in this pass. */
  const batch = (cursor: { at: number }, cut: { acked: number; dead: number; scanBelow: number }): boolean => {
    const t0 = performance.now();
    let deleted = 0;
    let returned: { id: number; message_id: Buffer | string }[] = [];
    let deadLetters = 0;
    let more = false;
    db.transaction(() => {
      const first = st.first.get(cursor.at);
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
        if (deadLetters === size) more = true;
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

  const runPass = async (): Promise<void> => {
    const t = now();
    const acked = o.retentionMs > 0 ? t - o.retentionMs : -1;
    const dead = o.deadLetterRetentionMs > 0 ? t - o.deadLetterRetentionMs : -1;
    // No row created after the later cutoff can be expired: the pass stops there.
    const cut = { acked, dead, scanBelow: Math.max(acked, dead) };
    const cursor = { at: 0 };
    stats.passes++;
    for (;;) {
      if (stopped) return;
      if (!hooks.canWrite()) {
        await new Promise((r) => setTimeout(r, 10));
        continue;
      }
      let more: boolean;
      try {
        more = batch(cursor, cut);
      } catch (err) {
        // A locked or full database: the storage's own writes report it; try again next pass.
        hooks.logger.debug({ err: err instanceof Error ? err.message : String(err) }, 'Retention batch failed; retrying next pass');
        return;
      }
      if (!more) break;
      await new Promise((r) => setImmediate(r)); // the loop's turn between batches
    }
    // Sweep once the dangling entries are a good share of the index (the sweep reads all of it).
    const live = ids.nextRow - (st.oldest.get() ?? ids.nextRow);
    if (dangling > 0 && dangling >= Math.min(SWEEP_AFTER, live / 8)) await sweep();
  };

  /** Walk the index one key range per batch (a UUID's first bytes; text ids first), deleting dangling entries. */
  const sweep = async (): Promise<void> => {
    const below = deletedBelow;
    const counted = dangling;
    // Ranges of about SWEEP_RANGE entries: by the first byte, or the first two for a big index.
    const twoBytes = ids.nextRow > 256 * SWEEP_RANGE;
    const ranges = twoBytes ? 65_536 : 256;
    const key = (i: number): Buffer => (twoBytes ? Buffer.from([i >> 8, i & 255]) : Buffer.from([i]));
    let swept = 0;
    for (let i = -1; i < ranges; i++) {
      if (stopped) return;
      if (!hooks.canWrite()) {
        await new Promise((r) => setTimeout(r, 10));
        i--;
        continue;
      }
      const t0 = performance.now();
      try {
        // -1: every text id ('' up to the empty blob: all text sorts before any blob).
        const n = db.transaction(() => (i < 0 ? st.sweepRange.run('', Buffer.alloc(0), below)
          : i === ranges - 1 ? st.sweepFrom.run(key(i), below) : st.sweepRange.run(key(i), key(i + 1), below)).changes).immediate();
        swept += n;
        const ms = performance.now() - t0;
        stats.batches++;
        if (n > stats.largestBatch) stats.largestBatch = n;
        if (ms > stats.longestBatchMs) stats.longestBatchMs = ms;
      } catch (err) {
        hooks.logger.debug({ err: err instanceof Error ? err.message : String(err) }, 'Retention sweep failed; retrying next pass');
        return;
      }
        await new Promise((r) => setImmediate(r));
    }
    stats.sweeps++;
    stats.swept += swept;
    dangling = Math.max(0, dangling - counted);
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
