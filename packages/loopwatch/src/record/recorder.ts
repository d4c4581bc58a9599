/**
 * `LOOPWATCH_RECORD=<file>`: the recorded timeline. Instruments tell the recorder what happens (task
 * lifecycles and awaits in debug mode, work units' phases, slow turns, stalls) and it samples loop lag
 * and utilisation every {@link SAMPLE_MS}; each event is a few bytes appended to one buffer
 * (record/encoder.ts). Every {@link FLUSH_MS}, or sooner when the buffer grows past a quarter slot, the
 * buffer becomes a chunk of the ring file, written on libuv's pool (record/ring-file.ts). At exit the
 * rest is written synchronously; a SIGKILL loses what was buffered since the last flush (≤ FLUSH_MS).
 */
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import type { PromiseRecord } from '../model/task.js';
import type { TaskObserver } from '../instrument/tasks.js';
import type { WorkObserver, WorkRecord } from '../instrument/work.js';
import type { RecentSlow } from '../instrument/slow.js';
import type { Clock, Timer } from '../instrument/clock.js';
import { ByteSink } from './bytes.js';
import { RecordEncoder, writeDefs } from './encoder.js';
import { CHUNK_HEADER, R, type RecordingMeta } from './format.js';
import { RingFile } from './ring-file.js';
import { parentId, us, writeKeyframe } from './keyframe.js';

/** Loop lag sampling interval, ms. */
export const SAMPLE_MS = 250;
/** Buffer → file, ms: what a SIGKILL can lose. */
export const FLUSH_MS = 1_000;
export const DEFAULT_MAX_BYTES = 64 << 20;
const SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

export interface RecorderDeps {
  readonly file: string;
  readonly maxBytes?: number;
  readonly clock: Clock;
  readonly meta: Pick<RecordingMeta, 'pid' | 'command' | 'node' | 'mode'>;
  /** Pending user tasks, for keyframes (debug mode). */
  readonly liveTasks?: () => readonly PromiseRecord[];
  /** Live work units, for keyframes. */
  readonly liveWork?: () => readonly WorkRecord[];
  /** Loop lag over the last `windowMs` (the watchdog's heartbeat). */
  readonly lag?: (windowMs: number) => { p50Ms: number; p99Ms: number; maxMs: number };
  /** Event-loop utilisation now (default performance's), for the interval's delta. */
  readonly elu?: () => EventLoopUtilization;
}

export class Recorder implements TaskObserver, WorkObserver {
  readonly ring: RingFile;
  readonly #d: RecorderDeps;
  readonly #enc: RecordEncoder;
  readonly #flushAt: number;
  readonly #timers: Timer[] = [];
  #flushQueued = false;
  #sinceFlush = 0;
  #elu: EventLoopUtilization;
  #lost = 0;
  #closed = false;

