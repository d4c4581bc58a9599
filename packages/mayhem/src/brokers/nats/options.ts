/**
 * The adapter's options, their defaults and the checks that make a bad combination one line at
 * start rather than a surprise later.
 */
import type { Logger } from 'pino';
import { MAX_PAYLOAD_BYTES } from '../../core/message.js';

/**
 * Credentials kept out of argv: files read at connect time. (User and password, or a token, may
 * also sit in the URL, e.g. from MAYHEM_BROKER; every URL we print is redacted.)
 */
export interface NatsAuth {
  /** A .creds file: the user JWT and its nkey seed (as `nsc` writes it). */
  readonly credsFile?: string | undefined;
  /** A file holding an nkey seed (SU...). */
  readonly nkeyFile?: string | undefined;
  /** A file holding an auth token. */
  readonly tokenFile?: string | undefined;
}

export interface NatsOptions {
  /** Server URLs, e.g. from `--broker nats://h1:4222,nats://h2:4222`. */
  readonly servers: readonly string[];
  /** Stream holding restart requests (created if missing). Default `MAYHEM`. */
  readonly stream?: string;
  /** Subject restart requests are published on. Default `mayhem.restart`. */
  readonly subject?: string;
  /** Durable pull consumer shared by every instance. Default `mayhem`. */
  readonly durable?: string;
  /** Where dead letters are republished. Default `mayhem.dead`. */
  readonly deadLetterSubject?: string;
  /** Stream that keeps the dead letters. Default `<stream>_DEAD`. */
  readonly deadLetterStream?: string;
  /** Dead letters older than this are dropped from the dead-letter stream; 0 = kept forever. Default 30 days. */
  readonly deadLetterMaxAgeMs?: number;
  /** The dead-letter stream holds at most this many bytes, dropping the oldest; 0 = no limit. Default 1 GiB. */
  readonly deadLetterMaxBytes?: number;
  /** A dead letter larger than this keeps only its first 1 KiB in the dead-letter stream (`--max-message-bytes`). Default 64 KiB. */
  readonly maxMessageBytes?: number;
  /** Credentials from files. */
  readonly auth?: NatsAuth;
  /** Consumer ack wait: a lease not extended for this long is redelivered. Default 30 s. */
  readonly ackWaitMs?: number;
  /**
   * Consumer max_deliver. Default -1 (unlimited): Mayhem dead-letters by itself after
   * `--max-deliveries`, and a finite server limit would silently drop a message whose leases keep
   * expiring (crashing instances) without it ever reaching our dead-letter path.
   */
  readonly maxDeliver?: number;
  /**
   * Consumer max_ack_pending: unacked messages across the whole fleet (it is one shared durable).
   * Each instance is bounded by its own `--max-in-flight` on the client side (pull credits), so
   * this is a fleet-wide safety cap; pass `maxInFlight × instances`. Default 10,000.
   */
  readonly maxAckPending?: number;
  /** Stream and consumer replicas (3 for an R3 stream on a 3-node cluster). Default 1. */
  readonly replicas?: number;
  /** How long one pull request waits on the server before it expires. Default 5 s. */
  readonly pullExpiresMs?: number;
  /** Largest batch one pull request asks for. Default 1000. */
  readonly maxPullBatch?: number;
  /** Timeout of one confirmed settle (ackAck) or publish attempt. Default 5 s. */
  readonly requestTimeoutMs?: number;
  /** Connection name shown by the server (monitoring). */
  readonly name?: string;
  readonly logger: Logger;
}

export type ResolvedNatsOptions = Required<Omit<NatsOptions, 'logger' | 'name' | 'auth'>> & {
  readonly logger: Logger;
  readonly name: string;
  readonly auth: NatsAuth;
};

export function resolveNatsOptions(opts: NatsOptions): ResolvedNatsOptions {
  if (opts.servers.length === 0) throw new Error('NATS: at least one server URL is required');
  const stream = opts.stream ?? 'MAYHEM';
  const resolved: ResolvedNatsOptions = {
    servers: opts.servers,
    stream,
    subject: opts.subject ?? 'mayhem.restart',
    durable: opts.durable ?? 'mayhem',
    deadLetterSubject: opts.deadLetterSubject ?? 'mayhem.dead',
    deadLetterStream: opts.deadLetterStream ?? `${stream}_DEAD`,
    deadLetterMaxAgeMs: opts.deadLetterMaxAgeMs ?? 30 * 86_400_000,
    deadLetterMaxBytes: opts.deadLetterMaxBytes ?? 2 ** 30,
    maxMessageBytes: opts.maxMessageBytes ?? MAX_PAYLOAD_BYTES,
    auth: opts.auth ?? {},
    ackWaitMs: opts.ackWaitMs ?? 30_000,
    maxDeliver: opts.maxDeliver ?? -1,
    maxAckPending: opts.maxAckPending ?? 10_000,
    replicas: opts.replicas ?? 1,
    pullExpiresMs: opts.pullExpiresMs ?? 5_000,
    maxPullBatch: opts.maxPullBatch ?? 1000,
    requestTimeoutMs: opts.requestTimeoutMs ?? 5_000,
    name: opts.name ?? `mayhem-${process.pid}`,
    logger: opts.logger,
  };
  if (resolved.subject === resolved.deadLetterSubject)
    throw new Error('NATS: the dead-letter subject must differ from the request subject');
  if (resolved.pullExpiresMs < 1000) throw new Error('NATS: pull expiry must be at least 1 s');
  if (resolved.ackWaitMs < 100) throw new Error('NATS: ack wait must be at least 100 ms');
  return resolved;
}
