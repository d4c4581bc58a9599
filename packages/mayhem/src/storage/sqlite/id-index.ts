/**
 * The message-id index, written in key-range batches instead of one random page per message.
 *
 * Ids are random UUIDs, so an index kept by SQLite on every insert dirties a random page per new
 * message: at a million rows ~1 page (4 KB of WAL) per message, the cost per message doubling from
 * 100k to 1M rows. Here the newest rows' ids stay in memory (`pending`, at most about
 * `batchAfter` plus one flush of them), sorted into 257 key-range buckets as they come; past
 * `batchAfter`, each flush writes whole buckets, oldest first in turn, each bucket's ids in key
 * order, so one page write carries many ids (at a million rows a bucket spans ~25 index pages and
 * holds ~250 ids).
 *
 * Crash safety: `meta.indexed_below` is written in the same transaction as the buckets and is the
 * smallest row id that may be unindexed; on open, every row from it on is indexed before anything
 * else runs. In-memory changes follow the transaction: {@link committed} applies them, and
 * {@link rolledBack} drops them, so memory never claims a row the database does not have.
 */
import type Database from 'better-sqlite3';
import { BUCKETS, bucketOf, isUuid } from './schema.js';

/** Rows whose ids stay in memory before the index is written (about 6 MB of heap). */
export const DEFAULT_BATCH_AFTER = 65_536;

export class IdIndex {
  readonly #pending = new Map<string, number>();
  readonly #buckets: string[][] = Array.from({ length: BUCKETS }, () => []);
  #cursor = 0;
  // The open transaction's changes, applied by committed() or dropped by rolledBack().
  #stagedIds: string[] = [];
  #stagedRows: number[] = [];
  #drained: number[] = [];
  #watermark: number;
  /** The row id the next new message gets (this process is the file's only writer: see sqlite/file.ts). */
  #nextRow: number;
  readonly #lookupUuids: Database.Statement<[string], { id: string; row: number }>;
  readonly #lookupTexts: Database.Statement<[string], { id: string; row: number }>;
  readonly #insertRows: Database.Statement<[string]>;
  readonly #setWatermark: Database.Statement<[number]>;
  readonly #indexFrom: Database.Statement<[number]>;
  readonly #batchAfter: number;

