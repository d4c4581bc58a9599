/**
 * WAL checkpoints off the event loop, with the WAL kept bounded.
 *
 * A checkpoint copies WAL pages into the database file and fsyncs; run on the event loop (SQLite's
 * auto-checkpoint, inside whichever commit crosses 1,000 pages) it costs ~30% of write throughput
 * and makes that one flush 3x longer. So a worker thread with its own connection runs PASSIVE
 * checkpoints, which never block the main connection's writes.
 *
 * PASSIVE alone does not bound the WAL: SQLite starts writing the WAL from its beginning again only
 * when a write begins after *every* frame was checkpointed, and under a steady write rate a passive
 * checkpoint never catches up with a writer that keeps appending (1.3 GB of WAL after 4 minutes at
 * 1,000 msg/s). So the worker watches the WAL file's size (every 20 ms, off the event loop); when it
 * reaches half its limit, the main thread holds its writes (between two group commits: queued
 * operations wait, the event loop stays free — nothing blocks in a busy handler) while the worker
 * checkpoints the frames written since its last passive run and truncates the WAL to zero; then
 * the writes go on. The WAL never exceeds half its limit plus what is written in 20 ms and the
 * hand-over. The pause costs latency, not throughput: one catch-up checkpoint.
 */
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { Worker } from 'node:worker_threads';
import type Database from 'better-sqlite3';
import type { Logger } from 'pino';

export interface CheckpointerOptions {
  readonly path: string;
  readonly logger: Logger;
  /** The WAL stays under this; a truncating checkpoint starts at half of it. */
  readonly walLimitBytes: number;
  /** Passive checkpoint interval. */
  readonly everyMs?: number;
  /** Hold writes: called between two flushes; nothing may be written until `resume`. */
  readonly pause: () => void;
  /** Writes may go on. */
  readonly resume: () => void;
}

/** Counters of the checkpointer, for tests and the benchmark. */
export interface CheckpointStats {
  /** Passive checkpoints run. */
  passive: number;
  /** Writes held for a truncating checkpoint. */
  truncations: number;
  /** The longest time writes were held, ms. */
  longestPauseMs: number;
  /** The most WAL frames a passive checkpoint found (× page size = bytes). */
  maxWalFrames: number;
}

export interface Checkpointer {
  readonly stats: Readonly<CheckpointStats>;
  stop(): Promise<void>;
}

/** Default WAL bound: tens of MB whatever the write rate. */
export const DEFAULT_WAL_LIMIT_BYTES = 64 * 2 ** 20;
const CHECKPOINT_EVERY_MS = 100;
// How often the worker looks at the WAL's size: at ~40 MB/s of WAL (60,000 msg/s) 20 ms is ~1 MB.
const WATCH_EVERY_MS = 20;
// A held pause that gets no answer (a worker stuck or gone) is given up after this long.
const PAUSE_TIMEOUT_MS = 2_000;

type FromWorker =
  | { type: 'passive'; log: number }
  | { type: 'full'; bytes: number }
  | { type: 'truncated'; busy: number; ms: number }
  | { type: 'error'; error: string };

const WORKER_SOURCE = `
const { statSync } = require('node:fs');
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.module);
const db = new Database(workerData.path, { timeout: 1000, fileMustExist: true });
const walPath = workerData.path + '-wal';
let tick = 0;
let full = false;
const timer = setInterval(() => {
  // The WAL file only grows until it is truncated: its size is the WAL's high-water mark. Watched
  // here, so the event loop never stats a file.
  if (!full) {
    let size = 0;
    try { size = statSync(walPath).size; } catch {}
    if (size >= workerData.triggerBytes) {
      full = true;
      parentPort.postMessage({ type: 'full', bytes: size });
    }
  }
  if (++tick % workerData.passiveEvery !== 0) return;
  try {
    const [r] = db.pragma('wal_checkpoint(PASSIVE)');
    parentPort.postMessage({ type: 'passive', log: r.log });
  } catch (err) {
    parentPort.postMessage({ type: 'error', error: String(err && err.message || err) });
  }
}, workerData.watchMs);
parentPort.on('message', (m) => {
  if (m === 'truncate') {
    // The main thread holds its writes until the answer: this catches up and empties the WAL.
    const t0 = performance.now();
    let busy = 1;
    try { busy = db.pragma('wal_checkpoint(TRUNCATE)')[0].busy; }
    catch (err) { parentPort.postMessage({ type: 'error', error: String(err && err.message || err) }); }
    full = false;
    parentPort.postMessage({ type: 'truncated', busy, ms: performance.now() - t0 });
  } else if (m === 'stop') {
    clearInterval(timer);
    db.close();
    parentPort.postMessage({ type: 'stopped' });
    parentPort.close();
  }
});
`;

