/**
 * pino: JSON lines for machines, pino-pretty (in-process, synchronous) on a terminal.
 */
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

export interface LoggerHandle {
  readonly logger: Logger;
  /** Write out whatever is buffered (before exit). */
  flush(): void;
}

export function createLogger(level: string, format: 'auto' | 'json' | 'pretty', name = 'mayhem'): LoggerHandle {
  const usePretty = format === 'pretty' || (format === 'auto' && process.stdout.isTTY === true);
  if (usePretty) {
    const stream = pretty({ colorize: process.stdout.isTTY === true, sync: true, translateTime: 'HH:MM:ss.l', singleLine: true, ignore: 'pid,hostname,name' });
    return { logger: pino({ level, name }, stream), flush: () => undefined };
  }
  // Buffered writes keep logging off the hot path; flushSync at exit loses nothing.
  const dest = pino.destination({ dest: 1, sync: false, minLength: 4096 });
  return {
    logger: pino({ level, name, base: undefined }, dest),
    flush: () => {
      try {
        dest.flushSync();
      } catch {
        // Not ready yet or already closed: nothing buffered to lose.
      }
    },
  };
}
