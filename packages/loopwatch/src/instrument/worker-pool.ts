/**
 * `runInWorker`: the sanctioned home for blocking code (the article's part-4 lesson, Node's
 * `run_in_executor`). A small pool of worker threads; idle workers do not keep the process alive.
 */
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { pathToFileURL } from 'node:url';
import path from 'node:path';
import { assertMainThread } from './thread-guard.js';

/**
 * Runs in each worker. A job is either a function's source (no closures: it is re-evaluated there)
 * or a module path whose export is called. Results and errors travel by structured clone.
 */
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
parentPort.on('message', async (job) => {
  try {
    let fn;
    if (job.kind === 'source') fn = (0, eval)('(' + job.source + ')');
    else fn = (await import(job.url))[job.exportName];
    if (typeof fn !== 'function') throw new TypeError('runInWorker: ' + (job.exportName || 'job') + ' is not a function');
    parentPort.postMessage({ id: job.id, ok: true, value: await fn(...job.args) });
  } catch (e) {
    parentPort.postMessage({ id: job.id, ok: false, error: e instanceof Error ? { name: e.name, message: e.message, stack: e.stack } : { name: 'Error', message: String(e) } });
  }
});
`;

interface Job {
  id: number;
  kind: 'source' | 'module';
  source?: string;
  url?: string;
  exportName?: string;
  args: unknown[];
}
interface Reply {
  id: number;
  ok: boolean;
  value?: unknown;
  error?: { name: string; message: string; stack?: string };
}
interface Slot {
  worker: Worker;
  busy: number;
}

const slots: Slot[] = [];
const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void; slot: Slot }>();
let nextJob = 1;
let poolSize = Math.max(1, Math.min(4, availableParallelism() - 1));

/** Sets the pool size (default: cores − 1, at most 4). Existing workers stay. */
export function setWorkerPoolSize(n: number): void {
  poolSize = Math.max(1, Math.floor(n));
}

function spawnSlot(): Slot {
  const worker = new Worker(WORKER_SOURCE, { eval: true });
  const slot: Slot = { worker, busy: 0 };
  worker.unref();
  worker.on('message', (reply: Reply) => {
    const w = waiting.get(reply.id);
    if (!w) return;
    waiting.delete(reply.id);
    if (--slot.busy === 0) worker.unref();
    if (reply.ok) w.resolve(reply.value);
    else
      w.reject(
        Object.assign(new Error(reply.error?.message ?? 'worker job failed'), {
          name: reply.error?.name ?? 'Error',
          workerStack: reply.error?.stack,
        }),
      );
  });
  worker.on('error', (err) => {
    // A crashed worker fails its own jobs and leaves the pool.
    for (const [id, w] of waiting)
      if (w.slot === slot) {
        waiting.delete(id);
        w.reject(err);
      }
    slots.splice(slots.indexOf(slot), 1);
  });
  slots.push(slot);
  return slot;
}

function pick(): Slot {
  const idle = slots.find((s) => s.busy === 0);
  if (idle) return idle;
  if (slots.length < poolSize) return spawnSlot();
  return slots.reduce((a, b) => (b.busy < a.busy ? b : a));
}

/**
 * Runs blocking work on a worker thread and resolves with its result.
 * @param fn a self-contained function (its source is sent; it cannot see closures), or a module path
 *   (absolute, or relative to the working directory) whose `exportName` (default `default`) is called.
 * @param args structured-cloneable arguments.
 */
export function runInWorker<T = unknown>(
  fn: ((...args: never[]) => T | Promise<T>) | string,
  args: readonly unknown[] = [],
  exportName = 'default',
): Promise<T> {
  assertMainThread('runInWorker');
  const id = nextJob++;
  const job: Job =
    typeof fn === 'function'
      ? { id, kind: 'source', source: fn.toString(), args: [...args] }
      : { id, kind: 'module', url: pathToFileURL(path.resolve(fn)).href, exportName, args: [...args] };
  const slot = pick();
  return new Promise<T>((resolve, reject) => {
    waiting.set(id, { resolve: resolve as (v: unknown) => void, reject, slot });
    if (slot.busy++ === 0) slot.worker.ref();
    slot.worker.postMessage(job);
  });
}

/** Terminates the pool's workers (pending jobs reject). */
export async function closeWorkerPool(): Promise<void> {
  const all = slots.splice(0);
  await Promise.all(all.map((s) => s.worker.terminate()));
}
