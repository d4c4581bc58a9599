/** `--statsd` (and `--http`'s Prometheus figures) → a Metrics backend (no-op without either). */
import type { Logger } from 'pino';
import type { Metrics } from '../core/contracts.js';
import { noopMetrics } from './noop.js';
import { teeMetrics } from './prometheus.js';

export async function openMetrics(statsd: string | undefined, logger: Logger, prometheus?: Metrics): Promise<Metrics> {
  if (statsd === undefined) return prometheus ?? noopMetrics;
  const { createStatsdMetrics } = await import('./statsd.js');
  const sent = createStatsdMetrics({ hostPort: statsd, logger });
  return prometheus === undefined ? sent : teeMetrics(sent, prometheus);
}
