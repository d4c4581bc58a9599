/**
 * Metrics over StatsD (UDP) with hot-shots. Lines are buffered into datagrams of at most one
 * Ethernet MTU and sent at least every second: at tens of thousands of messages per second, one
 * datagram per metric would cost more loop time than the work being measured.
 */
import { StatsD } from 'hot-shots';
import type { Logger } from 'pino';
import type { CounterName, Metrics, TimingName } from '../core/contracts.js';
import { errorText } from '../core/errors.js';

/** Options for {@link createStatsdMetrics}. */
export interface StatsdMetricsOptions {
  /** `host:port` of the StatsD daemon (`[::1]:8125` for IPv6). */
  hostPort: string;
  /** Prepended to every name; default `mayhem.`. */
  prefix?: string;
  logger: Logger;
  /** How often buffered lines are sent, ms (default 1000). */
  flushIntervalMs?: number;
  /** Longest `close()` waits for the last sends, ms (default 1000); shutdown must not hang on metrics. */
  closeTimeoutMs?: number;
}

// Payload that fits one datagram on a 1500-byte MTU without IP fragmentation.
const MAX_DATAGRAM = 1400;

/** Split and validate `host:port`; throws one line naming what is allowed. */
export function parseHostPort(hostPort: string): { host: string; port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9._-]+)):(\d{1,5})$/.exec(hostPort.trim());
  const port = m === null ? NaN : Number(m[3]);
  if (m === null || !(port >= 1 && port <= 65535)) {
    throw new Error(
      `--statsd must be host:port with a port from 1 to 65535 (e.g. localhost:8125 or [::1]:8125), got ${JSON.stringify(hostPort)}`,
    );
  }
  return { host: m[1] ?? m[2]!, port };
}

/**
 * A {@link Metrics} sending to StatsD. Never throws from a metric call: a send error (no daemon,
 * DNS failure) is logged once, and later ones only counted, so a missing daemon cannot flood logs.
 */
export function createStatsdMetrics(opts: StatsdMetricsOptions): Metrics {
  const { host, port } = parseHostPort(opts.hostPort);
  const log = opts.logger;
  let errors = 0;
  const onError = (err: Error): void => {
    errors++;
    if (errors === 1)
      log.warn({ err, statsd: opts.hostPort }, 'StatsD send failed; further StatsD errors are counted, not logged');
  };
  const client = new StatsD({
    host,
    port,
    protocol: 'udp',
    prefix: opts.prefix ?? 'mayhem.',
    maxBufferSize: MAX_DATAGRAM,
    bufferFlushInterval: opts.flushIntervalMs ?? 1000,
    // One lookup, not one per datagram.
    cacheDns: true,
    errorHandler: onError,
  });
  const closeTimeoutMs = opts.closeTimeoutMs ?? 1000;
  let closed: Promise<void> | undefined;

  // hot-shots reports through errorHandler, but a synchronous throw must not reach the pipeline either.
  function guard(fn: () => void): void {
    if (closed !== undefined) return;
    try {
      fn();
    } catch (err) {
      onError(err instanceof Error ? err : new Error(errorText(err)));
    }
  }

  return {
    increment(name: CounterName, value = 1): void {
      guard(() => client.increment(name, value));
    },
    gauge(name: 'in_flight', value: number): void {
      guard(() => client.gauge(name, value));
    },
    timing(name: TimingName, ms: number, outcome?: string): void {
      // StatsD has no labels: the outcome is the last part of the name (restart_duration.failed).
      guard(() => client.timing(outcome === undefined ? name : `${name}.${outcome}`, ms));
    },
    close(): Promise<void> {
      // hot-shots' close flushes the buffer first, but with an unreachable daemon it can wait
      // seconds for failing sends to drain: bound it so shutdown stays within its grace period.
      closed ??= new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          log.warn({ statsd: opts.hostPort, ms: closeTimeoutMs }, 'StatsD close timed out; unsent metrics dropped');
          resolve();
        }, closeTimeoutMs);
        timer.unref();
        const done = (err?: Error): void => {
          clearTimeout(timer);
          if (err) onError(err);
          if (errors > 1) log.warn({ errors, statsd: opts.hostPort }, 'StatsD send errors during this run');
          resolve();
        };
        try {
          client.close(done);
        } catch (err) {
          done(err instanceof Error ? err : new Error(errorText(err)));
        }
      });
      return closed;
    },
  };
}
