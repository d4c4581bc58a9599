/**
 * `loopwatch attach <pid>`: a process started *without* loopwatch, through node's own inspector.
 * `SIGUSR1` makes node open its inspector; one WebSocket session looks at the main thread and, when
 * asked, loads loopwatch into it, then the inspector is closed again (door.ts: how, and who closes it
 * when this process cannot).
 *
 * One evaluation tells idle from busy and gives the stack: node runs it inside the running JavaScript
 * when there is some (V8 interrupts it, so a blocked loop answers too), and its stack then goes on
 * below the evaluation's own frames; an idle loop runs it from the loop, with nothing below. Nothing is
 * paused: `Debugger.pause` asked of an idle loop waits for its next event, which is how `attach` used
 * to hang until an idle process happened to run.
 *
 * Loading loopwatch there (`--enable`): enable-remote.ts.
 */
import type { Frame } from '../model/report.js';
import { resolvePosition } from '../source/source-map-file.js';
import { AttachError } from './client.js';
import { answers, Cdp, inspectorAt } from './cdp.js';
import { enabledMode, loadExpression, loadFailure, type EnableMode } from './enable-remote.js';
import { closeDoor, closeThrough, doorOf, guardExpression, isShut, startKeeper, type Keeper } from './door.js';
import { catchesSigusr1, inspectPortOf, listeningPorts, type Listening } from './proc.js';

/** SIGUSR1 → inspector listening: served at once by running JS or an idle loop. */
export const OPEN_WAIT_MS = 1_200;

export type Sight = { kind: 'stack'; frames: Frame[] } | { kind: 'idle'; waitingFor: string[] };

export interface Attached {
  readonly sight: Sight;
  /** The inspector is closed again (checked: nothing accepts a connection on its port). */
  readonly shut: boolean;
  readonly door: Listening;
  readonly keeperPid: number;
  /** The mode loopwatch now runs in there (`--enable`), or why it could not be loaded. */
  readonly enabled?: string;
  readonly enableFailed?: string;
}

export interface AttachOptions {
  readonly signal?: AbortSignal;
  readonly enable?: EnableMode;
}

interface SiteFrame {
  readonly functionName: string;
  readonly url: string;
  readonly line: number;
  readonly column: number;
}

interface FirstLook {
  readonly pid: number;
  readonly version?: string;
  readonly waitingFor?: string[];
  readonly frames?: SiteFrame[];
}

function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  return new Promise<T>((resolve, reject) => {
    const stop = (): void => reject(new AttachError('loopwatch: interrupted'));
    if (signal.aborted) return stop();
    signal.addEventListener('abort', stop, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', stop));
  });
}

interface Target {
  /** Where its inspector opens (0: a free port). */
  readonly port: number;
  /** The ports it listened on before the signal; undefined without /proc. */
  readonly before: Listening[] | undefined;
}

/** Refusals made before anything is signalled. */
async function preflight(pid: number): Promise<Target> {
  try {
    process.kill(pid, 0);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new AttachError(
      code === 'ESRCH' ? `loopwatch: no process ${pid}` : `loopwatch: cannot signal ${pid}: ${code ?? String(e)}`,
    );
  }
  if (catchesSigusr1(pid) === false)
    throw new AttachError(
      `loopwatch: process ${pid} does not handle SIGUSR1 (not node, or started with --disable-sigusr1); not signalling it, SIGUSR1 would end it`,
    );
  const before = listeningPorts(pid);
  const port = inspectPortOf(pid) ?? 9229;
  const mine = before?.some((l) => l.port === port);
  if ((mine || !before) && (await inspectorAt({ host: '127.0.0.1', port })))
    throw new AttachError(
      `loopwatch: ${mine ? `process ${pid} already has its inspector open` : 'an inspector already listens'} on 127.0.0.1:${port} (someone may be debugging); not attaching through it`,
    );
  if (before && !mine && port !== 0 && (await answers({ host: '127.0.0.1', port })))
    throw new AttachError(
      `loopwatch: 127.0.0.1:${port}, where the inspector of ${pid} would open, is taken by another process; not signalling it`,
    );
  return { port, before };
}