/** Start the checkpoint worker; on any worker trouble fall back to SQLite's auto-checkpoint (also bounded). */
export function startCheckpointer(db: Database.Database, o: CheckpointerOptions): Checkpointer | undefined {
  const log = o.logger;
  // After a WAL reset SQLite truncates a bigger file back to this (also bounds the fallback below).
  db.pragma(`journal_size_limit = ${Math.floor(o.walLimitBytes)}`);
  let worker: Worker;
  try {
    worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: {
        path: resolve(o.path),
        module: createRequire(import.meta.url).resolve('better-sqlite3'),
        watchMs: WATCH_EVERY_MS,
        passiveEvery: Math.max(1, Math.round((o.everyMs ?? CHECKPOINT_EVERY_MS) / WATCH_EVERY_MS)),
        triggerBytes: o.walLimitBytes / 2,
      },
    });
  } catch (err) {
    log.warn({ err }, 'SQLite checkpoint worker did not start; checkpointing on the event loop');
    return undefined;
  }
  db.pragma('wal_autocheckpoint = 0');
  worker.unref(); // never what keeps the process alive
  const stats: CheckpointStats = { passive: 0, truncations: 0, longestPauseMs: 0, maxWalFrames: 0 };
  let stopped = false;
  let pausedAt: number | undefined;
  let pauseTimer: NodeJS.Timeout | undefined;

  const endPause = (): void => {
    if (pausedAt === undefined) return;
    const ms = performance.now() - pausedAt;
    if (ms > stats.longestPauseMs) stats.longestPauseMs = ms;
    pausedAt = undefined;
    clearTimeout(pauseTimer);
    o.resume();
  };
  const fallback = (why: string): void => {
    endPause();
    if (stopped) return;
    stopped = true;
    log.warn({ why }, 'SQLite checkpoint worker stopped; checkpointing on the event loop');
    if (db.open) db.pragma('wal_autocheckpoint = 1000');
  };
  let errorLogged = false;
  worker.on('message', (m: FromWorker) => {
    switch (m.type) {
      case 'passive':
        stats.passive++;
        if (m.log > stats.maxWalFrames) stats.maxWalFrames = m.log;
        break;
      case 'full':
        // Between two flushes (a flush is one synchronous call), so no transaction is open.
        if (stopped || pausedAt !== undefined) return;
        pausedAt = performance.now();
        o.pause();
        pauseTimer = setTimeout(() => {
          log.warn({ ms: PAUSE_TIMEOUT_MS }, 'SQLite checkpoint worker did not answer; writes go on');
          endPause();
        }, PAUSE_TIMEOUT_MS);
        worker.postMessage('truncate');
        break;
      case 'truncated':
        stats.truncations++;
        endPause();
        // Busy: another connection (an operator's reader) holds an old snapshot; the next round retries.
        if (m.busy !== 0 && !errorLogged) {
          errorLogged = true;
          log.warn('SQLite WAL could not be truncated: another connection is reading an old snapshot; retrying');
        }
        break;
      case 'error':
        if (!errorLogged) {
          errorLogged = true; // a busy checkpoint is retried next interval; say so once
          log.warn({ error: m.error }, 'SQLite background checkpoint failed; retrying');
        }
        break;
    }
  });
  worker.on('error', (err) => fallback(err.message));
  worker.on('exit', (code) => fallback(`exit code ${code}`));
  return {
    stats,
    async stop(): Promise<void> {
      if (stopped) return;
      stopped = true;
      endPause();
      const exited = new Promise<void>((res) => worker.once('exit', () => res()));
      worker.ref(); // an unref'd worker would let the process exit before close() resolves
      worker.postMessage('stop');
      await exited;
    },
  };
}
