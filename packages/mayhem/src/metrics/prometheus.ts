/**
 * Metrics as Prometheus figures on a prom-client Registry (served by `--http`, see http-server.ts).
 *
 * Counters and the in-flight gauge are plain numbers in the hot path, copied into prom-client only
 * when a scrape collects them: a message costs a few additions, not a dozen label lookups (an
 * increment ~0.5 ns against ~5 ns for prom-client's Counter.inc(): bench/micro/metrics.bench.ts).
 * Durations go into histograms as they happen. Names:
 *
 *   mayhem_<counter>_total                          every counter of core/counters.ts
 *   mayhem_in_flight_messages                        messages being handled now
 *   mayhem_backlog_messages                          messages waiting for a consumer (the broker's count)
 *   mayhem_deferred_total{reason}                    deferrals by rail: paused, leashed, outside-window, too-soon, busy, blast-radius
 *   mayhem_paused, mayhem_in_window                  the kill switch as read (1 = paused); inside --window (1)
 *   mayhem_probe_ok{probe}, mayhem_probe_latency_seconds{probe}   each probe's last check
 *   mayhem_handle_duration_seconds                   pull → settle, per message (histogram)
 *   mayhem_restart_duration_seconds{outcome}         one executor call, by how it ended (histogram)
 */
import { Counter, Gauge, type Metric, type Registry } from 'prom-client';
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
  rail_skipped:
    'Restarts a safety rail refused for good (denied host, too soon or busy with --on-limit skip); acked as skipped',
  deferred:
    'Restarts a safety rail put off (paused, leashed, outside the window, too soon, busy, blast radius); nacked with a delay',
  leashed: 'Restarts that would have run, not run: leashed',
};

// Seconds: restarts take from milliseconds (a mock) to minutes (a host reboot).
const BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

/** A {@link Metrics} for Prometheus, plus what only a scrape reads. */
export interface PrometheusMetrics extends Metrics {
  readonly registry: Registry;
  /** Where the backlog gauge reads from (the broker's count); without one the gauge is absent. */
  setBacklogSource(read: () => Promise<number> | number): void;
  /** Where mayhem_paused and mayhem_in_window read from (the rails, on each scrape). */
  setRailsSource(read: { paused(): boolean; inWindow(): boolean }): void;
  /** Where the probe gauges read from (each probe's last check). */
  setProbeSource(read: () => readonly { name: string; ok: boolean; latencyMs: number }[]): void;
}

