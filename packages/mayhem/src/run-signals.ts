/**
 * How `mayhem run` answers exit signals, and the latch that says the shutdown has begun. During
 * start-up the first signal interrupts the start; while running it begins the shutdown; a second
 * one (or one after the shutdown began) means "now": exit 130 once the log is written out. Signals
 * that arrived while nobody listened were queued by the hub (cli/signals.ts) and arrive first.
 * (A Ctrl-C under `npm start` reaches the service once: npm 11 does not forward it again.)
 */
import type { Logger } from 'pino';
import { drainLogger } from './cli/logger.js';
import { onExitSignal } from './cli/signals.js';

/** Once: the first request to shut down wins (its reason and exit code); later ones are ignored. */
export class ShutdownLatch {
  /** Aborted when the shutdown begins: stops the publisher and the pull loop. */
  readonly stopPulling = new AbortController();
  /** Resolves when the shutdown begins. */
  readonly requested: Promise<void>;
  #reason = 'stopped';
  #exitCode = 0;
  #resolve!: () => void;

  constructor() {
    this.requested = new Promise<void>((resolve) => (this.#resolve = resolve));
  }

  get reason(): string {
    return this.#reason;
  }

  get exitCode(): number {
    return this.#exitCode;
  }

  get begun(): boolean {
    return this.stopPulling.signal.aborted;
  }

  request(why: string, code: number): void {
    if (this.begun) return;
    this.#reason = why;
    this.#exitCode = code;
    this.stopPulling.abort();
    this.#resolve();
  }
}

/** The start-up listener: `interrupted` resolves at the first signal, which `signal()` then names. */
export interface StartupSignals {
  readonly interrupted: Promise<void>;
  readonly signal: () => NodeJS.Signals | undefined;
  /** Stop listening (later signals are queued by the hub for the next listener). */
  readonly stop: () => void;
}

/** While files and connections open: the first signal resolves `interrupted`, a second exits now. */
export function listenDuringStartup(logger: Logger): StartupSignals {
  let received: NodeJS.Signals | undefined;
  let interrupt!: () => void;
  const interrupted = new Promise<void>((resolve) => (interrupt = resolve));
  const stop = onExitSignal((signal) => {
    if (received !== undefined) {
      logger.warn(`Received ${signal} again during start-up; exiting now (130)`);
      exitNow(logger);
      return;
    }
    received = signal;
    logger.info({ signal }, `Received exit signal ${signal} during start-up...`);
    interrupt();
  });
  return { interrupted, signal: () => received, stop };
}

/** While running: the first signal begins the shutdown, a second (or one during it) exits now. Returns the remover. */
export function listenWhileRunning(logger: Logger, latch: ShutdownLatch): () => void {
  let first: NodeJS.Signals | undefined;
  let exitingNow = false;
  return onExitSignal((signal) => {
    if (exitingNow) return;
    if (first !== undefined || latch.begun) {
      exitingNow = true;
      logger.warn(`Received ${signal} again during shutdown; exiting now (130)`);
      exitNow(logger);
      return;
    }
    first = signal;
    logger.info({ signal }, `Received exit signal ${signal}...`);
    latch.request(`received ${signal}`, 0);
  });
}

/** Only as long as it takes to write the log out (bounded), so the last warning is not lost. */
function exitNow(logger: Logger): void {
  void drainLogger(logger, 500).then(() => process.exit(130));
}
