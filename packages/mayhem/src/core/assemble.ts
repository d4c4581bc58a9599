/**
 * `createMayhem(parts, options)`: the one wiring of the core — counters, pipeline, consumer — around
 * adapters that are already open. The service (`mayhem run`), the benchmarks and the tests all build
 * the core with it, so what they measure and test is what runs.
 *
 *   const settings = mayhemSettings(config); // config/mayhem-options.ts: the settings table's values
 *   const mayhem = createMayhem({ broker, storage, executor, metrics, logger }, { ...settings, random });
 *   const pulling = mayhem.consumer.run(stop.signal, cancel.signal);
 *
 * The knobs the settings table owns (`MayhemSettings`) have no default here: they come from the table
 * (`defaultMayhemSettings()` for the benches and tests), so a default is written in one place.
 */
import type { Logger } from 'pino';
import type { Broker, HostGuard, Metrics, RestartExecutor, Storage, TrackProgress } from './contracts.js';
import { Consumer, nackOnHandlerError, type HandlerErrorHandler } from './consumer.js';
import { Counters } from './counters.js';
import { LocalHostGuard } from './host-guard.js';
import type { HostTemplate } from './hostname.js';
import { MessagePipeline, type PipelineOptions } from './pipeline.js';
import type { FleetControl, Rails } from './rails.js';
import { backoffDelay, type BackoffPolicy } from './timing.js';

/** The adapters, open. */
export interface MayhemParts {
  readonly broker: Broker;
  readonly storage: Storage;
  readonly executor: RestartExecutor;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Default: the storage's (shared by a fleet), else one in process. */
  readonly hostGuard?: HostGuard;
  readonly rails?: Rails;
  /** Default: the storage's, when it keeps one. */
  readonly control?: FleetControl;
  /** Default: {@link nackOnHandlerError} with the nack backoff. */
  readonly onHandlerError?: HandlerErrorHandler;
  /** Each message's phase for a debugger: loopwatch's `trackWork` (default: none). */
  readonly track?: TrackProgress;
}

/** The knobs the settings table owns: `mayhem run` passes its Config's (config/mayhem-options.ts). */
export interface MayhemSettings {
  readonly extendEveryMs: number;
  readonly restartAttempts: number;
  readonly saveAttempts: number;
  readonly maxDeliveries: number;
  readonly retryBackoff: BackoffPolicy;
  readonly nackBackoff: BackoffPolicy;
  readonly dryRun: boolean;
  readonly inDoubt: 'skip' | 'restart';
  readonly maxInFlight: number;
  readonly maxMessageBytes: number;
  readonly hostTemplate: HostTemplate;
}

/** The settings, and what is not a setting (the random source, names, a fake clock, the pull size). */
export interface MayhemOptions
  extends MayhemSettings, Partial<Omit<PipelineOptions, keyof MayhemSettings | 'ackDeadlineMs'>> {
  /** Default: the broker's. */
  readonly ackDeadlineMs?: number;
  /** Upper bound on one pull (default min(maxInFlight, 256)). */
  readonly pullBatch?: number;
  /** Each message an async call, so loopwatch's task dumps list it (debug mode). */
  readonly messageTasks?: boolean;
}

export interface Mayhem {
  readonly counters: Counters;
  readonly pipeline: MessagePipeline;
  readonly consumer: Consumer;
}

export function createMayhem(parts: MayhemParts, options: MayhemOptions): Mayhem {
  const { broker, storage, logger } = parts;
  const counters = new Counters(parts.metrics);
  const random = options.random ?? Math.random;
  const pipeline = new MessagePipeline(
    { ackDeadlineMs: broker.ackDeadlineMs, ...options, random },
    {
      storage,
      counters,
      logger,
      executor: parts.executor,
      rails: parts.rails,
      control: parts.control ?? storage.control?.(),
      hostGuard: parts.hostGuard ?? storage.hostGuard?.() ?? new LocalHostGuard(),
      track: parts.track,
    },
  );
  const { maxInFlight, nackBackoff } = options;
  const consumer = new Consumer({
    broker,
    pipeline,
    counters,
    logger,
    maxInFlight,
    pullBatch: options.pullBatch ?? Math.min(maxInFlight, 256),
    messageTasks: options.messageTasks,
    // An error that keeps happening must not spin redeliveries: the same growing delay as a nack.
    // A message that breaks its handler on every delivery parks itself (dead-lettered, recorded).
    onHandlerError:
      parts.onHandlerError ??
      nackOnHandlerError(logger, counters, {
        nackDelayMs: (deliveries) => backoffDelay(deliveries, nackBackoff, random),
        maxDeliveries: options.maxDeliveries,
        recordDeadLetter: (entry) => storage.deadLetter(entry),
      }),
  });
  return { counters, pipeline, consumer };
}
