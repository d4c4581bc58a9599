/**
 * `--broker` URL → a Broker (and a Publisher). The one place that knows every broker adapter.
 */
import type { Logger } from 'pino';
import type { Broker, Publisher } from '../core/contracts.js';
import { redactSecrets } from '../core/redact.js';
import { MemoryBroker } from './memory.js';
import type { NatsAuth } from './nats/index.js';
import { NATS_URL_FORM, parseNatsUrls } from './nats/url.js';

export interface OpenBrokerOptions {
  readonly url: string;
  readonly logger: Logger;
  readonly ackDeadlineMs: number;
  readonly maxInFlight: number;
  readonly maxDeliveries: number;
  readonly stream: string;
  readonly subject: string;
  readonly durable: string;
  readonly deadLetterSubject: string;
  readonly replicas: number;
  /** Memory broker: messages it holds at most (the simulated publisher waits while full). Default: no bound. */
  readonly maxBacklog?: number;
  /** NATS: limits of the dead-letter stream (0 = none). */
  readonly deadLetterMaxAgeMs?: number;
  readonly deadLetterMaxBytes?: number;
  /** NATS: a dead letter larger than this keeps only its first 1 KiB in the dead-letter stream. */
  readonly maxMessageBytes?: number;
  /** NATS: credentials from files. */
  readonly auth?: NatsAuth;
}

/** The server list of a nats:// `--broker` value (config has checked it; this is for other callers). */
function natsServers(url: string): string[] {
  const servers = parseNatsUrls(url);
  if (servers === undefined)
    throw new Error(`invalid --broker ${redactSecrets(JSON.stringify(url))}: expected ${NATS_URL_FORM}`);
  return servers;
}

export async function openBroker(o: OpenBrokerOptions): Promise<Broker> {
  if (o.url === 'memory') return new MemoryBroker({ ackDeadlineMs: o.ackDeadlineMs, maxBacklog: o.maxBacklog });
  if (o.url.startsWith('nats://')) {
    const { openNatsBroker } = await import('./nats/index.js');
    return openNatsBroker({
      servers: natsServers(o.url),
      stream: o.stream,
      subject: o.subject,
      durable: o.durable,
      deadLetterSubject: o.deadLetterSubject,
      // max_deliver -1: the pipeline dead-letters after --max-deliveries itself; a finite server limit would silently drop
      // a message whose leases keep expiring. max_ack_pending is fleet-wide (one shared durable); each instance is held to
      // --max-in-flight by its pull credits, so the server cap leaves room for a fleet of up to 16 full instances.
      ackWaitMs: o.ackDeadlineMs,
      maxDeliver: -1,
      maxAckPending: o.maxInFlight * 16,
      logger: o.logger,
      replicas: o.replicas,
      deadLetterMaxAgeMs: o.deadLetterMaxAgeMs,
      deadLetterMaxBytes: o.deadLetterMaxBytes,
      maxMessageBytes: o.maxMessageBytes,
      auth: o.auth,
    });
  }
  throw new Error(`unsupported --broker ${redactSecrets(JSON.stringify(o.url))}: expected memory or nats://host:port`);
}

export async function openPublisher(
  o: Pick<OpenBrokerOptions, 'url' | 'logger' | 'stream' | 'subject' | 'replicas' | 'auth'>,
): Promise<Publisher> {
  if (o.url.startsWith('nats://')) {
    const { openNatsPublisher } = await import('./nats/index.js');
    return openNatsPublisher({
      servers: natsServers(o.url),
      stream: o.stream,
      subject: o.subject,
      logger: o.logger,
      replicas: o.replicas,
      auth: o.auth,
    });
  }
  throw new Error(
    'publish needs an external broker (--broker nats://host:port); the memory broker lives inside `mayhem run`, which publishes for itself',
  );
}

/**
 * Where the backlog gauge reads from: what the broker holds for consumers and has not leased. The
 * memory broker counts its ready and nack-delayed messages; NATS asks the server for the shared
 * consumer's pending count (fleet-wide).
 */
export function backlogSource(broker: Broker): (() => Promise<number> | number) | undefined {
  const local = broker.localPublisher?.();
  if (local !== undefined) {
    return () => {
      const s = local.stats();
      return s.ready + s.delayed;
    };
  }
  const withBacklog = broker as Broker & { backlog?: () => Promise<number> };
  return typeof withBacklog.backlog === 'function' ? () => withBacklog.backlog!() : undefined;
}
