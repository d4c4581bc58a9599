/**
 * Exit signals (SIGHUP, SIGTERM, SIGINT) are handled from the first moment of the process to its
 * last: `main.ts` installs this hub before it loads anything else (loading the rest takes about
 * half a second), and it stays installed until the process exits. Without it a signal during
 * start-up or after "Successfully shutdown" killed the process with Node's default (exit 143,
 * nothing logged).
 *
 * The hub forwards each signal to the one current listener; while there is none (start-up, or the
 * last lines being written) signals are queued, and the next listener gets them first thing. So a
 * signal is never lost and never kills the process half-way: the service starts, logs it, and shuts
 * down in order; after the shutdown, the exit already under way is the answer.
 */

export const EXIT_SIGNALS = ['SIGHUP', 'SIGTERM', 'SIGINT'] as const;
export type ExitSignal = (typeof EXIT_SIGNALS)[number];

type Listener = (signal: NodeJS.Signals) => void;

let installed = false;
let listener: Listener | undefined;
const queued: NodeJS.Signals[] = [];

function deliver(signal: NodeJS.Signals): void {
  if (listener) listener(signal);
  else queued.push(signal);
}

/** Install the process-wide handlers (idempotent). Call it before importing anything slow. */
export function installSignalHub(): void {
  if (installed) return;
  installed = true;
  for (const s of EXIT_SIGNALS) process.on(s, deliver);
}

/**
 * Make `fn` the one receiver of exit signals, after handing it those that arrived while nobody
 * listened. Returns a function that removes it again (signals are then queued, not lost).
 * Without the hub (library use, tests) it listens on the process directly.
 */
export function onExitSignal(fn: Listener): () => void {
  if (!installed) {
    for (const s of EXIT_SIGNALS) process.on(s, fn);
    return () => {
      for (const s of EXIT_SIGNALS) process.off(s, fn);
    };
  }
  listener = fn;
  for (const s of queued.splice(0)) {
    if (listener !== fn) break;
    fn(s);
  }
  return () => {
    if (listener === fn) listener = undefined;
  };
}
