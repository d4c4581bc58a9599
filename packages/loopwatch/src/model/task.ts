/**
 * What task tracking remembers per promise. Records hold call sites, never the promise itself, so a
 * promise can still be collected (that is how `task-destroyed-pending` and `never-awaited` are seen).
 * Created on the hot path (every promise without a parent), so everything derived from the call
 * sites (the name, above all) is worked out on first use, at report time.
 */
import type { TaskRef } from './report.js';
import { functionNameOf, isRawSites, sitesOf, type RawSites } from './call-sites.js';

/**
 * With another promise hook installed (AsyncLocalStorage, `async_hooks.createHook`, the node:test
 * runner), node calls every hook through its own dispatcher: one extra frame above the program's.
 */
export const HOOK_DISPATCH = 'node:internal/promise_hooks';

export class PromiseRecord {
  /** Named by `spawn()`. */
  spawned = false;
  pending = true;
  /** Somebody awaited it, chained it, returned it, or registered it as a task. */
  observed = false;
  /** What this task awaits now (undefined while it runs): a task (the await graph) or a plain promise. */
  waitingOn: PromiseRecord | undefined = undefined;
  /**
   * Where it is suspended: the `await`'s call site, or a raw capture of it (formatted on first read by
   * {@link awaitSite}: most awaits are never asked about).
   */
  awaitAt: NodeJS.CallSite | RawSites | undefined = undefined;
  /** Which await it is suspended at (0 while it runs): that await's promise carries the same number. */
  awaitSeq = 0;
  /** Time its own code ran on the loop (the reactions that resumed it), ms. Debug mode. */
  busyMs = 0;
  /** `performance.now()` when it settled. */
  endedAt: number | undefined = undefined;
  /** Where `abort()` was called on a spawned task, and with what reason. */
  abortedBy: { readonly reason: string; readonly at: readonly string[]; readonly via?: readonly string[] } | undefined =
    undefined;
  #name: string | undefined = undefined;

  // Made for every promise without a parent (the hot path): positional, no options object to allocate.
  // eslint-disable-next-line max-params
  constructor(
    readonly id: number,
    /** Raw call sites at creation: for an async function, [the function itself, its caller, ...]. */
    readonly sites: NodeJS.CallSite[],
    /** An async function invocation (or a spawned task), not a plain `new Promise`. */
    public isTask: boolean,
    /** A task of node's own or loopwatch's: tracked for attribution, never reported. */
    public internal: boolean,
    /** `performance.now()` at creation. */
    readonly startedAt: number,
    readonly parent: PromiseRecord | undefined,
  ) {}

  /** Call site of the `await` it is suspended at (the suspended function's own line). */
  get awaitSite(): NodeJS.CallSite | undefined {
    const at = this.awaitAt;
    if (at === undefined || !isRawSites(at)) return at;
    // A raw capture from a promise hook: node's hook dispatcher may sit above the function's frame.
    const sites = sitesOf(at);
    const site = sites[0]?.getFileName() === HOOK_DISPATCH ? sites[1] : sites[0];
    this.awaitAt = site;
    return site;
  }

  /** The async function's name (or the `spawn` name); `Promise` for a plain promise. */
  get name(): string {
    return (this.#name ??= this.isTask ? functionNameOf(this.sites[0]) : 'Promise');
  }

  set name(name: string) {
    this.#name = name;
  }
}

export function taskRef(r: PromiseRecord): TaskRef {
  return { id: r.id, name: r.name };
}