  constructor(d: RecorderDeps) {
    this.#d = d;
    const now = d.clock.now();
    this.ring = new RingFile(
      d.file,
      d.maxBytes ?? DEFAULT_MAX_BYTES,
      { ...d.meta, startMs: now, flushMs: FLUSH_MS, maxBytes: d.maxBytes ?? DEFAULT_MAX_BYTES },
      d.clock.origin,
    );
    this.#enc = new RecordEncoder(now);
    this.#flushAt = this.ring.slotSize / 4;
    this.#elu = (d.elu ?? performance.eventLoopUtilization)();
    this.#timers.push(d.clock.every(SAMPLE_MS, this.#sample));
    process.on('exit', this.#onExit);
    for (const sig of SIGNALS) process.on(sig, this.#onSignal);
  }

  readonly #onExit = (): void => this.flushSync();

  /**
   * SIGINT/SIGTERM/SIGHUP end a process without 'exit': the buffer is written first. When nobody else
   * listens, the signal's default action is restored and the signal raised again, so the program ends
   * exactly as it would have (listening would otherwise keep it alive).
   */
  readonly #onSignal = (sig: NodeJS.Signals): void => {
    this.flushSync();
    if (process.listenerCount(sig) > 1) return;
    this.#unhook();
    process.kill(process.pid, sig);
  };

  #unhook(): void {
    process.off('exit', this.#onExit);
    for (const sig of SIGNALS) process.off(sig, this.#onSignal);
  }

  // ---- task lifecycles (debug mode), on the promise hooks' path ----

  taskStarted(rec: PromiseRecord): void {
    const e = this.#enc;
    const def = e.site(rec.sites[0]);
    const created = e.userSite(rec.sites, 1);
    e.head(R.TASK, this.#d.clock.now(), 4);
    e.sink.varint(rec.id);
    e.sink.varint(parentId(rec));
    e.sink.varint(def);
    e.sink.varint(created);
    this.#check();
  }

  taskNamed(rec: PromiseRecord): void {
    const e = this.#enc;
    const name = e.str(rec.name);
    e.head(R.NAME, this.#d.clock.now(), 2);
    e.sink.varint(rec.id);
    e.sink.varint(name);
    this.#check();
  }

  taskAwaited(rec: PromiseRecord, site: NodeJS.CallSite, on: PromiseRecord | undefined): void {
    const e = this.#enc;
    const at = e.site(site);
    e.head(R.AWAIT, this.#d.clock.now(), 3);
    e.sink.varint(rec.id);
    e.sink.varint(at);
    e.sink.varint(on !== undefined && on.isTask && !on.internal ? on.id : 0);
    this.#check();
  }

  taskResumed(rec: PromiseRecord): void {
    this.#enc.head(R.RESUME, this.#d.clock.now(), 1);
    this.#enc.sink.varint(rec.id);
    this.#check();
  }

  taskEnded(rec: PromiseRecord): void {
    this.#enc.head(R.END, this.#d.clock.now(), 1);
    this.#enc.sink.varint(rec.id);
    this.#check();
  }

  // ---- work units ----

  begun(u: WorkRecord): void {
    const e = this.#enc;
    const kind = e.str(u.kind);
    e.head(R.WBEGIN, this.#d.clock.now(), 3);
    e.sink.varint(u.id);
    e.sink.varint(kind);
    e.inline(u.key);
    e.sink.ensure(10);
    e.sink.varint(u.parent === undefined || u.parent.internal ? 0 : u.parent.id);
    this.#check();
  }

  phased(u: WorkRecord): void {
    const e = this.#enc;
    const text = e.str(u.phaseText);
    const at = e.userSite(u.sites);
    e.head(R.WPHASE, this.#d.clock.now(), 3);
    e.sink.varint(u.id);
    e.sink.varint(text);
    e.sink.varint(at);
    this.#check();
  }

  ended(u: WorkRecord): void {
    const e = this.#enc;
    const err = u.error === undefined ? 0 : e.str(u.error);
    e.head(R.WEND, this.#d.clock.now(), 2);
    e.sink.varint(u.id);
    e.sink.varint(err);
    this.#check();
  }

  // ---- turns and the loop ----

  /** A slow turn the slow-callback watcher saw (`culprit` once analysed). */
  slowTurn(r: RecentSlow): void {
    const culprit = r.functionName === undefined ? undefined : `${r.functionName} (${r.location ?? '?'})`;
    this.#turn(r.atMs, r.durationMs, culprit, r.task, 0);
  }

  /** A stall the watchdog measured, ending now. */
  stall(durationMs: number, culprit: string | undefined): void {
    this.#turn(this.#d.clock.now() - durationMs, durationMs, culprit, undefined, 1);
  }

  // eslint-disable-next-line max-params
  #turn(
    startMs: number,
    durationMs: number,
    culprit: string | undefined,
    task: string | undefined,
    flags: number,
  ): void {
    const e = this.#enc;
    const c = culprit === undefined ? 0 : e.str(culprit);
    const t = task === undefined ? 0 : e.str(task);
    const now = this.#d.clock.now();
    e.head(R.SLOW, now, 5);
    e.sink.varint(us(now - startMs));
    e.sink.varint(us(durationMs));
    e.sink.varint(c);
    e.sink.varint(t);
    e.sink.varint(flags);
    this.#check();
  }

  readonly #sample = (): void => {
    const elu = (this.#d.elu ?? performance.eventLoopUtilization)();
    const util = performance.eventLoopUtilization(elu, this.#elu).utilization;
    this.#elu = elu;
    const lag = this.#d.lag?.(SAMPLE_MS) ?? { p50Ms: 0, p99Ms: 0, maxMs: 0 };
    const e = this.#enc;
    e.head(R.LAG, this.#d.clock.now(), 4);
    e.sink.varint(us(lag.p50Ms));
    e.sink.varint(us(lag.p99Ms));
    e.sink.varint(us(lag.maxMs));
    e.sink.varint(Math.round(Math.min(1, Math.max(0, util)) * 10_000));
    this.#sinceFlush += SAMPLE_MS;
    if (this.#sinceFlush >= FLUSH_MS) this.flush();
  };

  /** The buffer grew past a quarter slot: write it out once this turn is over. */
  #check(): void {
    if (this.#enc.sink.pos > this.#flushAt && !this.#flushQueued) {
      this.#flushQueued = true;
      setImmediate(this.#queuedFlush).unref();
    }
  }

  readonly #queuedFlush = (): void => {
    this.#flushQueued = false;
    this.flush();
  };

  /**
   * The buffer becomes a chunk of the ring. A chunk that starts a slot also carries the definitions
   * its records use and a keyframe, so every slot reads on its own.
   */
  flush(): void {
    if (this.#closed) return;
    this.#sinceFlush = 0;
    const e = this.#enc;
    const baseMs = e.baseMs;
    const gen = e.gen;
    e.gen += 1;
    let events = e.sink.take();
    e.baseMs = e.lastMs;
    const defs = new ByteSink(4096);
    const made = e.takeDefs(defs);
    const room = (this.ring.slotSize * 3) / 4;
    if (CHUNK_HEADER + defs.pos + events.length > room) events = this.#lose(events.length, baseMs);
    const place = this.ring.place(CHUNK_HEADER + defs.pos + events.length);
    let head: Uint8Array = new Uint8Array(0);
    let tail: Uint8Array = new Uint8Array(0);
    if (place.fresh) {
      const carried = new ByteSink(4096);
      writeDefs(carried, e.newSlot(gen, new Set(made)));
      tail = this.#keyframe();
      e.takeDefs(defs);
      head = carried.take();
      if (CHUNK_HEADER + head.length + defs.pos + events.length + tail.length > this.ring.slotSize) {
        // The slot cannot define all this buffer used: its events are lost, the keyframe kept.
        events = this.#lose(events.length, baseMs);
        head = new Uint8Array(0);
      }
    }
    const payload = new ByteSink(head.length + defs.pos + events.length + tail.length + 16);
    payload.bytes(head);
    payload.bytes(defs.buf.subarray(0, defs.pos));
    payload.bytes(events);
    payload.bytes(tail);
    if (!this.ring.append(payload.buf.subarray(0, payload.pos), baseMs)) {
      // The disk cannot keep up: what this chunk defined must be defined again.
      this.#lost += payload.pos;
      e.forgetAll();
    }
  }

  #lose(bytes: number, baseMs: number): Uint8Array {
    this.#lost += bytes;
    return this.#lostRecord(bytes, baseMs);
  }

  /** Stands for the dropped events, at the time the last of them had (later deltas build on it). */
  #lostRecord(bytes: number, baseMs: number): Uint8Array {
    const s = new ByteSink(32);
    s.u8(R.LOST);
    s.varint(us(this.#enc.lastMs - baseMs));
    s.varint(bytes);
    return s.take();
  }

  #keyframe(): Uint8Array {
    return writeKeyframe(this.#enc, {
      tasks: this.#d.liveTasks?.() ?? [],
      work: this.#d.liveWork?.() ?? [],
      nowMs: this.#d.clock.now(),
      limit: this.ring.slotSize / 4,
    });
  }

  /** Writes everything now (exit, a signal); the recorder keeps going if the process does. */
  flushSync(): void {
    this.flush();
    this.ring.flushSync();
  }

  /** Bytes lost (a slow disk, an oversized turn). */
  get lost(): number {
    return this.#lost;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    for (const t of this.#timers.splice(0)) t.cancel();
    this.#unhook();
    this.flush();
    this.#closed = true;
    await this.ring.close();
  }
}
