/**
 * The recording's file: a header and a ring of slots (record/format.ts). Chunks are placed here and
 * written off the loop: `fs.write` runs on libuv's thread pool, one write in flight at a time so the
 * order on disk is the order of the timeline. At exit everything not yet on disk (in flight included:
 * writing a chunk twice at its place is harmless) is written synchronously.
 */
import fs from 'node:fs';
import { CHUNK_HEADER, CHUNK_MAGIC, HEADER_SIZE, MAGIC, slotLayout, type RecordingMeta } from './format.js';

/** Where a chunk goes. */
export interface Placement {
  readonly slot: number;
  readonly seq: number;
  /** The chunk starts a slot (overwriting what the ring held there). */
  readonly fresh: boolean;
}

interface Write {
  readonly data: Uint8Array;
  readonly position: number;
}

/** Chunks queued for the disk before new ones are dropped (the disk cannot keep up). */
const MAX_QUEUED_BYTES = 32 << 20;

export class RingFile {
  readonly slotSize: number;
  readonly slotCount: number;
  /** The current slot's seq (0 before the first chunk). */
  seq = 0;
  #slot = -1;
  #slotPos = 0;
  #fd: number | undefined;
  readonly #queue: Write[] = [];
  #queuedBytes = 0;
  #inFlight: Write | undefined;
  /** Settles when the pool's last write returned (the fd must not be closed under it). */
  #settled: Promise<void> = Promise.resolve();
  /** Bytes written to disk so far (chunk headers included). */
  written = 0;
  #error: string | undefined;

  constructor(
    readonly path: string,
    maxBytes: number,
    meta: RecordingMeta,
    timeOrigin: number,
  ) {
    const { slotSize, slotCount } = slotLayout(maxBytes);
    this.slotSize = slotSize;
    this.slotCount = slotCount;
    const header = Buffer.alloc(HEADER_SIZE);
    header.write(MAGIC, 0, 'latin1');
    header.writeUInt32LE(HEADER_SIZE, 8);
    header.writeUInt32LE(slotSize, 12);
    header.writeUInt32LE(slotCount, 16);
    const json = Buffer.from(JSON.stringify(meta), 'utf8').subarray(0, HEADER_SIZE - 40);
    header.writeUInt32LE(json.length, 20);
    header.writeDoubleLE(timeOrigin, 24);
    json.copy(header, 32);
    // Truncates what an earlier run left: its slots would read as this run's.
    this.#fd = fs.openSync(path, 'w', 0o600);
    fs.writeSync(this.#fd, header, 0, header.length, 0);
  }

  /** Largest chunk a slot takes (header included). */
  get maxChunk(): number {
    return this.slotSize;
  }

  /** Decides where a chunk of `length` bytes (header included) goes; moves to the next slot when it must. */
  place(length: number, forceNewSlot = false): Placement {
    if (this.#slot >= 0 && !forceNewSlot && this.#slotPos + length <= this.slotSize) {
      return { slot: this.#slot, seq: this.seq, fresh: false };
    }
    this.#slot = (this.#slot + 1) % this.slotCount;
    this.seq += 1;
    this.#slotPos = 0;
    return { slot: this.#slot, seq: this.seq, fresh: true };
  }

  /** Room left in the current slot. */
  get room(): number {
    return this.#slot < 0 ? 0 : this.slotSize - this.#slotPos;
  }

  /** Queues a chunk at the current slot's end (after {@link place}); false when it was dropped. */
  append(payload: Uint8Array, baseMs: number): boolean {
    const data = new Uint8Array(CHUNK_HEADER + payload.length);
    const view = new DataView(data.buffer);
    view.setUint32(0, CHUNK_MAGIC, true);
    view.setUint32(4, this.seq, true);
    view.setUint32(8, payload.length, true);
    view.setFloat64(12, baseMs, true);
    data.set(payload, CHUNK_HEADER);
    const position = HEADER_SIZE + this.#slot * this.slotSize + this.#slotPos;
    this.#slotPos += data.length;
    if (this.#queuedBytes + data.length > MAX_QUEUED_BYTES) return false;
    this.#queue.push({ data, position });
    this.#queuedBytes += data.length;
    this.#pump();
    return true;
  }

  #pump(): void {
    if (this.#inFlight !== undefined || this.#fd === undefined) return;
    const w = this.#queue.shift();
    if (w === undefined) return;
    this.#inFlight = w;
    let done!: () => void;
    this.#settled = new Promise((r) => (done = r));
    fs.write(this.#fd, w.data, 0, w.data.length, w.position, (err) => {
      done();
      // flushSync wrote it (and everything queued) meanwhile.
      if (this.#inFlight !== w) return;
      this.#inFlight = undefined;
      this.#queuedBytes -= w.data.length;
      if (err) this.#error ??= err.message;
      else this.written += w.data.length;
      this.#pump();
    });
  }

  /** Writes everything not yet on disk, now (at exit, or before a signal ends the process). */
  flushSync(): void {
    if (this.#fd === undefined) return;
    const all = this.#inFlight ? [this.#inFlight, ...this.#queue] : [...this.#queue];
    this.#inFlight = undefined;
    this.#queue.length = 0;
    this.#queuedBytes = 0;
    for (const w of all) {
      try {
        fs.writeSync(this.#fd, w.data, 0, w.data.length, w.position);
        this.written += w.data.length;
      } catch (e) {
        this.#error ??= (e as Error).message;
      }
    }
  }

  /** The first write error, if any. */
  get error(): string | undefined {
    return this.#error;
  }

  /** Writes the rest and closes the file once the pool's last write returned. */
  async close(): Promise<void> {
    this.flushSync();
    const fd = this.#fd;
    this.#fd = undefined;
    await this.#settled;
    if (fd !== undefined) fs.closeSync(fd);
  }
}
