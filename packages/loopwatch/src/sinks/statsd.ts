/**
 * Loop-lag figures to StatsD through hot-shots, an optional peer dependency loaded only when asked for.
 */
import type { LoopLagFigures, LoopLagOutput } from '../model/report.js';

/** The part of a StatsD client loopwatch uses (hot-shots' `StatsD` fits). */
export interface StatsDLike {
  gauge(stat: string, value: number): void;
  increment?(stat: string, value: number): void;
  close?(callback?: (err?: Error) => void): void;
}

/** Ships figures; `close` releases a client loopwatch created (not one the caller passed). */
export type LagTarget = LoopLagOutput;

interface HotShotsModule {
  StatsD: new (opts: { host: string; port: number; errorHandler?: (e: Error) => void }) => StatsDLike;
}

/** Loads an optional peer dependency, turning "not installed" into one clear line. */
export async function importOptional<T>(name: string, what: string): Promise<T> {
  try {
    return (await import(name)) as T;
  } catch (e) {
    if ((e as { code?: string }).code === 'ERR_MODULE_NOT_FOUND') {
      throw new Error(`loopwatch: ${what} needs the optional package '${name}' (npm install ${name})`);
    }
    throw e;
  }
}

/**
 * The OpenTelemetry semantic-convention names (`nodejs.eventloop.delay.*`, gauges in seconds, and
 * `nodejs.eventloop.utilization`, 0..1) with the figure each one takes, ms; utilisation apart.
 */
export function otelDelays(f: LoopLagFigures): [stat: string, ms: number][] {
  const all: [string, number | undefined][] = [
    ['min', f.minMs],
    ['max', f.maxMs],
    ['mean', f.meanMs],
    ['stddev', f.stddevMs],
    ['p50', f.p50Ms],
    ['p90', f.p90Ms],
    ['p99', f.p99Ms],
  ];
  return all.filter((e): e is [string, number] => e[1] !== undefined);
}

/**
 * Names: `<prefix>loop.lag.p50|p99|max` (ms), `<prefix>loop.utilization` (0..1), `<prefix>loop.stalls`
 * (count); and OpenTelemetry's `<prefix>nodejs.eventloop.delay.min|max|mean|stddev|p50|p90|p99` (s) and
 * `<prefix>nodejs.eventloop.utilization` (0..1).
 */
export function statsdTarget(client: StatsDLike, prefix = '', owned = false): LagTarget {
  return {
    write(f: LoopLagFigures): void {
      client.gauge(`${prefix}loop.lag.p50`, f.p50Ms);
      client.gauge(`${prefix}loop.lag.p99`, f.p99Ms);
      client.gauge(`${prefix}loop.lag.max`, f.maxMs);
      client.gauge(`${prefix}loop.utilization`, f.utilization);
      if (client.increment) client.increment(`${prefix}loop.stalls`, f.stalls);
      else client.gauge(`${prefix}loop.stalls`, f.stalls);
      for (const [stat, ms] of otelDelays(f)) client.gauge(`${prefix}nodejs.eventloop.delay.${stat}`, ms / 1000);
      client.gauge(`${prefix}nodejs.eventloop.utilization`, f.utilization);
    },
    close(): void {
      if (owned) client.close?.();
    },
  };
}

/** `host:port` → a hot-shots client (UDP), or the caller's own client. */
export async function createStatsdTarget(target: string | StatsDLike, prefix = ''): Promise<LagTarget> {
  if (typeof target !== 'string') return statsdTarget(target, prefix);
  const m = /^(.+):(\d+)$/.exec(target.trim());
  if (!m) throw new Error(`loopwatch: statsd target ${JSON.stringify(target)} must be host:port`);
  const { StatsD } = await importOptional<HotShotsModule>('hot-shots', 'StatsD output');
  // UDP send errors are the daemon's absence, not the program's problem: drop them.
  const client = new StatsD({ host: m[1] ?? 'localhost', port: Number(m[2]), errorHandler: () => undefined });
  return statsdTarget(client, prefix, true);
}
