/**
 * Metrics as Prometheus figures on a prom-client Registry (served by `--http`, see http-server.ts).
 *
 * Counters and the in-flight gauge are plain numbers in the hot path, copied into prom-client only
 * when a scrape collects them: a message costs a few additions, not a dozen label lookups. Durations
 * go into histograms as they happen. Names:
 *
 *   mayhem_<counter>_total                          every counter of core/counters.ts
 *   mayhem_in_flight_messages                        messages being handled now
 *   mayhem_backlog_messages                          messages waiting for a consumer (the broker's count)
 *   mayhem_handle_duration_seconds                   pull → settle, per message (histogram)
 *   mayhem_restart_duration_seconds{outcome}         one executor call, by how it ended (histogram)
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { CounterName, Metrics, TimingName } from '../core/contracts.js';

const HELP: Record<CounterName, string> = {
  pulled: 'Deliveries pulled from the broker (redeliveries included)',
  acked: 'Messages acked (restart and save done)',
  nacked: 'Deliveries nacked back to the broker for redelivery',
  restarted: 'Hosts restarted',
  restart_skipped: 'Restarts skipped because this message was already restarted',
  restart_in_doubt: 'Restarts found in doubt (begun by a delivery that never recorded how it ended) and not run again',
  restart_failed: 'Failed restart attempts',
  save_failed: 'Failed save attempts',
  retries: 'Retries of restarts, saves and records',
  extended: 'Ack deadline extensions',
  dead_lettered: 'Messages dead-lettered',
  malformed: 'Malformed messages (dead-lettered)',
  conflict: 'Messages whose id was already recorded for another instance (dead-lettered)',
  unsettled: 'Messages left to their lease at shutdown because their restart could not be recorded',
};

// Seconds: restarts take from milliseconds (a mock) to minutes (a host reboot).
const BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

/** A {@link Metrics} for Prometheus, plus what only a scrape reads. */
export interface PrometheusMetrics extends Metrics {
  readonly registry: Registry;
  /** Where the backlog gauge reads from (the broker's count); without one the gauge is absent. */
  setBacklogSource(read: () => Promise<number> | number): void;
}

export function createPrometheusMetrics(registry: Registry, prefix = 'mayhem_'): PrometheusMetrics {
  const totals = Object.fromEntries(Object.keys(HELP).map((n) => [n, 0])) as Record<CounterName, number>;
  for (const name of Object.keys(HELP) as CounterName[]) {
    new Counter({
      name: `${prefix}${name}_total`,
      help: HELP[name],
      registers: [registry],
      collect() {
        this.reset();
        this.inc(totals[name]);
      },
    });
  }
  let inFlight = 0;
  new Gauge({ name: `${prefix}in_flight_messages`, help: 'Messages being handled now', registers: [registry], collect() { this.set(inFlight); } });

  let backlog: (() => Promise<number> | number) | undefined;
  new Gauge({
    name: `${prefix}backlog_messages`,
    help: 'Messages waiting for a consumer: ready or waiting out a nack delay (memory broker), not yet delivered to the durable consumer (NATS, fleet-wide)',
    registers: [registry],
    async collect() {
      // Unknown (no source yet, or the broker cannot say now): NaN, not a misleading 0, and not a failed scrape.
      let value = NaN;
      try {
        if (backlog !== undefined) value = await backlog();
      } catch {
        // stays NaN
      }
      this.set(value);
    },
  });

  const handle = new Histogram({ name: `${prefix}handle_duration_seconds`, help: 'Time from pulling a message to settling it (ack, nack or dead letter)', buckets: BUCKETS, registers: [registry] });
  const restart = new Histogram({
    name: `${prefix}restart_duration_seconds`,
    help: 'Time one restart call took, by outcome: restarted, failed (retried), rejected (for good), cancelled (before it took effect), unknown (in doubt)',
    labelNames: ['outcome'],
    buckets: BUCKETS,
    registers: [registry],
  });

  return {
    registry,
    setBacklogSource(read) {
      backlog = read;
    },
    increment(name: CounterName, value = 1): void {
      totals[name] += value;
    },
    gauge(_name: 'in_flight', value: number): void {
      inFlight = value;
    },
    timing(name: TimingName, ms: number, outcome?: string): void {
      if (name === 'handle_duration') handle.observe(ms / 1000);
      else restart.observe({ outcome: outcome ?? 'unknown' }, ms / 1000);
    },
    close(): Promise<void> {
      // The registry stays readable for a last scrape until the HTTP endpoint closes.
      return Promise.resolve();
    },
  };
}

/** One Metrics that feeds several (StatsD and Prometheus at once). */
export function teeMetrics(...all: Metrics[]): Metrics {
  return {
    increment(name, value) {
      for (const m of all) m.increment(name, value);
    },
    gauge(name, value) {
      for (const m of all) m.gauge(name, value);
    },
    timing(name, ms, outcome) {
      for (const m of all) m.timing(name, ms, outcome);
    },
    async close() {
      await Promise.all(all.map((m) => m.close()));
    },
  };
}
