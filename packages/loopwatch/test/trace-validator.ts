/**
 * The Trace Event Format's rules, checked on a whole trace (the JSON Perfetto, chrome://tracing and
 * DevTools import): required fields per phase, numeric `ts`/`dur`, nestable async `b`/`e` matched per
 * (cat, id) — an `e` closes the innermost open slice and names it if it names anything — and no event
 * out of order on its track. Returns the problems found (none for a good trace).
 */
export interface Ev {
  readonly name?: unknown;
  readonly ph?: unknown;
  readonly ts?: unknown;
  readonly dur?: unknown;
  readonly pid?: unknown;
  readonly tid?: unknown;
  readonly cat?: unknown;
  readonly id?: unknown;
  readonly args?: unknown;
  readonly s?: unknown;
}

const num = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);

export function validateTrace(trace: unknown): string[] {
  const problems: string[] = [];
  const events = Array.isArray(trace) ? trace : (trace as { traceEvents?: unknown })?.traceEvents;
  if (!Array.isArray(events)) return ['no traceEvents array'];
  const open = new Map<string, string[]>();
  const lastTs = new Map<string, number>();
  events.forEach((raw: unknown, i) => {
    const e = raw as Ev;
    const at = `event ${i} (${String(e.ph)} ${String(e.name)})`;
    if (typeof e.ph !== 'string') return void problems.push(`${at}: no ph`);
    if (typeof e.name !== 'string' || e.name === '') problems.push(`${at}: no name`);
    if (!Number.isInteger(e.pid) || !Number.isInteger(e.tid)) problems.push(`${at}: pid/tid not integers`);
    if (e.ph === 'M') {
      if (typeof (e.args as { name?: unknown })?.name !== 'string') problems.push(`${at}: metadata without args.name`);
      return;
    }
    if (!num(e.ts) || e.ts < 0) return void problems.push(`${at}: ts ${String(e.ts)} is not a number ≥ 0`);
    // Async slices have a track per (cat, id); the others the thread's.
    const track =
      e.ph === 'b' || e.ph === 'e'
        ? `async ${String(e.cat)}/${String(e.id)}`
        : `thread ${String(e.pid)}/${String(e.tid)}/${e.ph}`;
    if ((lastTs.get(track) ?? -Infinity) > e.ts) problems.push(`${at}: ts goes back on ${track}`);
    lastTs.set(track, e.ts);
    switch (e.ph) {
      case 'X':
        if (!num(e.dur) || e.dur < 0) problems.push(`${at}: complete event without a dur ≥ 0`);
        break;
      case 'b':
      case 'e': {
        if (typeof e.cat !== 'string' || (typeof e.id !== 'string' && typeof e.id !== 'number'))
          problems.push(`${at}: async event without cat and id`);
        const stack = open.get(track) ?? [];
        if (e.ph === 'b') stack.push(e.name as string);
        else if (stack.length === 0) problems.push(`${at}: end without a begin on ${track}`);
        else {
          const top = stack.pop();
          if (e.name !== undefined && e.name !== top) problems.push(`${at}: ends "${top}" under another name`);
        }
        open.set(track, stack);
        break;
      }
      case 'C': {
        const args = e.args as Record<string, unknown> | undefined;
        if (!args || Object.keys(args).length === 0 || !Object.values(args).every(num))
          problems.push(`${at}: counter without numeric args`);
        break;
      }
      case 'i':
        if (!['g', 'p', 't', undefined].includes(e.s as string))
          problems.push(`${at}: instant with scope ${String(e.s)}`);
        break;
      default:
        problems.push(`${at}: phase ${e.ph} is not one loopwatch writes`);
    }
  });
  for (const [track, stack] of open)
    if (stack.length > 0) problems.push(`${track}: ${stack.length} slice(s) never ended`);
  return problems;
}
