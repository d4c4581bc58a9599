/**
 * Resource exhaustion of this machine, as Node reports it from `spawn`, `connect` or `open`: the
 * operation could not start, so it certainly did nothing, and it may well work a moment later.
 */

const MEANING: Readonly<Record<string, string>> = {
  EMFILE: 'too many open files in this process',
  ENFILE: 'too many open files on this machine',
  ENOMEM: 'out of memory',
  EAGAIN: 'resource temporarily unavailable (process limit)',
};

/** The resource code (EMFILE, ENFILE, ENOMEM, EAGAIN) of `err` or of an error in its cause chain. */
export function resourceFaultOf(err: unknown): string | undefined {
  let e: unknown = err;
  for (let depth = 0; depth < 5 && e !== null && typeof e === 'object'; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code in MEANING) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** `EMFILE (too many open files in this process)`: a code with what it means, for one log line. */
export function describeResourceFault(code: string): string {
  const meaning = MEANING[code];
  return meaning === undefined ? code : `${code} (${meaning})`;
}
