/**
 * The recording's file layout (`LOOPWATCH_RECORD`), shared by the writer and the reader.
 *
 *   header (HEADER_SIZE bytes): MAGIC, u32 header size, u32 slot size, u32 slot count, u32 meta length,
 *     f64 time origin (epoch ms of clock 0), then the meta JSON (pid, command, node, mode).
 *   slot × slotCount: the ring. A slot holds chunks, each `u32 CHUNK_MAGIC, u32 seq, u32 length,
 *     f64 base ms` then `length` bytes of records. `seq` grows by one each time the writer moves to the
 *     next slot, so a slot's live chunks share its first chunk's seq, older leftovers of the slot have a
 *     smaller one, and the slots sorted by seq are the timeline in order.
 *
 * A record is `u8 type, varint dt` (µs since the previous record; the first one since the chunk's base)
 * and its fields, varints (LEB128). Strings (names, phases, sites) are defined by a `STR` record and
 * referred to by id (0 = none). Each slot defines the strings its records use (once per slot) and its
 * first chunk ends with a keyframe (the live tasks and work units), so the oldest slot left reads on
 * its own, without the ones the ring dropped.
 */

export const MAGIC = 'LWREC01\n';
export const HEADER_SIZE = 4096;
export const CHUNK_MAGIC = 0x4b43574c; // "LWCK"
export const CHUNK_HEADER = 20;

/** Record types. */
export const R = {
  /** id, byte length, UTF-8 bytes. Sites are `function\nfile\nline\ncolumn`. */
  STR: 1,
  /** task id, parent id, defining site, creation site (its call site). */
  TASK: 2,
  /** task id, name string (a `spawn` name). */
  NAME: 3,
  /** task id, await site, awaited task id. */
  AWAIT: 4,
  /** task id: resumed after its await. */
  RESUME: 5,
  /** task id: settled. */
  END: 6,
  /** µs since it started, duration µs, culprit string, task-name string, flags (1 = a stall). */
  SLOW: 7,
  /** loop lag over the last interval: p50, p99, max (µs), utilisation × 10 000. */
  LAG: 8,
  /** work id, kind string, key string, parent task id. */
  WBEGIN: 9,
  /** work id, phase string, site. */
  WPHASE: 10,
  /** work id, error string (0 = done). */
  WEND: 11,
  /** keyframe task: id, parent, defining site, creation site, name, µs since start, await site, busy µs. */
  KTASK: 12,
  /** keyframe work: id, kind, key, parent, µs since start, phase, µs since the phase, site. */
  KWORK: 13,
  /** bytes dropped (the disk could not keep up, or one turn made more than a slot holds). */
  LOST: 14,
} as const;

/** What the header's meta JSON says about the recorded process. */
export interface RecordingMeta {
  readonly pid: number;
  readonly command: string;
  readonly node: string;
  readonly mode: 'debug' | 'production' | 'off';
  /** Clock ms at which recording began. */
  readonly startMs: number;
  /** How often the buffer is written out, ms (the most a SIGKILL loses). */
  readonly flushMs: number;
  readonly maxBytes: number;
}

/** Slot size for a cap: 1/32 of it, between 64 KiB and 4 MiB. */
export function slotLayout(maxBytes: number): { slotSize: number; slotCount: number } {
  const slotSize = Math.min(4 << 20, Math.max(64 << 10, Math.floor(maxBytes / 32)));
  const slotCount = Math.floor((maxBytes - HEADER_SIZE) / slotSize);
  if (slotCount < 2) throw new Error(`loopwatch: a recording needs at least ${HEADER_SIZE + 2 * slotSize} bytes`);
  return { slotSize, slotCount };
}

/** A site's string: `function\nfile\nline\ncolumn`. */
export function siteText(functionName: string, file: string, line: number, column: number): string {
  return `${functionName}\n${file}\n${line}\n${column}`;
}
