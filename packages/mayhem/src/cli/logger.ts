/**
 * pino: JSON lines for machines, pino-pretty (in-process, synchronous) on a terminal.
 */
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

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

export function createLogger(level: string, format: 'auto' | 'json' | 'pretty', name = 'mayhem'): LoggerHandle {
  const usePretty = format === 'pretty' || (format === 'auto' && process.stdout.isTTY === true);
  if (usePretty) {
    const stream = pretty({ colorize: process.stdout.isTTY === true, sync: true, translateTime: 'HH:MM:ss.l', singleLine: true, ignore: 'pid,hostname,name' });
    const logger = pino({ level, name }, stream);
    return { logger, flush: () => drainLogger(logger) };
  }
  // Buffered writes keep logging off the hot path; flushSync at exit loses nothing.
  const dest = pino.destination({ dest: 1, sync: false, minLength: 4096 });
  const logger = pino({ level, name, base: undefined }, dest);
  return { logger, flush: () => drainLogger(logger) };
}
