/**
 * `thread-affinity`: synchronous blocking APIs called on the main thread after start-up. Node's
 * hazard is not another thread touching the loop (objects cannot cross threads) but the loop's own
 * thread parking in a syscall. The module functions are wrapped (and the ESM named exports re-synced),
 * each call site is reported once, and the last call is kept so a slow-callback report can name it.
 */
import { performance } from 'node:perf_hooks';
import fs from 'node:fs';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { isMainThread } from 'node:worker_threads';
import type { Report } from '../model/report.js';
import { formatLocation } from '../model/report.js';
import { captureSites, isBuiltinSite, isUserFile, userFrames } from '../model/frames.js';
import { currentTask } from './tasks.js';
import { taskRef } from '../model/task.js';

import { noteBlockingCall } from './last-blocking-call.js';

/** Loaded when watching starts (debug mode): zlib, crypto and child_process cost ~15 ms of start-up to import. */
const requireBuiltin = createRequire(import.meta.url);

type AnyFn = (...args: unknown[]) => unknown;
interface Patch { target: Record<string, unknown>; key: string; original: unknown }

const CRYPTO_SYNC = ['pbkdf2Sync', 'scryptSync', 'generateKeyPairSync', 'generatePrimeSync', 'hkdfSync'];
const CHILD_SYNC = ['execSync', 'execFileSync', 'spawnSync'];

let patches: Patch[] = [];
let reported = new Set<string>();
let afterStartup = false;
/** Open `startup()` windows: a program's asynchronous start (opening files, loading config). */
const windows = { open: 0 };
let report: ((r: Report) => void) | undefined;

let exitSeen = false;
const onExit = (): void => {
  exitSeen = true;
};

/**
 * Sync calls from `exit` handlers (a logger's final flush, say) are the only way to do anything at
 * that point, and there is no loop left to block. Node sets `process._exiting` before it emits
 * `exit`; our own (prepended) listener covers the case where it does not.
 */
function exiting(): boolean {
  return exitSeen || (process as { _exiting?: boolean })._exiting === true;
}

function wrap(target: Record<string, unknown>, key: string, api: string): void {
  const original = target[key];
  if (typeof original !== 'function') return;
  const orig = original as AnyFn;
  const wrapped = function (this: unknown, ...args: unknown[]): unknown {
    if (!afterStartup || windows.open > 0 || !isMainThread || exiting()) return orig.apply(this, args);
    const sites = captureSites(wrapped, 10);
    const startMs = performance.now();
    try {
      return orig.apply(this, args);
    } finally {
      const caller = sites.find((s) => !isBuiltinSite(s));
      if (caller && isUserFile(caller.getFileName()) && !duringModuleEvaluation(sites)) {
        const endMs = performance.now();
        noteBlockingCall({ api, sites, startMs, endMs });
        note(api, sites, endMs - startMs);
      }
    }
  };
  Object.defineProperty(wrapped, 'name', { value: orig.name });
  Object.defineProperty(wrapped, 'length', { value: orig.length });
  target[key] = wrapped;
  patches.push({ target, key, original });
}

/**
 * Loading a module is start-up too, whenever it happens: module top-level code (ESM evaluates after our
 * first turn; its bottom frame has no function), a loader reading and compiling files (tsx), node's
 * own module loader waiting for its hooks thread (`Atomics.wait`).
 */
function duringModuleEvaluation(sites: NodeJS.CallSite[]): boolean {
  if (sites.some((s) => (s.getFileName() ?? '').startsWith('node:internal/modules/'))) return true;
  for (let i = sites.length - 1; i > 0; i--) {
    const below = sites[i];
    const site = sites[i - 1];
    if (below && site && (below.getFileName() ?? '').startsWith('node:internal/modules/')) {
      if (isUserFile(site.getFileName()) && site.getFunctionName() === null) return true;
    }
  }
  return false;
}

function note(api: string, sites: NodeJS.CallSite[], durationMs: number): void {
  const frames = userFrames(sites, 5);
  // The line to change is the user's own: past a library's frames (`t.end()` → thread-stream → Atomics.wait).
  const site = frames.find((f) => f.origin === undefined);
  if (!site || !report) return;
  const key = formatLocation(site);
  if (reported.has(key)) return;
  reported.add(key);
  const task = currentTask();
  report({
    kind: 'thread-affinity',
    message: `${api} blocked the main thread for ${durationMs.toFixed(1)} ms; move it off the loop (runInWorker) or use the async API`,
    time: Date.now(),
    durationMs,
    ...(task && !task.internal ? { task: taskRef(task) } : {}),
    location: key,
    functionName: site.functionName,
    stack: frames,
  });
}

/** Wraps the blocking APIs. Calls during start-up (this turn) are allowed: config reads are fine. */
export function watchBlockingCalls(emit: (r: Report) => void): void {
  report = emit;
  if (patches.length > 0) return;
  const fsObj = fs as unknown as Record<string, unknown>;
  for (const key of Object.keys(fsObj)) if (key.endsWith('Sync')) wrap(fsObj, key, `fs.${key}`);
  const cp = requireBuiltin('node:child_process') as Record<string, unknown>;
  for (const key of CHILD_SYNC) wrap(cp, key, `child_process.${key}`);
  const z = requireBuiltin('node:zlib') as Record<string, unknown>;
  for (const key of Object.keys(z)) if (key.endsWith('Sync')) wrap(z, key, `zlib.${key}`);
  const c = requireBuiltin('node:crypto') as Record<string, unknown>;
  for (const key of CRYPTO_SYNC) wrap(c, key, `crypto.${key}`);
  wrap(Atomics as unknown as Record<string, unknown>, 'wait', 'Atomics.wait');
  syncBuiltinESMExports();
  process.prependListener('exit', onExit);
  setImmediate(() => {
    afterStartup = true;
  }).unref();
}

export function unwatchBlockingCalls(): void {
  for (const p of patches.reverse()) p.target[p.key] = p.original;
  patches = [];
  reported = new Set();
  afterStartup = false;
  exitSeen = false;
  process.off('exit', onExit);
  report = undefined;
  noteBlockingCall(undefined);
  syncBuiltinESMExports();
}

/**
 * Declares `fn` (a program's asynchronous start-up: opening databases, reading config) as start-up:
 * blocking calls made while it runs are not reported, as those of the first turn are not. Without
 * it, start-up is the first turn of the loop and module evaluation.
 */
export async function startup<T>(fn: () => Promise<T>): Promise<T> {
  windows.open += 1;
  try {
    return await fn();
  } finally {
    windows.open -= 1;
  }
}