  constructor(db: Database.Database, batchAfter = DEFAULT_BATCH_AFTER) {
    this.#batchAfter = batchAfter;
    // One statement looks up every id of a flush (json_each takes them as one JSON array).
    // An entry whose row retention deleted (it is swept later, see sqlite/retention.ts) finds no row.
    this.#lookupUuids = db.prepare<[string], { id: string; row: number }>(
      `SELECT j.value AS id, i.id AS row FROM json_each(?) j JOIN message_ids i ON i.message_id = unhex(j.value, '-') JOIN message_rows r ON r.id = i.id`,
    );
    this.#lookupTexts = db.prepare<[string], { id: string; row: number }>(
      `SELECT j.value AS id, i.id AS row FROM json_each(?) j JOIN message_ids i ON i.message_id = j.value JOIN message_rows r ON r.id = i.id`,
    );
    // A bucket in one statement: the keys come from the rows themselves, sorted by SQLite. REPLACE:
    // an id whose old row retention deleted may still have its (dangling) entry.
    this.#insertRows = db.prepare<[string]>(
      'INSERT OR REPLACE INTO message_ids (message_id, id) SELECT message_id, id FROM message_rows WHERE id IN (SELECT value FROM json_each(?)) ORDER BY message_id',
    );
    this.#setWatermark = db.prepare<[number]>(`UPDATE meta SET value = ? WHERE key = 'indexed_below'`);
    // Sorted by key, so even a large catch-up writes each index page once.
    this.#indexFrom = db.prepare<[number]>(
      'INSERT OR REPLACE INTO message_ids (message_id, id) SELECT message_id, id FROM message_rows WHERE id >= ? ORDER BY message_id',
    );
    this.#nextRow = db.prepare('SELECT coalesce(max(id), 0) + 1 FROM message_rows').pluck().get() as number;
    this.#watermark =
      (db.prepare(`SELECT value FROM meta WHERE key = 'indexed_below'`).pluck().get() as number | undefined) ?? 1;
    // Rows a previous process wrote but had not indexed (it was killed): index them now.
    if (this.#watermark < this.#nextRow) {
      db.transaction(() => this.#indexAllFrom(this.#watermark)).immediate();
    }
  }

  /** The row id the next new message gets. */
  get nextRow(): number {
    return this.#nextRow;
  }

  /** Ids held in memory, not yet in `message_ids`. */
  get pendingCount(): number {
    return this.#pending.size;
  }

  /** The row of a message whose id is still in memory, else undefined (then see {@link lookUp}). */
  pendingRow(messageId: string): number | undefined {
    return this.#pending.get(messageId);
  }

  /** The rows of indexed messages among `messageIds` (one statement per kind of id); absent ids have none. */
  lookUp(messageIds: readonly string[], found: (messageId: string, row: number) => void): void {
    const uuids: string[] = [];
    const texts: string[] = [];
    for (const id of messageIds) (isUuid(id) ? uuids : texts).push(id);
    if (uuids.length > 0) for (const r of this.#lookupUuids.all(JSON.stringify(uuids))) found(r.id, r.row);
    if (texts.length > 0) for (const r of this.#lookupTexts.all(JSON.stringify(texts))) found(r.id, r.row);
  }

  /** In a transaction: a row id for a new message (the caller inserts the row with it). */
  allocate(messageId: string): number {
    const row = this.#nextRow++;
    this.#stagedIds.push(messageId);
    this.#stagedRows.push(row);
    return row;
  }

  /** Whether a row's id may still be only in memory (rows from the watermark on). */
  mayBePending(row: number): boolean {
    return this.#pending.size > 0 && row >= this.#watermark;
  }

  /** A row that was deleted (retention): forget it if its id is still in memory. */
  forget(messageId: string): void {
    this.#pending.delete(messageId); // its bucket entry is skipped when the bucket is written
  }

  /** In a transaction, after the flush's writes: write buckets while more than `batchAfter` ids wait. */
  drain(): void {
    let over = this.#pending.size - this.#batchAfter;
    for (let visited = 0; over > 0 && visited < BUCKETS; visited++) {
      const b = this.#cursor;
      this.#cursor = (b + 1) % BUCKETS;
      const ids = this.#buckets[b]!;
      if (ids.length === 0) continue;
      const rows: number[] = [];
      for (const id of ids) {
        const row = this.#pending.get(id);
        if (row !== undefined) rows.push(row);
      }
      this.#insertRows.run(JSON.stringify(rows));
      this.#drained.push(b);
      over -= ids.length;
    }
    if (this.#drained.length === 0) return;
    // The smallest row that stays unindexed: a bucket's first id is its oldest.
    let low = this.#stagedRows.length > 0 ? this.#stagedRows[0]! : this.#nextRow;
    for (let b = 0; b < BUCKETS; b++) {
      if (this.#drained.includes(b)) continue;
      for (const id of this.#buckets[b]!) {
        const row = this.#pending.get(id);
        if (row === undefined) continue; // forgotten
        if (row < low) low = row;
        break;
      }
    }
    if (low !== this.#watermark) this.#setWatermark.run(low);
    this.#watermarkStaged = low;
  }

  #watermarkStaged: number | undefined;

  /** The transaction committed: what it wrote is now the truth in memory too. */
  committed(): void {
    for (const b of this.#drained) {
      for (const id of this.#buckets[b]!) this.#pending.delete(id);
      this.#buckets[b] = [];
    }
    for (let i = 0; i < this.#stagedIds.length; i++) {
      const id = this.#stagedIds[i]!;
      this.#pending.set(id, this.#stagedRows[i]!);
      this.#buckets[bucketOf(id)]!.push(id);
    }
    if (this.#watermarkStaged !== undefined) this.#watermark = this.#watermarkStaged;
    this.#reset();
  }

  /** The transaction rolled back: nothing it did happened. */
  rolledBack(): void {
    if (this.#stagedRows.length > 0) this.#nextRow = this.#stagedRows[0]!;
    this.#reset();
  }

  /** In a transaction (at close): index every row still in memory. */
  indexAll(): void {
    this.#indexAllFrom(this.#watermark);
  }

  #indexAllFrom(from: number): void {
    this.#indexFrom.run(from);
    this.#setWatermark.run(this.#nextRow);
    this.#watermark = this.#nextRow;
    this.#pending.clear();
    for (let b = 0; b < BUCKETS; b++) this.#buckets[b] = [];
  }

  #reset(): void {
    this.#stagedIds = [];
    this.#stagedRows = [];
    this.#drained = [];
    this.#watermarkStaged = undefined;
  }
}
