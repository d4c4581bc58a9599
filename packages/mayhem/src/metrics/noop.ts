/** Metrics that go nowhere: the default when no `--statsd` is given. */
import type { Metrics } from '../core/contracts.js';

/** A {@link Metrics} that records nothing; every call is a cheap no-op. */
export const noopMetrics: Metrics = Object.freeze({
  increment(): void {},
  gauge(): void {},
  timing(): void {},
  close(): Promise<void> {
    return Promise.resolve();
  },
});