export function createPrometheusMetrics(registry: Registry, prefix = 'mayhem_'): PrometheusMetrics {
  const totals = Object.fromEntries(Object.keys(HELP).map((n) => [n, 0])) as Record<CounterName, number>;
  const deferredBy = new Map<string, number>();
  for (const name of Object.keys(HELP) as CounterName[]) {
    if (name === 'deferred') {
      new Counter({
        name: `${prefix}deferred_total`,
        help: HELP.deferred,
        labelNames: ['reason'],
        registers: [registry],
        collect() {
          this.reset();
          for (const [reason, n] of deferredBy) this.inc({ reason }, n);
        },
      });
      continue;
    }
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
  new Gauge({
    name: `${prefix}in_flight_messages`,
    help: 'Messages being handled now',
    registers: [registry],
    collect() {
      this.set(inFlight);
    },
  });

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

  let rails: { paused(): boolean; inWindow(): boolean } | undefined;
  const railGauge = (name: string, help: string, read: (r: NonNullable<typeof rails>) => boolean): void => {
    new Gauge({
      name: `${prefix}${name}`,
      help,
      registers: [registry],
      collect() {
        this.set(rails === undefined ? NaN : read(rails) ? 1 : 0);
      },
    });
  };
  railGauge(
    'paused',
    'Restarts paused fleet-wide by the kill switch (mayhem pause or a probe), as last read: 1 or 0',
    (r) => r.paused(),
  );
  railGauge('in_window', 'Inside the --window restarts may happen in (1 without a window)', (r) => r.inWindow());
  let probes: (() => readonly { name: string; ok: boolean; latencyMs: number }[]) | undefined;
  new Gauge({
    name: `${prefix}probe_ok`,
    help: "Each probe's last check: 1 = the steady state holds by it, 0 = it failed",
    labelNames: ['probe'],
    registers: [registry],
    collect() {
      this.reset();
      for (const p of probes?.() ?? []) this.set({ probe: p.name }, p.ok ? 1 : 0);
    },
  });
  new Gauge({
    name: `${prefix}probe_latency_seconds`,
    help: "How long each probe's last check took",
    labelNames: ['probe'],
    registers: [registry],
    collect() {
      this.reset();
      for (const p of probes?.() ?? []) this.set({ probe: p.name }, p.latencyMs / 1000);
    },
  });

  const handle = new Buckets(
    `${prefix}handle_duration_seconds`,
    'Time from pulling a message to settling it (ack, nack or dead letter)',
  );
  const restart = new Buckets(
    `${prefix}restart_duration_seconds`,
    'Time one restart call took, by outcome: restarted, failed (retried), rejected (for good), cancelled (before it took effect), unknown (in doubt)',
    'outcome',
  );
  registry.registerMetric(handle as unknown as Metric);
  registry.registerMetric(restart as unknown as Metric);

  return {
    registry,
    setBacklogSource(read) {
      backlog = read;
    },
    setRailsSource(read) {
      rails = read;
    },
    setProbeSource(read) {
      probes = read;
    },
    increment(name: CounterName, value = 1, label?: string): void {
      totals[name] += value;
      if (name === 'deferred') deferredBy.set(label ?? 'other', (deferredBy.get(label ?? 'other') ?? 0) + value);
    },
    gauge(_name: 'in_flight', value: number): void {
      inFlight = value;
    },
    timing(name: TimingName, ms: number, outcome?: string): void {
      if (name === 'handle_duration') handle.observe(ms / 1000, '');
      else restart.observe(ms / 1000, outcome ?? 'unknown');
    },
    close(): Promise<void> {
      // The registry stays readable for a last scrape until the HTTP endpoint closes.
      return Promise.resolve();
    },
  };
}

interface Series {
  readonly counts: Float64Array;
  sum: number;
  count: number;
}

/**
 * A histogram that prom-client's Registry serves like its own (the same `get()` shape): observing is
 * a bucket search and three additions, where prom-client's Histogram hashes its labels on every
 * call: ~15 ns here against ~430 ns unlabelled and ~500-680 ns with a label for prom-client 15,
 * 25-45x (bench/micro/metrics.bench.ts). It is per message, so it counts. One optional label.
 */
class Buckets {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly #series = new Map<string, Series>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelName?: string,
  ) {}

  observe(value: number, label: string): void {
    let s = this.#series.get(label);
    if (s === undefined) {
      s = { counts: new Float64Array(BUCKETS.length), sum: 0, count: 0 };
      this.#series.set(label, s);
    }
    let i = 0;
    while (i < BUCKETS.length && value > BUCKETS[i]!) i++;
    if (i < BUCKETS.length) s.counts[i]! += 1;
    s.sum += value;
    s.count += 1;
  }

  /** What prom-client's Registry reads (the shape of its Histogram's `get()`). */
  get(): {
    name: string;
    help: string;
    type: string;
    aggregator: string;
    values: { labels: Record<string, string | number>; value: number; metricName: string }[];
  } {
    const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
    for (const [label, s] of this.#series) {
      const extra: Record<string, string> = this.labelName === undefined ? {} : { [this.labelName]: label };
      let acc = 0;
      for (let i = 0; i < BUCKETS.length; i++) {
        acc += s.counts[i]!;
        values.push({ labels: { le: BUCKETS[i]!, ...extra }, value: acc, metricName: `${this.name}_bucket` });
      }
      values.push({ labels: { le: '+Inf', ...extra }, value: s.count, metricName: `${this.name}_bucket` });
      values.push({ labels: extra, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels: extra, value: s.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    this.#series.clear();
  }
}

/** One Metrics that feeds several (StatsD and Prometheus at once). */
export function teeMetrics(...all: Metrics[]): Metrics {
  return {
    increment(name, value, label) {
      for (const m of all) m.increment(name, value, label);
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
