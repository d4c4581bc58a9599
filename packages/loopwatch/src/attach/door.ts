/**
 * The door `SIGUSR1` opens: node's inspector listening on a TCP port, where any local user can run
 * code in the process until something calls `process._debugEnd()` in it. `loopwatch attach` closes it
 * on every path it controls (an answer, an error, a signal, a timeout), and leaves two fallbacks for
 * the paths it does not:
 *  - in the target, the session's first evaluation arms a guard: an unref'd check every 100 ms that
 *    closes the inspector once none of the processes watching it (the client and its keeper) is alive,
 *    and after {@link GUARD_CAP_MS} whatever happens. It runs on the target's loop, so a target whose
 *    loop is blocked closes the door when the loop runs again;
 *  - a keeper process (`door-keeper.ts`), started before the signal and detached from the terminal,
 *    that closes the door when the client goes away without saying it did (SIGKILL, a crash), also a
 *    door that opens late: node serves the signal only when its main thread runs JS or its loop, so a
 *    process inside a long native call (`execSync`) opens the port when the call returns.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { answers, Cdp, inspectorAt, WEBSOCKET_FLAGS } from './cdp.js';
import { listeningPorts, type Listening } from './proc.js';

/** A guard closes the inspector at the latest this long after it was armed. */
export const GUARD_CAP_MS = 10_000;
const GUARD = 'Symbol.for("loopwatch.attach.guard")';
/** What the client's close runs in the target once the inspector is closed (enable-remote.ts sets it). */
export const AFTER_CLOSE = 'Symbol.for("loopwatch.attach.afterClose")';

/**
 * Closes the inspector in the target, and again once its loop has polled. `SIGUSR1` asks node to open
 * it several ways at once (a V8 interrupt, and wake-ups of the loop) so that a busy and an idle main
 * thread both serve it: the first one opens it, and a wake-up still pending when it is closed opens it
 * again when the loop next polls (seen: a process busy in JS when attach closed the port listened
 * again once its loop ran). Two `setImmediate` hops put a poll phase between the two closes.
 */
const CLOSE_NOW = `(() => {
  const inspector = process.getBuiltinModule('node:inspector');
  process._debugEnd();
  setImmediate(() => setImmediate(() => { if (inspector.url() !== undefined) process._debugEnd(); }));
})()`;

/**
 * The session's first evaluation: in the process it expects (`pid`), arms the guard watching
 * `watchers`, and answers what its loop waits for; elsewhere it does nothing and answers the pid.
 */
export function guardExpression(pid: number, watchers: readonly number[]): string {
  return `(() => {
  if (process.pid !== ${pid}) return { pid: process.pid };
  const waitingFor = typeof process.getActiveResourcesInfo === 'function' ? process.getActiveResourcesInfo() : [];
  clearInterval(globalThis[${GUARD}]);
  const until = Date.now() + ${GUARD_CAP_MS};
  const alive = (p) => { try { process.kill(p, 0); return true; } catch (e) { return e.code === 'EPERM'; } };
  const guard = setInterval(() => {
    if (Date.now() < until && ${JSON.stringify(watchers)}.some(alive)) return;
    clearInterval(guard);
    delete globalThis[${GUARD}];
    delete globalThis[${AFTER_CLOSE}];
    ${CLOSE_NOW};
  }, 100);
  guard.unref();
  globalThis[${GUARD}] = guard;
  return { pid: process.pid, version: process.version, waitingFor };
})()`;
}

/**
 * Disarms the guard and closes the inspector (every session with it, this one too); then, when the
 * client asks for it, runs what it left to run after the close.
 */
function closeExpression(runAfter: boolean): string {
  return `(() => {
  clearInterval(globalThis[${GUARD}]);
  delete globalThis[${GUARD}];
  const after = globalThis[${AFTER_CLOSE}];
  delete globalThis[${AFTER_CLOSE}];
  ${CLOSE_NOW};
  if (${runAfter} && typeof after === 'function') after();
})()`;
}

/**
 * Where `pid`'s inspector listens now, if it does. `port` is where it opens (inspectPortOf; 0: any
 * free port); `before`, the ports `pid` listened on before the signal (undefined without /proc).
 */
export async function doorOf(
  pid: number,
  port: number,
  before: readonly Listening[] | undefined,
): Promise<Listening | undefined> {
  if (port !== 0) {
    const at = { host: '127.0.0.1', port };
    if (!(await answers(at))) return undefined;
    // Without /proc the session checks whose it is; with it, whose the port is decides.
    return !before || listeningPorts(pid)?.some((l) => l.port === port) ? at : undefined;
  }
  const known = new Set((before ?? []).map((l) => l.port));
  for (const l of listeningPorts(pid) ?? []) if (!known.has(l.port) && (await inspectorAt(l))) return l;
  return undefined;
}

/**
 * Whether the door is closed: nothing accepts a connection there. Not /proc: a read of /proc/net/tcp
 * can miss a socket while others come and go (seen under a loaded test suite), which would call an
 * open door closed; a refused connect cannot be wrong that way.
 */
export async function isShut(door: Listening): Promise<boolean> {
  return !(await answers(door));
}

/** Closes the inspector through an open session and waits (≤ 1 s) for node to end the session. */
export async function closeThrough(cdp: Cdp, runAfter = false): Promise<void> {
  cdp.send('Runtime.evaluate', { expression: closeExpression(runAfter) });
  await Promise.race([cdp.closed, new Promise((r) => setTimeout(r, 1_000).unref())]);
  cdp.close();
}

/** Opens a session to the door and closes it, if the inspector there is `pid`'s. */
export async function closeDoor(pid: number, door: Listening): Promise<void> {
  const url = await inspectorAt(door);
  if (!url) return;
  const cdp = await Cdp.open(url);
  try {
    const { pid: theirs } = await cdp.evaluate<{ pid: number }>('({ pid: process.pid })');
    if (theirs === pid) return await closeThrough(cdp);
  } finally {
    cdp.close();
  }
}

/** The client's end of the keeper: tell it the door, then that it is closed (or leave, and it closes it). */
export interface Keeper {
  readonly pid: number;
  door(door: Listening): void;
  /** The door is closed: the keeper exits. */
  closed(): void;
  /** The door is (or may later be) open: the keeper closes it. */
  leave(): void;
}

/** Starts the keeper for `pid`, whose door opens on `port` (doorOf). */
export function startKeeper(pid: number, port: number, before: readonly Listening[] | undefined): Keeper {
  const entry = fileURLToPath(new URL('./door-keeper.js', import.meta.url));
  const ports = before ? before.map((l) => String(l.port)).join(',') : '-';
  // Detached: its own session, so the terminal's Ctrl-C or hang-up that stops the client leaves it be.
  const child = spawn(process.execPath, [...WEBSOCKET_FLAGS, entry, String(pid), String(port), ports], {
    detached: true,
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  child.unref();
  child.stdin.on('error', () => undefined); // a keeper that died early: the guard still holds
  const write = (line: string): void => {
    if (child.stdin.writable) child.stdin.write(`${line}\n`);
  };
  return {
    pid: child.pid ?? 0,
    door: (d) => write(`door ${d.host} ${d.port}`),
    closed: () => {
      write('closed');
      child.stdin.end();
    },
    leave: () => child.stdin.end(),
  };
}
