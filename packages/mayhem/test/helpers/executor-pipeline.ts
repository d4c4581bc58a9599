/**
 * The real pipeline (memory broker, memory storage) around a real executor, for executor tests:
 * publish a request, handle its deliveries one by one, read the record and the dead letters.
 */
import { MemoryBroker } from '../../src/brokers/memory.js';
import type { RestartExecutor } from '../../src/core/contracts.js';
import type { RestartOutcome } from '../../src/core/restart-outcome.js';
import { createMayhem } from '../../src/core/assemble.js';
import { encodeRestartRequest } from '../../src/core/message.js';
import type { Outcome, PipelineOptions } from '../../src/core/pipeline.js';
import { defaultMayhemSettings } from '../../src/config/mayhem-options.js';
import { openMemoryStorage } from '../../src/storage/memory/storage.js';
import { capturingLogger, defaultPipelineOptions, noopMetrics } from '../pipeline-harness.js';

let ids = 0;

export function executorPipeline(executor: RestartExecutor, options: Partial<PipelineOptions> = {}) {
  const broker = new MemoryBroker({ ackDeadlineMs: 5000 });
  const storage = openMemoryStorage();
  const log = capturingLogger();
  // Short backoffs (random() is 1: each is its ceiling): 20, 40 ms between attempts.
  const { counters, pipeline } = createMayhem(
    { broker, storage, executor, metrics: noopMetrics, logger: log.logger },
    {
      ...defaultMayhemSettings(),
      ...defaultPipelineOptions,
      retryBackoff: { baseMs: 20, maxMs: 200 },
      nackBackoff: { baseMs: 0, maxMs: 0 },
      ...options,
    },
  );
  return {
    broker,
    storage,
    log,
    counters,
    pipeline,
    publish(instanceName: string, messageId = `msg-${++ids}`): string {
      broker.publishSync(encodeRestartRequest({ messageId, instanceName, publishedAt: Date.now() }), messageId);
      return messageId;
    },
    /** Pull one delivery (waiting for it, e.g. after a nack delay) and handle it to its end. */
    async handleNext(signal: AbortSignal = new AbortController().signal): Promise<Outcome> {
      const [delivery] = await broker.pull(1, new AbortController().signal);
      return pipeline.handle(delivery!, signal);
    },
  };
}

/** The outcome of a restart that did not happen, or may not have (fails the test on `restarted`, or on a rejection: a bug). */
export async function failure(p: Promise<RestartOutcome>): Promise<Exclude<RestartOutcome, { kind: 'restarted' }>> {
  const outcome = await p;
  if (outcome.kind === 'restarted') throw new Error('expected a restart that did not happen, got restarted');
  return outcome;
}
