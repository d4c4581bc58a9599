/**
 * The one shutdown order. Read top to bottom; every step is awaited before the next:
 *
 *   1. stop the simulated publisher and stop pulling (no new leases)
 *   2. give in-flight messages up to `graceMs` to finish on their own
 *   3. cancel the rest: abort their signal (it reaches executor and storage); each nacks itself, the
 *      record of a restart that already happened still written; what has not nacked after
 *      `cancelTimeoutMs` is left to its lease (the broker redelivers it)
 *   4. `beforeClosing`: the run's end (the probes' last check, the experiment recorded), storage still open
 *   5. close the broker (after every nack was sent)
 *   6. close storage (pending writes are flushed first)
 *   7. flush metrics
 *
 * A failed close is logged and the next step still runs. What the core does not own closes after this
 * returns, in the composition root (service.ts): the executor's connections (every restart has ended
 * or was aborted), then the summary, then the `--http` endpoint last, so a final scrape sees the final
 * figures. A second signal meanwhile exits 130 at once (run-signals.ts).
 */
import type { Logger } from 'pino';
import type { Broker, Metrics, Storage } from './contracts.js';
import type { Consumer } from './consumer.js';
import { errorText } from './errors.js';
import { sleep } from './timing.js';

export interface ShutdownParts {
  readonly logger: Logger;
  readonly graceMs: number;
  /** Aborting it stops the publisher and the pull loop. */
  readonly stopPulling: AbortController;
  /** Aborting it cancels in-flight handlers. */
  readonly cancelInFlight: AbortController;
  /** Resolves when the pull loop (and the publisher, if any) have returned. */
  readonly pullingStopped: Promise<unknown>;
  readonly consumer: Consumer;
  readonly broker: Broker;
  readonly storage: Storage;
  readonly metrics: Metrics;
  /** How long cancelled handlers get to nack before we stop waiting (a broker that is down). */
  readonly cancelTimeoutMs?: number;
  /** Once no message is in flight, before anything closes (the probes' last check, the experiment's end). */
  readonly beforeClosing?: () => Promise<void>;
}

export async function shutdown(p: ShutdownParts): Promise<void> {
  const { logger } = p;
  p.stopPulling.abort(new Error('shutting down'));
  await p.pullingStopped;

  if (p.consumer.inFlight > 0) {
    logger.info(
      { inFlight: p.consumer.inFlight, graceMs: p.graceMs },
      `Waiting up to ${p.graceMs} ms for ${p.consumer.inFlight} in-flight messages`,
    );
    const grace = new AbortController();
    await Promise.race([p.consumer.drained(), sleep(p.graceMs, grace.signal).catch(() => undefined)]);
    grace.abort();
  }
  if (p.consumer.inFlight > 0) {
    logger.info({ inFlight: p.consumer.inFlight }, 'Nacking outstanding messages');
    logger.info(`Cancelling ${p.consumer.inFlight} outstanding tasks`);
    p.cancelInFlight.abort(new DOMException('shutdown grace period over', 'AbortError'));
    const waited = new AbortController();
    await Promise.race([p.consumer.drained(), sleep(p.cancelTimeoutMs ?? 5000, waited.signal).catch(() => undefined)]);
    waited.abort();
    if (p.consumer.inFlight > 0)
      logger.warn(
        { inFlight: p.consumer.inFlight },
        'Some messages did not nack in time; their leases will expire and the broker will redeliver them',
      );
  }

  await p.beforeClosing?.().catch((err: unknown) => logger.warn({ err: errorText(err) }, 'Could not finish the run'));
  logger.info('Closing broker connection');
  await p.broker.close().catch((err: unknown) => logger.warn({ err: errorText(err) }, 'Broker close failed'));
  logger.info('Closing database connections');
  await p.storage.close().catch((err: unknown) => logger.warn({ err: errorText(err) }, 'Storage close failed'));
  logger.info('Flushing metrics');
  await p.metrics.close().catch((err: unknown) => logger.warn({ err: errorText(err) }, 'Metrics flush failed'));
}
