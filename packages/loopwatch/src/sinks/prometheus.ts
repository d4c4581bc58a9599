/**
 * Loop-lag figures as prom-client gauges on the caller's Registry. prom-client is an optional peer
 * dependency loaded only when a registry is given.
 */
import type { LoopLagFigures } from '../model/report.js';
import { importOptional, otelDelays, type LagTarget } from './statsd.js';

interface MetricLike {
  set?(labels: Record<string, string> | number, value?: number): void;
  inc?(value: number): void;
}
interface RegistryLike {
  getSingleMetric(name: string): unknown;
  registerMetric(metric: unknown): void;
  removeSingleMetric(name: string): void;
}
interface PromModule {
  Gauge: new (cfg: { name: string; help: string; labelNames?: string[]; registers: unknown[] }) => MetricLike;
  Counter: new (cfg: { name: string; help: string; registers: unknown[] }) => MetricLike;
}

function isRegistry(r: unknown): r is RegistryLike {
  return (
    typeof r === 'object' &&
    r !== null &&
    typeof (r as RegistryLike).getSingleMetric === 'function' &&
    typeof (r as RegistryLike).registerMetric === 'function'
  );
}

/** Prometheus naming: the prefix with anything outside `[a-zA-Z0-9_:]` turned into `_`. */
function promPrefix(prefix: string): string {
  return prefix.replace(/[^a-zA-Z0-9_:]/g, '_');
}

/**
 * Registers (or reuses) on `registry`:
 * - `<prefix>loopwatch_event_loop_lag_seconds{stat="p50"|"p99"|"max"}` (gauge),
 * - `<prefix>loopwatch_event_loop_utilization` (gauge, 0..1, over the last interval),
 * - `<prefix>loopwatch_event_loop_stalls_total` (counter);
 * and the OpenTelemetry semantic-convention names as the OpenTelemetry → Prometheus translation
 * spells them (dots to `_`, the unit `s` as `_seconds`, a `1`-unit gauge as `_ratio`):
 * - `<prefix>nodejs_eventloop_delay_{min,max,mean,stddev,p50,p90,p99}_seconds` (gauges),
 * - `<prefix>nodejs_eventloop_utilization_ratio` (gauge, 0..1).
 */
export async function createPrometheusTarget(registry: unknown, prefix = ''): Promise<LagTarget> {
  if (!isRegistry(registry)) throw new Error('loopwatch: registry must be a prom-client Registry');
  const prom = await importOptional<PromModule>('prom-client', 'Prometheus output');
  const p = promPrefix(prefix);
  const get = <T>(name: string, make: () => T): T => (registry.getSingleMetric(name) as T | undefined) ?? make();
  const lagName = `${p}loopwatch_event_loop_lag_seconds`;
  const utilName = `${p}loopwatch_event_loop_utilization`;
  const stallName = `${p}loopwatch_event_loop_stalls_total`;
  const lag = get(
    lagName,
    () =>
      new prom.Gauge({
        name: lagName,
        help: 'Event-loop delay over the last interval (stalls included), seconds',
        labelNames: ['stat'],
        registers: [registry],
      }),
  );
  const util = get(
    utilName,
    () =>
      new prom.Gauge({
        name: utilName,
        help: 'Event-loop utilisation over the last interval, 0..1',
        registers: [registry],
      }),
  );
  const stalls = get(
    stallName,
    () =>
      new prom.Counter({
        name: stallName,
        help: 'Event-loop stalls seen by the loopwatch watchdog',
        registers: [registry],
      }),
  );
  const gauge = (name: string, help: string): MetricLike =>
    get(name, () => new prom.Gauge({ name, help, registers: [registry] }));
  const otel = new Map(
    ['min', 'max', 'mean', 'stddev', 'p50', 'p90', 'p99'].map((stat) => [
      stat,
      gauge(
        `${p}nodejs_eventloop_delay_${stat}_seconds`,
        `Event loop ${stat} delay over the last interval, seconds (OpenTelemetry nodejs.eventloop.delay.${stat})`,
      ),
    ]),
  );
  const otelUtil = gauge(
    `${p}nodejs_eventloop_utilization_ratio`,
    'Event loop utilization over the last interval, 0..1 (OpenTelemetry nodejs.eventloop.utilization)',
  );
  return {
    write(f: LoopLagFigures): void {
      for (const [stat, ms] of otelDelays(f)) otel.get(stat)?.set?.(ms / 1000);
      otelUtil.set?.(f.utilization);
      lag.set?.({ stat: 'p50' }, f.p50Ms / 1000);
      lag.set?.({ stat: 'p99' }, f.p99Ms / 1000);
      lag.set?.({ stat: 'max' }, f.maxMs / 1000);
      util.set?.(f.utilization);
      if (f.stalls > 0) stalls.inc?.(f.stalls);
    },
    close(): void {
      // The registry is the caller's; its metrics stay for a last scrape.
    },
  };
}
