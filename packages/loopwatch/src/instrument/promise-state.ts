/**
 * A settled promise's state and result, read from V8 (`[[PromiseState]]`, `[[PromiseResult]]`) through an
 * in-process inspector session, without touching the promise: a `.then` would mark it handled. The text of
 * `util.inspect` on a promise is no contract (its shape changed in Node 24), so it is only the fallback for a
 * Node built without the inspector. In-thread `Session.post` answers synchronously.
 */
import { inspect } from 'node:util';

type Post = (method: string, params: object) => unknown;

/** Where the promise is parked for the one evaluate that names it; a registered symbol no program uses. */
const PARK = Symbol.for('loopwatch.promise-state');
const GROUP = 'loopwatch-promise-state';

let post: Post | null | undefined;

function session(): Post | null {
  if (post !== undefined) return post;
  post = null;
  try {
    // Loaded on first use: reading ended tasks is rare, and a plain program need not load the inspector.
    const { Session } = process.getBuiltinModule('node:inspector');
    const s = new Session();
    s.connect();
    post = (method, params) => {
      let out: unknown;
      let failed: unknown;
      s.post(method, params, (err, res) => {
        failed = err;
        out = res;
      });
      if (failed) throw failed instanceof Error ? failed : new Error('inspector refused');
      return out;
    };
  } catch {
    post = null;
  }
  return post;
}

export type PromiseState =
  | { readonly state: 'pending' }
  | { readonly state: 'resolved' }
  | { readonly state: 'rejected'; readonly error: string; readonly reason?: unknown };

interface RemoteValue {
  readonly objectId?: string;
  readonly value?: unknown;
  readonly description?: string;
  readonly type?: string;
}
interface InternalProperty {
  readonly name: string;
  readonly value?: RemoteValue;
}

/** The one line that says what a promise rejected with (an error's first line, or the value). */
function reasonText(v: RemoteValue | undefined): string {
  if (v === undefined) return 'undefined';
  const text = v.description ?? (v.type === 'string' ? JSON.stringify(v.value) : String(v.value));
  return text.split('\n')[0]!.trim().slice(0, 200);
}

/** The rejection's own object (to look up who aborted it), handed back to JS through the parking place. */
function reasonObject(v: RemoteValue | undefined, p: Post): { reason?: unknown } {
  if (v?.objectId === undefined) return {};
  const g = globalThis as Record<symbol, unknown>;
  p('Runtime.callFunctionOn', {
    objectId: v.objectId,
    functionDeclaration: "function () { globalThis[Symbol.for('loopwatch.promise-state')] = this; }",
    silent: true,
  });
  return { reason: g[PARK] };
}

function fromV8(promise: Promise<unknown>, p: Post): PromiseState {
  const g = globalThis as Record<symbol, unknown>;
  g[PARK] = promise;
  try {
    const ev = p('Runtime.evaluate', {
      expression: "globalThis[Symbol.for('loopwatch.promise-state')]",
      objectGroup: GROUP,
      silent: true,
    }) as { result: { objectId?: string } };
    const objectId = ev.result.objectId;
    if (objectId === undefined) throw new Error('no object id');
    const props = p('Runtime.getProperties', { objectId, ownProperties: true }) as {
      internalProperties?: InternalProperty[];
    };
    const internal = props.internalProperties ?? [];
    const state = internal.find((x) => x.name === '[[PromiseState]]')?.value?.value;
    if (state === 'rejected') {
      const result = internal.find((x) => x.name === '[[PromiseResult]]')?.value;
      return { state, error: reasonText(result), ...reasonObject(result, p) };
    }
    if (state === 'pending') return { state };
    if (state === 'fulfilled') return { state: 'resolved' };
    throw new Error(`unexpected promise state ${String(state)}`);
  } finally {
    delete g[PARK];
    p('Runtime.releaseObjectGroup', { objectGroup: GROUP });
  }
}

/** Without the inspector: `util.inspect`, read loosely (one line on 20 and 22, several on 24+). */
function fromText(promise: Promise<unknown>): PromiseState {
  const text = inspect(promise, { depth: 0, breakLength: Infinity, compact: true });
  if (/^Promise \{\s*<pending>/.test(text)) return { state: 'pending' };
  const m = /^Promise \{\s*<rejected> ([^\n]*)/.exec(text);
  if (m)
    return {
      state: 'rejected',
      error: m[1]!
        .replace(/\s*\}$/, '')
        .trim()
        .slice(0, 200),
    };
  return { state: 'resolved' };
}

/** How `promise` stands now. */
export function promiseState(promise: Promise<unknown>): PromiseState {
  const p = session();
  if (p) {
    try {
      return fromV8(promise, p);
    } catch {
      // An inspector that refuses (another client owns it in a way that conflicts): the text still answers.
    }
  }
  return fromText(promise);
}
