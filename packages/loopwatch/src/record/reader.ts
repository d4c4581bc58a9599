/**
 * Reads a recording (record/format.ts) back: the header, the ring's slots in the order they were
 * written, every chunk's records decoded into events with absolute times (clock ms of the recorded
 * process). Strings are collected from every chunk into one table: ids are never reused, and each slot
 * defines the ones its own records use.
 */
import fs from 'node:fs';
import { ByteSource } from './bytes.js';
import { CHUNK_HEADER, CHUNK_MAGIC, HEADER_SIZE, MAGIC, R, type RecordingMeta } from './format.js';

export type RecEvent =
  | { readonly type: 'task'; t: number; id: number; parent: number; def: number; created: number }
  | { readonly type: 'name'; t: number; id: number; name: number }
  | { readonly type: 'await'; t: number; id: number; site: number; on: number }
  | { readonly type: 'resume' | 'end'; t: number; id: number }
  | { readonly type: 'slow'; t: number; start: number; dur: number; culprit: number; task: number; stall: boolean }
  | { readonly type: 'lag'; t: number; p50: number; p99: number; max: number; util: number }
  | { readonly type: 'wbegin'; t: number; id: number; kind: number; key: string; parent: number }
  | { readonly type: 'wphase'; t: number; id: number; phase: number; site: number }
  | { readonly type: 'wend'; t: number; id: number; error: number }
  | {
      readonly type: 'ktask';
      t: number;
      id: number;
      parent: number;
      def: number;
      created: number;
      name: number;
      start: number;
      site: number;
      busy: number;
    }
  | {
      readonly type: 'kwork';
      t: number;
      id: number;
      kind: number;
      key: string;
      parent: number;
      start: number;
      phase: number;
      phaseAt: number;
      site: number;
    }
  | { readonly type: 'lost'; t: number; bytes: number };

export interface Recording {
  readonly meta: RecordingMeta;
  /** Epoch ms of the recorded process's clock 0. */
  readonly timeOrigin: number;
  readonly strings: ReadonlyMap<number, string>;
  /** In time order. */
  readonly events: readonly RecEvent[];
  /** Chunks read, and bytes lost (dropped by the writer, or unreadable). */
  readonly chunks: number;
  readonly lostBytes: number;
}

export class RecordingError extends Error {
  override readonly name = 'RecordingError';
}

interface Chunk {
  readonly seq: number;
  readonly baseMs: number;
  readonly start: number;
  readonly end: number;
}

const utf8 = new TextDecoder();
const ms = (us: number): number => us / 1000;

/** The chunks of every slot, oldest slot first. */
function chunksOf(buf: Uint8Array, slotSize: number, slotCount: number): Chunk[] {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const slots: Chunk[][] = [];
  for (let k = 0; k < slotCount; k++) {
    const base = HEADER_SIZE + k * slotSize;
    const chunks: Chunk[] = [];
    let pos = base;
    while (pos + CHUNK_HEADER <= Math.min(buf.length, base + slotSize)) {
      if (view.getUint32(pos, true) !== CHUNK_MAGIC) break;
      const seq = view.getUint32(pos + 4, true);
      const len = view.getUint32(pos + 8, true);
      // Leftovers of an earlier lap in this slot carry an older seq.
      if ((chunks.length > 0 && seq !== chunks[0]!.seq) || pos + CHUNK_HEADER + len > base + slotSize) break;
      if (pos + CHUNK_HEADER + len > buf.length) break;
      chunks.push({
        seq,
        baseMs: view.getFloat64(pos + 12, true),
        start: pos + CHUNK_HEADER,
        end: pos + CHUNK_HEADER + len,
      });
      pos += CHUNK_HEADER + len;
    }
    if (chunks.length > 0) slots.push(chunks);
  }
  return slots.sort((a, b) => a[0]!.seq - b[0]!.seq).flat();
}

