/**
 * What the pipeline (core/pipeline.ts) is built with: its knobs (the settings table's, through
 * createMayhem) and the parts it drives.
 */
import type { Logger } from 'pino';
import type { HostGuard, RestartExecutor, Storage, TrackProgress } from './contracts.js';
import type { Counters } from './counters.js';
import type { HostTemplate } from './hostname.js';
import type { FleetControl, Rails } from './rails.js';
import type { BackoffPolicy } from './timing.js';

export interface PipelineOptions {
  /** Extend the lease this often while a message is in flight. */
  readonly extendEveryMs: number;
  /** How long one extension buys, for the log line (the broker's ack deadline). */
  readonly ackDeadlineMs: number;
  readonly restartAttempts: number;
  /** Tries of the save, and of the claim that precedes a restart. */
  readonly saveAttempts: number;
  /** After this many deliveries a failing message is dead-lettered instead of nacked. */
  readonly maxDeliveries: number;
  /** Backoff between retries of one step within a delivery. */
  readonly retryBackoff: BackoffPolicy;
  /** Backoff before a nacked message is redelivered (grows with its delivery count). */
  readonly nackBackoff: BackoffPolicy;
  /** Leashed (also `dryRun`): log and record what would be restarted; restart nothing. */
  readonly dryRun: boolean;
  /**
   * A restart found in doubt (an earlier delivery began it and never recorded how it ended): `skip`
   * (default: at most once — recorded and acked, never run again) or `restart` (at least once).
   */
  readonly inDoubt?: 'skip' | 'restart';
  /** Backoff of records retried while the database is out (default: retryBackoff's base, up to 5 s). */
  readonly recordBackoff?: BackoffPolicy;
  readonly random: () => number;
  /** This instance's name in the audit trail (default host:pid). */
  readonly instance?: string;
  /** The executor's name in the audit trail (default mock). */
  readonly executorName?: string;
  /** `--experiment`: stamped on the audit rows written with records (the control stamps the rest). */
  readonly experiment?: string | undefined;
  /** Monotonic clock in ms (tests pass a fake one). */
  readonly now?: () => number;
  /** `--host-template`: the host of a request that carries none (default `{instance}.example.net`). */
  readonly hostTemplate?: HostTemplate;
  /** `--max-message-bytes`: a larger payload is dead-lettered as its size and a prefix (default 64 KiB). */
  readonly maxMessageBytes?: number;
}

export interface PipelineDeps {
  readonly storage: Storage;
  readonly executor: RestartExecutor;
  readonly hostGuard: HostGuard;
  readonly counters: Counters;
  readonly logger: Logger;
  /** Safety rails decided before any executor runs (absent: every restart may run). */
  readonly rails?: Rails;
  /** Where decisions are audited (and the rails' fleet state lives). */
  readonly control?: FleetControl;
  /** Each message's phase for a debugger: loopwatch's `trackWork` (absent: none). */
  readonly track?: TrackProgress;
}
