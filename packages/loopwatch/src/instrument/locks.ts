/**
 * The lock table behind `lockWaiting` / `lockHeld` (debug mode): per lock, who holds it; per task, the
 * lock it waits for. A task waiting for a lock is an edge to the lock's holder in the await graph, so
 * two tasks taking two locks in opposite order are a cycle there (`pstree`, task dumps).
 */
import { LOCK_TRACKER, type LockClaim, type LockTracker } from '../model/locks.js';
import type { PromiseRecord } from '../model/task.js';
import { recordOf } from './tasks.js';

interface LockState {
  readonly name: string;
  /** Claims holding it now, oldest first (a semaphore has several). */
  readonly holders: ClaimRecord[];
}

/** Per lock object: its state. Weak, so a lock dropped with claims never released does not stay. */
const locks = new WeakMap<object, LockState>();
/** Per task: the claim it waits on, if any. */
const waits = new WeakMap<PromiseRecord, ClaimRecord>();

class ClaimRecord implements LockClaim {
  state: 'waiting' | 'held' | 'released' = 'waiting';

  constructor(
    readonly lock: LockState,
    public task: PromiseRecord | undefined,
  ) {}

  get live(): boolean {
    return this.state !== 'released';
  }

  held(): void {
    if (this.state !== 'waiting') return;
    this.state = 'held';
    if (this.task !== undefined && waits.get(this.task) === this) waits.delete(this.task);
    this.lock.holders.push(this);
  }

  heldFor(call: PromiseLike<unknown>): void {
    const rec = recordOf(call);
    if (rec?.isTask === true) this.task = rec;
  }

  release(): void {
    if (this.state === 'released') return;
    if (this.state === 'held') {
      const i = this.lock.holders.indexOf(this);
      if (i >= 0) this.lock.holders.splice(i, 1);
    } else if (this.task !== undefined && waits.get(this.task) === this) waits.delete(this.task);
    this.state = 'released';
  }
}

/**
 * Who holds a lock taken by `task`: the task itself while it runs, else the nearest pending task it was
 * started from (a lock taken in an `async take()` helper is held by the caller once the helper returned).
 */
function holderOf(task: PromiseRecord | undefined): PromiseRecord | undefined {
  let t = task;
  while (t !== undefined && (!t.pending || t.internal)) t = t.parent;
  return t;
}

/** The lock a task waits for and the task holding it (the first holder still pending), if any. */
export function lockWaitOf(
  task: PromiseRecord,
): { readonly name: string; readonly holder?: PromiseRecord } | undefined {
  const c = waits.get(task);
  if (c === undefined || c.state !== 'waiting') return undefined;
  for (const h of c.lock.holders) {
    const holder = holderOf(h.task);
    if (holder !== undefined && holder !== task) return { name: c.lock.name, holder };
  }
  return { name: c.lock.name };
}

export class LockTable implements LockTracker {
  constructor(private readonly current: () => PromiseRecord | undefined) {}

  claim(lock: object, name: string | undefined, held: boolean): LockClaim {
    let state = locks.get(lock);
    if (state === undefined) {
      state = { name: name ?? 'lock', holders: [] };
      locks.set(lock, state);
    }
    const task = this.current();
    const c = new ClaimRecord(state, task);
    if (held) c.held();
    else if (task !== undefined) waits.set(task, c);
    return c;
  }

  /** Makes this table the one `lockWaiting` / `lockHeld` reach, in every copy of loopwatch in the process. */
  install(): void {
    (globalThis as { [LOCK_TRACKER]?: LockTracker })[LOCK_TRACKER] = this;
  }

  uninstall(): void {
    const g = globalThis as { [LOCK_TRACKER]?: LockTracker };
    if (g[LOCK_TRACKER] === this) delete g[LOCK_TRACKER];
  }
}

/** Debug mode: `lockWaiting` / `lockHeld` reach a new table from now on (no-ops before); returns its uninstaller. */
export function installLockTable(current: () => PromiseRecord | undefined): () => void {
  const t = new LockTable(current);
  t.install();
  return () => t.uninstall();
}