// One switch over the record types: splitting it would only scatter the format.
function decode(src: ByteSource, type: number, t: number, strings: Map<number, string>): RecEvent | undefined {
  const v = (): number => src.varint();
  const text = (): string => utf8.decode(src.bytes(v()));
  switch (type) {
    case R.STR: {
      const id = v();
      strings.set(id, text());
      return undefined;
    }
    case R.TASK:
      return { type: 'task', t, id: v(), parent: v(), def: v(), created: v() };
    case R.NAME:
      return { type: 'name', t, id: v(), name: v() };
    case R.AWAIT:
      return { type: 'await', t, id: v(), site: v(), on: v() };
    case R.RESUME:
      return { type: 'resume', t, id: v() };
    case R.END:
      return { type: 'end', t, id: v() };
    case R.SLOW: {
      const start = t - ms(v());
      return { type: 'slow', t, start, dur: ms(v()), culprit: v(), task: v(), stall: (v() & 1) === 1 };
    }
    case R.LAG:
      return { type: 'lag', t, p50: ms(v()), p99: ms(v()), max: ms(v()), util: v() / 10_000 };
    case R.WBEGIN:
      return { type: 'wbegin', t, id: v(), kind: v(), key: text(), parent: v() };
    case R.WPHASE:
      return { type: 'wphase', t, id: v(), phase: v(), site: v() };
    case R.WEND:
      return { type: 'wend', t, id: v(), error: v() };
    case R.KTASK: {
      const [id, parent, def, created, name] = [v(), v(), v(), v(), v()];
      const start = t - ms(v());
      return { type: 'ktask', t, id, parent, def, created, name, start, site: v(), busy: ms(v()) };
    }
    case R.KWORK: {
      const [id, kind, key, parent] = [v(), v(), text(), v()];
      const start = t - ms(v());
      const phase = v();
      return { type: 'kwork', t, id, kind, key, parent, start, phase, phaseAt: t - ms(v()), site: v() };
    }
    case R.LOST:
      return { type: 'lost', t, bytes: v() };
    default:
      throw new RangeError(`unknown record type ${type}`);
  }
}

/** Parses a whole recording held in memory. */
export function parseRecording(buf: Uint8Array, name = 'recording'): Recording {
  if (buf.length < HEADER_SIZE || Buffer.from(buf.subarray(0, 8)).toString('latin1') !== MAGIC)
    throw new RecordingError(`loopwatch: ${name} is not a loopwatch recording (LOOPWATCH_RECORD writes them)`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const slotSize = view.getUint32(12, true);
  const slotCount = view.getUint32(16, true);
  const metaLen = view.getUint32(20, true);
  const timeOrigin = view.getFloat64(24, true);
  const meta = JSON.parse(utf8.decode(buf.subarray(32, 32 + metaLen))) as RecordingMeta;
  const strings = new Map<number, string>();
  const events: RecEvent[] = [];
  let lostBytes = 0;
  const chunks = chunksOf(buf, slotSize, slotCount);
  for (const c of chunks) {
    const src = new ByteSource(buf, c.start, c.end);
    let t = c.baseMs;
    try {
      while (!src.done) {
        const type = src.u8();
        t += ms(src.varint());
        const e = decode(src, type, t, strings);
        if (e?.type === 'lost') lostBytes += e.bytes;
        if (e) events.push(e);
      }
    } catch {
      // A chunk cut short (the process died mid-write): keep what decoded.
      lostBytes += c.end - src.pos;
    }
  }
  return { meta, timeOrigin, strings, events, chunks: chunks.length, lostBytes };
}

export function readRecording(file: string): Recording {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw new RecordingError(`loopwatch: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  return parseRecording(buf, file);
}

/** Events of one type with `from ≤ t ≤ to` (binary search on the time-ordered events). */
export function eventsBetween<T extends RecEvent['type']>(
  events: readonly RecEvent[],
  type: T,
  from: number,
  to: number,
): Extract<RecEvent, { type: T }>[] {
  let lo = 0;
  let hi = events.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (events[mid]!.t < from) lo = mid + 1;
    else hi = mid;
  }
  const out: Extract<RecEvent, { type: T }>[] = [];
  for (let i = lo; i < events.length && events[i]!.t <= to; i++) {
    const e = events[i]!;
    if (e.type === type) out.push(e as Extract<RecEvent, { type: T }>);
  }
  return out;
}
