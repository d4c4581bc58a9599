/**
 * NATS JetStream plumbing shared by the broker and the publisher: options with their defaults,
 * connecting (with a one-line error when the server is unreachable), and creating the stream, the
 * dead-letter stream and the shared durable pull consumer when they are missing.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  jetstreamManager,
  ReplayPolicy,
  RetentionPolicy,
  StorageType,
  type ConsumerInfo,
  type JetStreamManager,
} from '@nats-io/jetstream';
import type { Logger } from 'pino';

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

export type ResolvedNatsOptions = Required<Omit<NatsOptions, 'logger' | 'name'>> & { readonly logger: Logger; readonly name: string };

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
  if (resolved.subject === resolved.deadLetterSubject) throw new Error('NATS: the dead-letter subject must differ from the request subject');
  if (resolved.pullExpiresMs < 1000) throw new Error('NATS: pull expiry must be at least 1 s');
  if (resolved.ackWaitMs < 100) throw new Error('NATS: ack wait must be at least 100 ms');
  return resolved;
}

/**
 * Split `nats://h1:4222,nats://h2:4222` into server URLs. Throws a one-line error on anything
 * that is not a nats:// URL list.
 */
export function parseNatsServers(url: string): string[] {
  const servers = url.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (servers.length === 0) throw new Error(`not a NATS URL: ${JSON.stringify(url)}`);
  for (const s of servers) {
    let parsed: URL;
    try {
      parsed = new URL(s);
    } catch {
      throw new Error(`not a NATS URL: ${JSON.stringify(s)} (expected nats://host:port[,nats://host:port...])`);
    }
    if (parsed.protocol !== 'nats:' || parsed.hostname === '') {
      throw new Error(`not a NATS URL: ${JSON.stringify(s)} (expected nats://host:port[,nats://host:port...])`);
    }
  }
  return servers;
}

function oneLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.replace(/\s+/g, ' ').trim();
}

/**
 * Connect, retrying reconnects forever afterwards (a broker outage pauses the service, it does not
 * end it). An unreachable broker at start is one clear line, no stack.
 */
export async function connectNats(o: ResolvedNatsOptions): Promise<NatsConnection> {
  try {
    return await connect({
      servers: [...o.servers],
      name: o.name,
      timeout: 5_000,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      reconnectJitter: 100,
      pingInterval: 5_000,
      maxPingOut: 3,
    });
  } catch (err) {
    throw new Error(`cannot connect to NATS at ${o.servers.join(',')}: ${oneLine(err)}`);
  }
}

export async function openManager(nc: NatsConnection, o: ResolvedNatsOptions): Promise<JetStreamManager> {
  try {
    return await jetstreamManager(nc, { timeout: o.requestTimeoutMs });
  } catch (err) {
    throw new Error(`NATS at ${o.servers.join(',')} has no usable JetStream (start nats-server with -js): ${oneLine(err)}`);
  }
}

function isApiError(err: unknown, code: number): boolean {
  return err instanceof JetStreamApiError && err.code === code;
}

const nanos = (ms: number): number => Math.round(ms * 1_000_000);

/** Create the stream (and dead-letter stream) if missing; check an existing one carries our subject. */
export async function ensureStreams(jsm: JetStreamManager, o: ResolvedNatsOptions): Promise<void> {
  await ensureStream(jsm, o, o.stream, o.subject, RetentionPolicy.Workqueue);
  await ensureStream(jsm, o, o.deadLetterStream, o.deadLetterSubject, RetentionPolicy.Limits);
}

async function ensureStream(jsm: JetStreamManager, o: ResolvedNatsOptions, name: string, subject: string, retention: RetentionPolicy): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      const info = await jsm.streams.info(name);
      if (!info.config.subjects?.includes(subject)) {
        throw new Error(`NATS stream ${name} exists but does not capture subject ${subject} (it has ${JSON.stringify(info.config.subjects ?? [])})`);
      }
      return;
    } catch (err) {
      if (!isApiError(err, JetStreamApiCodes.StreamNotFound)) throw err;
    }
    try {
      await jsm.streams.add({
        name,
        subjects: [subject],
        retention,
        storage: StorageType.File,
        num_replicas: o.replicas,
        // Publish de-duplication by Nats-Msg-Id (the messageId) within this window.
        duplicate_window: nanos(120_000),
      });
      o.logger.info({ stream: name, subject, replicas: o.replicas }, `Created NATS stream ${name}`);
      return;
    } catch (err) {
      // Another instance may have created it at the same moment: look again.
      if (attempt >= 3) throw err;
    }
  }
}

/**
 * Create the durable pull consumer if missing; when it exists with other ack wait / max deliver /
 * max ack pending, update it to ours (last instance started wins; logged). Returns its info.
 */
export async function ensureConsumer(jsm: JetStreamManager, o: ResolvedNatsOptions): Promise<ConsumerInfo> {
  const wanted = {
    ack_wait: nanos(o.ackWaitMs),
    max_deliver: o.maxDeliver,
    max_ack_pending: o.maxAckPending,
  };
  for (let attempt = 1; ; attempt++) {
    let info: ConsumerInfo | undefined;
    try {
      info = await jsm.consumers.info(o.stream, o.durable);
    } catch (err) {
      if (!isApiError(err, JetStreamApiCodes.ConsumerNotFound)) throw err;
    }
    if (info) {
      const c = info.config;
      if (c.ack_wait !== wanted.ack_wait || c.max_deliver !== wanted.max_deliver || c.max_ack_pending !== wanted.max_ack_pending) {
        o.logger.warn(
          { consumer: o.durable, had: { ack_wait_ms: (c.ack_wait ?? 0) / 1e6, max_deliver: c.max_deliver, max_ack_pending: c.max_ack_pending }, now: { ack_wait_ms: o.ackWaitMs, max_deliver: o.maxDeliver, max_ack_pending: o.maxAckPending } },
          `Updating NATS consumer ${o.durable} to this instance's settings`,
        );
        info = await jsm.consumers.update(o.stream, o.durable, wanted);
      }
      return info;
    }
    try {
      info = await jsm.consumers.add(o.stream, {
        durable_name: o.durable,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        replay_policy: ReplayPolicy.Instant,
        filter_subject: o.subject,
        num_replicas: o.replicas,
        ...wanted,
      });
      o.logger.info({ consumer: o.durable, stream: o.stream, ackWaitMs: o.ackWaitMs, maxDeliver: o.maxDeliver, maxAckPending: o.maxAckPending }, `Created NATS consumer ${o.durable}`);
      return info;
    } catch (err) {
      if (attempt >= 3) throw err;
    }
  }
}
