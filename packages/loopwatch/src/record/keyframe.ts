/**
 * A slot's keyframe: every live task and work unit as it is now, written at the start of each slot so
 * the oldest slot the ring kept can be read without the ones it overwrote.
 */
import type { PromiseRecord } from '../model/task.js';
import type { WorkRecord } from '../instrument/work.js';
import { ByteSink } from './bytes.js';
import type { RecordEncoder } from './encoder.js';
import { R } from './format.js';

export const us = (ms: number): number => (ms > 0 ? Math.round(ms * 1000) : 0);

/** The nearest parent that is the user's (node's and loopwatch's own tasks are skipped). */
export function parentId(rec: PromiseRecord): number {
  let p = rec.parent;
  while (p !== undefined && p.internal) p = p.parent;
  return p?.id ?? 0;
}

export interface KeyframeInput {
  readonly tasks: readonly PromiseRecord[];
  readonly work: readonly WorkRecord[];
  readonly nowMs: number;
  /** Bytes at most (what does not fit is known again from its next event). */
  readonly limit: number;
}

/** The keyframe's records, in a buffer of their own (time deltas continue the encoder's). */
export function writeKeyframe(e: RecordEncoder, { tasks, work, nowMs, limit }: KeyframeInput): Uint8Array {
  const events = e.sink;
  const kf = new ByteSink(16 << 10);
  e.sink = kf;
  try {
    for (const t of tasks) {
      if (kf.pos > limit) break;
      const def = e.site(t.sites[0]);
      const created = e.userSite(t.sites, 1);
      const name = t.spawned ? e.str(t.name) : 0;
      const at = e.site(t.awaitSite);
      e.head(R.KTASK, nowMs, 8);
      kf.varint(t.id);
      kf.varint(parentId(t));
      kf.varint(def);
      kf.varint(created);
      kf.varint(name);
      kf.varint(us(nowMs - t.startedAt));
      kf.varint(at);
      kf.varint(us(t.busyMs));
    }
    for (const u of work) {
      if (kf.pos > limit) break;
      const kind = e.str(u.kind);
      const phase = u.phaseText === '' ? 0 : e.str(u.phaseText);
      const at = e.userSite(u.sites);
      e.head(R.KWORK, nowMs, 4);
      kf.varint(u.id);
      kf.varint(kind);
      e.inline(u.key);
      kf.ensure(50);
      kf.varint(u.parent === undefined || u.parent.internal ? 0 : u.parent.id);
      kf.varint(us(nowMs - u.startedAt));
      kf.varint(phase);
      kf.varint(us(nowMs - u.phaseAt));
      kf.varint(at);
    }
  } finally {
    e.sink = events;
  }
  e.baseMs = e.lastMs;
  return kf.take();
}