async function waitForDoor(pid: number, target: Target): Promise<Listening | undefined> {
  const until = performance.now() + OPEN_WAIT_MS;
  for (;;) {
    const door = await doorOf(pid, target.port, target.before);
    if (door || performance.now() > until) return door;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * The session's first evaluation: which process, what its loop waits for, the guard (door.ts), and
 * the frames of the JavaScript it interrupted, if any: those below the evaluation's own, which belong
 * to a script without a name (a user's `eval` or `new Function` frame is an eval).
 */
function firstLook(pid: number, keeper: Keeper): string {
  return `(() => {
  const prepare = Error.prepareStackTrace;
  const limit = Error.stackTraceLimit;
  Error.prepareStackTrace = (_, sites) => sites;
  Error.stackTraceLimit = 20;
  const stack = new Error().stack;
  Error.prepareStackTrace = prepare;
  Error.stackTraceLimit = limit;
  const sites = Array.isArray(stack) ? stack : []; // a program that froze Error: no frames, then
  let own = 0;
  while (own < sites.length && !sites[own].getFileName() && !sites[own].isEval()) own++;
  const frames = sites.slice(own, own + 12).map((s) => ({
    functionName: s.getFunctionName() || '',
    url: s.getFileName() || s.getScriptNameOrSourceURL() || '',
    line: s.getLineNumber() || 0,
    column: s.getColumnNumber() || 0,
  }));
  return { ...${guardExpression(pid, [process.pid, keeper.pid])}, frames };
})()`;
}

function sightOf(first: FirstLook): Sight {
  const frames = first.frames ?? [];
  if (frames.length === 0) return { kind: 'idle', waitingFor: first.waitingFor ?? [] };
  return {
    kind: 'stack',
    frames: frames.map((f) => resolvePosition(f.functionName, f.url, f.line - 1, Math.max(0, f.column - 1))),
  };
}

/** Closes the door on every path; the keeper is told it is closed, or left to close it. */
async function shut(state: Session, runAfter: boolean): Promise<boolean> {
  const { pid, keeper, door, cdp } = state;
  let closed = false;
  if (door) {
    await (cdp ? closeThrough(cdp, runAfter) : closeDoor(pid, door)).catch(() => undefined);
    const until = performance.now() + 500;
    while (!(closed = await isShut(door)) && performance.now() < until) await new Promise((r) => setTimeout(r, 20));
  }
  if (closed) keeper.closed();
  else keeper.leave();
  return closed;
}

interface Session {
  readonly pid: number;
  readonly keeper: Keeper;
  readonly target: Target;
  door?: Listening;
  cdp?: Cdp;
}

interface Looked {
  readonly sight: Sight;
  /** loopwatch's modules are loaded there, to be turned on after the close. */
  readonly loaded?: boolean;
  readonly enableFailed?: string;
}

/** Signal, wait for the door, look, load when asked; `state` keeps what the closing needs. */
async function session(state: Session, opts: AttachOptions): Promise<Looked> {
  const { pid, keeper, target } = state;
  const { signal } = opts;
  process.kill(pid, 'SIGUSR1');
  const door = await abortable(waitForDoor(pid, target), signal);
  if (!door)
    throw new AttachError(
      `loopwatch: process ${pid} opened no inspector within ${OPEN_WAIT_MS} ms: its main thread runs neither JavaScript nor its event loop (a native call such as execSync), or it ignores SIGUSR1. Node opens the inspector when that call returns; loopwatch's keeper (pid ${keeper.pid}) closes it then, waiting while ${pid} lives (at most an hour)`,
    );
  state.door = door;
  keeper.door(door);
  const url = await abortable(inspectorAt(door), signal);
  if (!url) throw new AttachError(`loopwatch: the inspector of ${pid} went away`);
  const cdp = (state.cdp = await abortable(Cdp.open(url), signal));
  const first = await abortable(cdp.evaluate<FirstLook>(firstLook(pid, keeper)), signal);
  if (first.pid !== pid) {
    // Not this process's door (no /proc to tell whose 9229 it is): leave it as it is.
    delete state.door;
    throw new AttachError(
      `loopwatch: the inspector on 127.0.0.1:${door.port} belongs to process ${first.pid}, not ${pid}`,
    );
  }
  const sight = sightOf(first);
  if (!opts.enable) return { sight };
  try {
    await abortable(cdp.evaluate(loadExpression(opts.enable), 5_000), signal);
    return { sight, loaded: true };
  } catch (e) {
    if (signal?.aborted) throw e;
    return { sight, enableFailed: loadFailure(e instanceof Error ? e.message : String(e), pid, first.version) };
  }
}

/** Looks at the main thread of `pid` (and loads loopwatch there, when asked) through its inspector. */
export async function attachToPid(pid: number, opts: AttachOptions = {}): Promise<Attached> {
  const target = await abortable(preflight(pid), opts.signal);
  const keeper = startKeeper(pid, target.port, target.before);
  const state: Session = { pid, keeper, target };
  let looked: Looked | undefined;
  let failure: unknown;
  try {
    looked = await session(state, opts);
  } catch (e) {
    failure = e;
  }
  const closed = await shut(state, looked?.loaded === true);
  state.cdp?.close();
  if (looked && state.door) {
    const { sight, loaded, enableFailed } = looked;
    const enabled = loaded && closed ? await enabledMode(pid) : undefined;
    return {
      sight,
      shut: closed,
      door: state.door,
      keeperPid: keeper.pid,
      ...(enabled && 'mode' in enabled ? { enabled: enabled.mode } : {}),
      ...(enabled && 'failed' in enabled ? { enableFailed: enabled.failed } : {}),
      ...(enableFailed ? { enableFailed } : {}),
      ...(loaded && !closed ? { enableFailed: 'it is turned on once the inspector closes' } : {}),
    };
  }
  if (failure instanceof AttachError && state.door)
    throw new AttachError(
      `${failure.message}; ${closed ? 'the inspector is closed again' : `loopwatch's keeper (pid ${keeper.pid}) closes the inspector`}`,
    );
  throw failure;
}
