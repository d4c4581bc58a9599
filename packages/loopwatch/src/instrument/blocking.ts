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
import { captureSites, isUserFile, userFrames } from '../source/frames.js';
import { isBuiltinSite } from '../model/call-sites.js';
import { taskRef, type PromiseRecord } from '../model/task.js';

/** Loaded when watching starts (debug mode): importing zlib, crypto and child_process is start-up time plain programs need not pay. */
const requireBuiltin = createRequire(import.meta.url);

type AnyFn = (...args: unknown[]) => unknown;
interface Patch {
  target: Record<string, unknown>;
  key: string;
  original: unknown;
}

const CRYPTO_SYNC = ['pbkdf2Sync', 'scryptSync', 'generateKeyPairSync', 'generatePrimeSync', 'hkdfSync'];
const CHILD_SYNC = ['execSync', 'execFileSync', 'spawnSync'];

/** The last blocking call that returned, for slow-callback attribution. */
export interface BlockingCall {
  readonly api: string;
  readonly sites: NodeJS.CallSite[];
  readonly startMs: number;
  readonly endMs: number;
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

export interface BlockingCallDeps {
  readonly emit: (r: Report) => void;
  /** The running task, for the report. */
  readonly currentTask: () => PromiseRecord | undefined;
  /** Whether a `startup()` window is open (its sync calls are start-up). */
  readonly inStartup: () => boolean;
  /** The built-ins left alone, told once (the summary names them). */
  readonly leftAlone?: (apis: readonly string[]) => void;
}

/**
 * Whether `target[key]` can be replaced by assignment without throwing or misbehaving: an own writable data
 * property, or one with a setter. Node 26 exposes some exports read-only (`zlib.createZipArchiveSync`); a
 * strict-mode assignment to one throws, which once ended every program under debug mode.
 */
export function canReplace(target: object, key: string): boolean {
  const d = Object.getOwnPropertyDescriptor(target, key);
  if (!d) return false;
  if ('value' in d) return d.writable === true && !Object.isFrozen(target);
  return d.set !== undefined && d.get !== undefined;
}

/**
 * Sync calls from `exit` handlers (a logger's final flush, say) are the only way to do anything at
 * that point, and there is no loop left to block. Node sets `process._exiting` before it emits
 * `exit`; our own (prepended) listener covers the case where it does not.
 */
export class BlockingCallWatcher {
  /** The last blocking call that returned (also when its site was already reported). */
  last: BlockingCall | undefined;
  #patches: Patch[] = [];
  /** Blocking built-ins this Node line does not let us wrap (read-only exports). */
  #leftAlone: string[] = [];
  readonly #reported = new Set<string>();
  #afterStartup = false;
  #exitSeen = false;
  readonly #onExit = (): void => {
    this.#exitSeen = true;
  };

  constructor(readonly deps: BlockingCallDeps) {}

  #exiting(): boolean {
    return this.#exitSeen || (process as { _exiting?: boolean })._exiting === true;
  }

  #wrap(target: Record<string, unknown>, key: string, api: string): void {
    const original = target[key];
    if (typeof original !== 'function') return;
    if (!canReplace(target, key)) {
      this.#leftAlone.push(api);
      return;
    }
    const orig = original as AnyFn;
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the wrapper's own `this` is the caller's
    const watcher = this;
    const wrapped = function (this: unknown, ...args: unknown[]): unknown {
      if (!watcher.#afterStartup || watcher.deps.inStartup() || !isMainThread || watcher.#exiting())
        return orig.apply(this, args);
      const sites = captureSites(wrapped, 10);
      const startMs = performance.now();
      try {
        return orig.apply(this, args);
      } finally {
        watcher.#noteCall(api, sites, startMs);
      }
    };
    Object.defineProperty(wrapped, 'name', { value: orig.name });
    Object.defineProperty(wrapped, 'length', { value: orig.length });
    try {
      target[key] = wrapped;
    } catch {
      // A setter that refuses: the built-in stays as it was.
      this.#leftAlone.push(api);
      return;
    }
    this.#patches.push({ target, key, original });
  }

  #noteCall(api: string, sites: NodeJS.CallSite[], startMs: number): void {
    const caller = sites.find((s) => !isBuiltinSite(s));
    if (!caller || !isUserFile(caller.getFileName()) || duringModuleEvaluation(sites)) return;
    const endMs = performance.now();
    this.last = { api, sites, startMs, endMs };
    this.#report(api, sites, endMs - startMs);
  }

  #report(api: string, sites: NodeJS.CallSite[], durationMs: number): void {
    const frames = userFrames(sites, 5);
    // The line to change is the user's own: past a library's frames (`t.end()` → thread-stream → Atomics.wait).
    const site = frames.find((f) => f.origin === undefined);
    if (!site) return;
    const key = formatLocation(site);
    if (this.#reported.has(key)) return;
    this.#reported.add(key);
    const task = this.deps.currentTask();
    this.deps.emit({
      kind: 'thread-affinity',
      api,
      time: Date.now(),
      durationMs,
      ...(task && !task.internal ? { task: taskRef(task) } : {}),
      location: key,
      functionName: site.functionName,
      stack: frames,
    });
  }

  /** Wraps the blocking APIs. Calls during start-up (this turn) are allowed: config reads are fine. */
  start(): void {
    if (this.#patches.length > 0) return;
    const fsObj = fs as unknown as Record<string, unknown>;
    for (const key of Object.keys(fsObj)) if (key.endsWith('Sync')) this.#wrap(fsObj, key, `fs.${key}`);
    const cp = requireBuiltin('node:child_process') as Record<string, unknown>;
    for (const key of CHILD_SYNC) this.#wrap(cp, key, `child_process.${key}`);
    const z = requireBuiltin('node:zlib') as Record<string, unknown>;
    for (const key of Object.keys(z)) if (key.endsWith('Sync')) this.#wrap(z, key, `zlib.${key}`);
    const c = requireBuiltin('node:crypto') as Record<string, unknown>;
    for (const key of CRYPTO_SYNC) this.#wrap(c, key, `crypto.${key}`);
    this.#wrap(Atomics as unknown as Record<string, unknown>, 'wait', 'Atomics.wait');
    syncBuiltinESMExports();
    if (this.#leftAlone.length > 0) this.deps.leftAlone?.([...this.#leftAlone]);
    process.prependListener('exit', this.#onExit);
    setImmediate(() => {
      this.#afterStartup = true;
    }).unref();
  }

  stop(): void {
    for (const p of this.#patches.reverse()) p.target[p.key] = p.original;
    this.#patches = [];
    this.#leftAlone = [];
    this.#reported.clear();
    this.#afterStartup = false;
    this.#exitSeen = false;
    process.off('exit', this.#onExit);
    this.last = undefined;
    syncBuiltinESMExports();
  }
}
