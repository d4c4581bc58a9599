/**
 * metrics/prometheus.ts: mayhem's own counters and histogram buckets against prom-client's Counter
 * and Histogram, per call on the hot path (each message counts a few times and observes its
 * duration once). Run: `npm run bench:micro` (or node --expose-gc packages/mayhem/dist/bench/micro/metrics.bench.js).
 */
import { bench, do_not_optimize, group, run, summary } from 'mitata';
import { Counter, Histogram, Registry } from 'prom-client';
import { createPrometheusMetrics } from '../../src/metrics/prometheus.js';

const BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
const mayhem = createPrometheusMetrics(new Registry());
const registry = new Registry();
const promCounter = new Counter({ name: 'acked_total', help: 'h', registers: [registry] });
const promHistogram = new Histogram({
  name: 'handle_duration_seconds',
  help: 'h',
  buckets: BUCKETS,
  registers: [registry],
});
const promLabelled = new Histogram({
  name: 'restart_duration_seconds',
  help: 'h',
  buckets: BUCKETS,
  labelNames: ['outcome'],
  registers: [registry],
});

// Durations like a message's: a few ms, varying so no bucket search is constant.
const ms = Array.from({ length: 1024 }, (_, i) => 0.5 + ((i * 7919) % 200));
let i = 0;
const next = (): number => ms[i++ & 1023]!;

group('count one event', () => {
  summary(() => {
    bench('mayhem increment (a number, copied at scrape)', () => mayhem.increment('acked'));
    bench('prom-client Counter.inc()', () => promCounter.inc());
  });
});

group('observe one duration, no label', () => {
  summary(() => {
    bench('mayhem Buckets (timing handle_duration)', () => mayhem.timing('handle_duration', next()));
    bench('prom-client Histogram.observe(v)', () => promHistogram.observe(next() / 1000));
  });
});

group('observe one duration, one label', () => {
  summary(() => {
    bench('mayhem Buckets (timing restart_duration, outcome)', () =>
      mayhem.timing('restart_duration', next(), 'restarted'),
    );
    bench('prom-client Histogram.observe({ outcome }, v)', () =>
      promLabelled.observe({ outcome: 'restarted' }, next() / 1000),
    );
  });
});

await run();
// Both registries hold what was observed (and nothing was optimised away).
do_not_optimize(await registry.metrics());
do_not_optimize(await mayhem.registry.metrics());
