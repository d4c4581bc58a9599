/** What a raw V8 call site says by itself (no source maps, no file system). */

/** A builtin frame such as `new Promise (<anonymous>)` or `Promise.all`: no file behind it. */
export function isBuiltinSite(site: NodeJS.CallSite): boolean {
  const file = site.getFileName();
  return file === undefined || file === null || file === '' || site.isNative();
}

export function siteName(site: NodeJS.CallSite): string {
  const fn = site.getFunctionName();
  if (fn) {
    const type = site.isToplevel() ? null : safe(() => site.getTypeName());
    return type && !fn.startsWith(`${type}.`) && type !== 'Object' ? `${type}.${fn}` : fn;
  }
  const method = safe(() => site.getMethodName());
  if (method) return method;
  return '<anonymous>';
}

export function safe<T>(f: () => T): T | null {
  try {
    return f();
  } catch {
    return null;
  }
}

/** Short function name of a call site, as a task name. */
export function functionNameOf(site: NodeJS.CallSite | undefined): string {
  return site ? siteName(site) : '<anonymous>';
}

/** A stack capture V8 has not formatted yet (`Error.captureStackTrace` formats on the first read of `stack`). */
export interface RawSites {
  readonly stack?: unknown;
}

const structured = (_e: Error, sites: NodeJS.CallSite[]): NodeJS.CallSite[] => sites;

/** The call sites of a raw capture (formatted once: V8 keeps the result as the holder's `stack`). */
export function sitesOf(raw: RawSites): NodeJS.CallSite[] {
  // eslint-disable-next-line @typescript-eslint/unbound-method
  const oldPrepare = Error.prepareStackTrace;
  Error.prepareStackTrace = structured;
  let sites: unknown;
  try {
    sites = raw.stack;
  } finally {
    Error.prepareStackTrace = oldPrepare;
  }
  return Array.isArray(sites) ? (sites as NodeJS.CallSite[]) : [];
}

export function isRawSites(x: NodeJS.CallSite | RawSites): x is RawSites {
  return !('getFileName' in x);
}
