/**
 * storage/sqlite.ts: its queued operation `Op` is one class with fixed fields ("keeps the hot path
 * monomorphic and allocation-light"). This bench copies that shape (the class is private to the
 * module) and compares it with the alternative: one object literal per kind with its own fields, so
 * the flush loop's reads see seven shapes. One iteration queues and flushes one group-commit batch
 * of 2,000 operations in the mix of a message's life (claim, save, restarted, acked; now and then
 * released, failed, dead-lettered). No SQLite here: only the queue and the loop over it.
 * Read p75 beside avg: a batch allocates ~300 kB, so the average carries GC pauses. (A GC before
 * each iteration, mitata's gc('inner'), is no cure: each full GC drops optimised code that embeds
 * the batch's maps, `--trace-deopt` says "weak objects", and the bench then measures that.)
 */
import { bench, do_not_optimize, group, run, summary } from 'mitata';

const enum Kind { Claim, Save, Restarted, Released, Acked, Failed, DeadLetter }
type Mode = 'look' | 'claim';
const noop = (): void => undefined;

/** The shape of sqlite.ts's Op. */
class Op {
  constructor(
    readonly kind: Kind,
    readonly id: string,
    readonly a: unknown,
    readonly b: unknown,
    readonly signal: AbortSignal | undefined,
    readonly resolve: (value: unknown) => void,
    readonly reject: (reason: unknown) => void,
    readonly mode: Mode = 'look',
  ) {}
}

/** The alternative: a literal per kind, each with the fields it needs under their own names. */
type Literal =
  | { kind: Kind.Claim; id: string; request: object; attempt: number; mode: Mode; signal: AbortSignal | undefined; resolve: (v: unknown) => void; reject: (r: unknown) => void }
  | { kind: Kind.Save; id: string; request: object; deliveries: number; signal: AbortSignal | undefined; resolve: (v: unknown) => void; reject: (r: unknown) => void }
  | { kind: Kind.Restarted; id: string; attempts: number; resolve: (v: unknown) => void; reject: (r: unknown) => void }
  | { kind: Kind.Released; id: string; released: number; attempts: number; resolve: (v: unknown) => void; reject: (r: unknown) => void }
  | { kind: Kind.Acked; id: string; record: object; resolve: (v: unknown) => void; reject: (r: unknown) => void }
  | { kind: Kind.Failed; id: string; error: string; attempts: number; signal: AbortSignal | undefined; resolve: (v: unknown) => void; reject: (r: unknown) => void }
  | { kind: Kind.DeadLetter; id: string; letter: { reason: string }; resolve: (v: unknown) => void; reject: (r: unknown) => void };

const BATCH = 2000;
const ids = Array.from({ length: BATCH }, (_, i) => `msg-${i}`);
const request = { messageId: 'm', instanceName: 'cattle-1', publishedAt: 0 };
const record = { restarted: true };
const letter = { reason: 'x', request };
const kindAt = (i: number): Kind => (i % 97 === 0 ? Kind.Released : i % 89 === 0 ? Kind.Failed : i % 83 === 0 ? Kind.DeadLetter : ([Kind.Claim, Kind.Save, Kind.Restarted, Kind.Acked] as const)[i % 4]!);

function queueClasses(): Op[] {
  const q: Op[] = [];
  for (let i = 0; i < BATCH; i++) {
    const k = kindAt(i);
    const id = ids[i]!;
    if (k === Kind.Claim) q.push(new Op(k, id, request, 1, undefined, noop, noop, 'claim'));
    else if (k === Kind.Save) q.push(new Op(k, id, request, 1, undefined, noop, noop));
    else if (k === Kind.Restarted) q.push(new Op(k, id, 1, undefined, undefined, noop, noop));
    else if (k === Kind.Released) q.push(new Op(k, id, 1, 2, undefined, noop, noop));
    else if (k === Kind.Acked) q.push(new Op(k, id, record, undefined, undefined, noop, noop));
    else if (k === Kind.Failed) q.push(new Op(k, id, 'boom', 2, undefined, noop, noop));
    else q.push(new Op(k, id, letter, undefined, undefined, noop, noop));
  }
  return q;
}

function flushClasses(q: Op[]): number {
  let acc = 0;
  for (const op of q) {
    if (op.signal?.aborted === true) continue;
    switch (op.kind) {
      case Kind.Claim: acc += (op.b as number) + (op.mode === 'claim' ? 1 : 0); break;
      case Kind.Save: acc += op.b as number; break;
      case Kind.Restarted: acc += op.a as number; break;
      case Kind.Released: acc += (op.a as number) + (op.b as number); break;
      case Kind.Acked: acc += (op.a as typeof record).restarted ? 1 : 0; break;
      case Kind.Failed: acc += (op.a as string).length; break;
      case Kind.DeadLetter: acc += (op.a as typeof letter).reason.length; break;
    }
    acc += op.id.length;
  }
  for (const op of q) op.resolve(undefined);
  return acc;
}

function queueLiterals(): Literal[] {
  const q: Literal[] = [];
  for (let i = 0; i < BATCH; i++) {
    const kind = kindAt(i);
    const id = ids[i]!;
    if (kind === Kind.Claim) q.push({ kind, id, request, attempt: 1, mode: 'claim', signal: undefined, resolve: noop, reject: noop });
    else if (kind === Kind.Save) q.push({ kind, id, request, deliveries: 1, signal: undefined, resolve: noop, reject: noop });
    else if (kind === Kind.Restarted) q.push({ kind, id, attempts: 1, resolve: noop, reject: noop });
    else if (kind === Kind.Released) q.push({ kind, id, released: 1, attempts: 2, resolve: noop, reject: noop });
    else if (kind === Kind.Acked) q.push({ kind, id, record, resolve: noop, reject: noop });
    else if (kind === Kind.Failed) q.push({ kind, id, error: 'boom', attempts: 2, signal: undefined, resolve: noop, reject: noop });
    else q.push({ kind, id, letter, resolve: noop, reject: noop });
  }
  return q;
}

function flushLiterals(q: Literal[]): number {
  let acc = 0;
  for (const op of q) {
    if ('signal' in op && op.signal?.aborted === true) continue;
    switch (op.kind) {
      case Kind.Claim: acc += op.attempt + (op.mode === 'claim' ? 1 : 0); break;
      case Kind.Save: acc += op.deliveries; break;
      case Kind.Restarted: acc += op.attempts; break;
      case Kind.Released: acc += op.released + op.attempts; break;
      case Kind.Acked: acc += op.record === record ? 1 : 0; break;
      case Kind.Failed: acc += op.error.length; break;
      case Kind.DeadLetter: acc += op.letter.reason.length; break;
    }
    acc += op.id.length;
  }
  for (const op of q) op.resolve(undefined);
  return acc;
}

if (flushClasses(queueClasses()) !== flushLiterals(queueLiterals())) throw new Error('the two queues do not do the same work');

group(`queue and flush one batch of ${BATCH} operations`, () => {
  summary(() => {
    bench('one Op class, fixed fields (sqlite.ts)', () => do_not_optimize(flushClasses(queueClasses())));
    bench('an object literal per kind', () => do_not_optimize(flushLiterals(queueLiterals())));
  });
});

await run();
