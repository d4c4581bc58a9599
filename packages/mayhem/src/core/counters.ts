/**
 * The service's own tally: what the summary and the status line print. Every increment is also
 * forwarded to the configured {@link Metrics} backend.
 */
import type { CounterName, Metrics } from './contracts.js';

export type Tally = Record<CounterName, number>;

const NAMES: readonly CounterName[] = [
  'pulled',
  'acked',
  'nacked',
  'restarted',
  'restart_skipped',
  'restart_in_doubt',
  'restart_failed',
  'save_failed',
  'retries',
  'extended',
  'dead_lettered',
  'malformed',
  'conflict',
  'unsettled',
  'rail_skipped',
  'deferred',
  'leashed',
];

export class Counters {
  readonly tally: Tally;
  readonly #metrics: Metrics;

  constructor(metrics: Metrics) {
    this.#metrics = metrics;
    this.tally = Object.fromEntries(NAMES.map((n) => [n, 0])) as Tally;
  }

  increment(name: CounterName, value = 1, label?: string): void {
    this.tally[name] += value;
    this.#metrics.increment(name, value, label);
  }

  inFlight(value: number): void {
    this.#metrics.gauge('in_flight', value);
  }

  handled(ms: number): void {
    this.#metrics.timing('handle_duration', ms);
  }
}
