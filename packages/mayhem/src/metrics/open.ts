/** `--statsd` → a Metrics backend (no-op without it). */
import type { Logger } from 'pino';
import type { Metrics } from '../core/contracts.js';
import { noopMetrics } from './noop.js';

export async function openMetrics(statsd: string | undefined, logger: Logger): Promise<Metrics> {
  if (statsd === undefined) return noopMetrics;
  const { createStatsdMetrics } = await import('./statsd.js');
  return createStatsdMetrics({ hostPort: statsd, logger });
}
