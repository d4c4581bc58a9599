/**
 * `monitorLoopLag`: the loop-lag instrument wired to its outputs. The instrument measures; the StatsD
 * and Prometheus sinks ship; this is where the two meet (instruments never import sinks).
 */
import {
  monitorLoopLag as startLoopLag,
  type LoopLagMonitor,
  type LoopLagOptions as InstrumentOptions,
} from './instrument/loop-lag.js';
import type { LoopLagOutput } from './model/report.js';
import { createStatsdTarget, type StatsDLike } from './sinks/statsd.js';
import { createPrometheusTarget } from './sinks/prometheus.js';

export type { StatsDLike } from './sinks/statsd.js';
export type { LoopLagMonitor } from './instrument/loop-lag.js';

/** Options of {@link monitorLoopLag}. */
export interface LoopLagOptions extends Omit<InstrumentOptions, 'outputs'> {
  /** `host:port` of a StatsD daemon (hot-shots is loaded then), or a client of your own. */
  readonly statsd?: string | StatsDLike;
  /** A prom-client `Registry` to register the gauges on. */
  readonly registry?: unknown;
  /** Metric name prefix: StatsD `<prefix>loop.lag.p50`, Prometheus `<prefix>loopwatch_event_loop_lag_seconds`. */
  readonly prefix?: string;
}

/**
 * Measures event-loop delay (p50/p99/max) and utilisation every `intervalMs` and ships the figures
 * to `onSample`, `emit` (the log), StatsD and/or a Prometheus registry. The timer is unref'd.
 */
export function monitorLoopLagTo(opts: LoopLagOptions = {}): LoopLagMonitor {
  const outputs: Promise<LoopLagOutput>[] = [];
  if (opts.statsd !== undefined) outputs.push(createStatsdTarget(opts.statsd, opts.prefix ?? ''));
  if (opts.registry !== undefined) outputs.push(createPrometheusTarget(opts.registry, opts.prefix ?? ''));
  return startLoopLag({ ...opts, outputs });
}
