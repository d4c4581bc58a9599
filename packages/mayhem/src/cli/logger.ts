/**
 * pino: JSON lines for machines, pino-pretty (in-process, synchronous) on a terminal.
 *
 * JSON lines are buffered (a write per 4 KB, not per line, keeps logging off the hot path) but
 * reach the file within a second (a flush timer); a fatal line is written synchronously (pino). Every
 * line passes the one redaction helper (no credentials in a URL reach the log). In pretty mode the
 * message text is escaped, so untrusted text (an id with a newline in an error) cannot forge a line.
 */
import { pino, type LevelWithSilentOrString, type Logger, type LoggerOptions } from 'pino';
import pretty from 'pino-pretty';
import { redactSecrets } from '../core/redact.js';

/** How often buffered JSON lines are written out at the latest. */
export const LOG_FLUSH_INTERVAL_MS = 1000;

// C0/C1 controls, DEL and the Unicode line separators: shown escaped, never raw, in pretty mode.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
// eslint-disable-next-line no-control-regex
const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;
const SHORT: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/** `text` on one line: controls shown as `\n`, `\u001b`, ... (as JSON would write them). */
export function escapeControls(text: string): string {
  if (!CONTROL.test(text)) return text;
  return text.replace(CONTROLS, (c) => SHORT[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Credentials out of a log call's arguments: the message and the top-level string fields. */
function redactArgs(args: unknown[]): void {
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (typeof a === 'string') {
      if (a.includes('://')) args[i] = redactSecrets(a);
    } else if (i === 0 && typeof a === 'object' && a !== null && !(a instanceof Error)) {
      let copy: Record<string, unknown> | undefined;
      for (const [k, v] of Object.entries(a)) {
        if (typeof v === 'string' && v.includes('://')) {
          copy ??= { ...(a as Record<string, unknown>) };
          copy[k] = redactSecrets(v);
        }
      }
      if (copy !== undefined) args[0] = copy;
    }
  }
}

export interface LoggerHandle {
  readonly logger: Logger;
  /** Resolves once everything logged so far has been written out: await it before process.exit. */
  flush(): Promise<void>;
}

/**
 * Wait until `logger`'s destination has written everything (bounded by `timeoutMs`). A synchronous
 * flushSync is not enough before process.exit: while an asynchronous write is in flight it writes
 * the rest first, and exiting then loses or reorders the in-flight chunk (the end of the log).
 */
export function drainLogger(logger: Logger, timeoutMs = 2000): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    const done = (): void => {
      clearTimeout(timer);
      resolve();
    };
    try {
      // The callback also gets fsync errors (EINVAL on a pipe): the bytes are written by then.
      logger.flush(done);
    } catch {
      done();
    }
  });
}

function options(level: LevelWithSilentOrString, name: string): LoggerOptions {
  return {
    level,
    name,
    hooks: {
      logMethod(args, method) {
        redactArgs(args);
        method.apply(this, args);
      },
    },
  };
}

export function createLogger(level: string, format: 'auto' | 'json' | 'pretty', name = 'mayhem'): LoggerHandle {
  const usePretty = format === 'pretty' || (format === 'auto' && process.stdout.isTTY === true);
  if (usePretty) {
    const stream = pretty({
      colorize: process.stdout.isTTY === true,
      sync: true,
      translateTime: 'HH:MM:ss.l',
      singleLine: true,
      ignore: 'pid,hostname,name',
      // Fields are printed as JSON (escaped already; `err` on an indented line of its own), the
      // message as is: escape it, so every line at column 0 is an entry of ours.
      messageFormat: (log, messageKey) => {
        const msg = log[messageKey];
        return escapeControls(typeof msg === 'string' ? msg : (JSON.stringify(msg) ?? ''));
      },
    });
    const logger = pino(options(level, name), stream);
    return { logger, flush: () => drainLogger(logger) };
  }
  // Buffered writes keep logging off the hot path; the timer bounds how long a line waits.
  const dest = pino.destination({ dest: 1, sync: false, minLength: 4096 });
  const timer = setInterval(() => {
    try {
      dest.flush();
    } catch {
      // Destroyed or not open yet: the next tick (or the exit flush) writes it.
    }
  }, LOG_FLUSH_INTERVAL_MS);
  timer.unref();
  // A fatal line is written synchronously by pino itself (its fatal() calls flushSync).
  const logger = pino({ ...options(level, name), base: undefined }, dest);
  return { logger, flush: () => drainLogger(logger) };
}
