/**
 * NATS JetStream plumbing shared by the broker and the publisher: options with their defaults,
 * connecting (with a one-line error when the server is unreachable), and creating the stream, the
 * dead-letter stream and the shared durable pull consumer when they are missing.
 */
import { readFileSync } from 'node:fs';
import { connect, credsAuthenticator, nkeyAuthenticator, tokenAuthenticator, type Authenticator, type NatsConnection } from '@nats-io/transport-node';
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  jetstreamManager,
  ReplayPolicy,
  RetentionPolicy,
  StorageType,
  type ConsumerInfo,
  type JetStreamManager,
  type StreamInfo,
} from '@nats-io/jetstream';
import type { Logger } from 'pino';
import { redactSecrets } from '../../core/redact.js';

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

export type ResolvedNatsOptions = Required<Omit<NatsOptions, 'logger' | 'name' | 'auth'>> & { readonly logger: Logger; readonly name: string; readonly auth: NatsAuth };

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
  if (resolved.subject === resolved.deadLetterSubject) throw new Error('NATS: the dead-letter subject must differ from the request subject');
  if (resolved.pullExpiresMs < 1000) throw new Error('NATS: pull expiry must be at least 1 s');
  if (resolved.ackWaitMs < 100) throw new Error('NATS: ack wait must be at least 100 ms');
  return resolved;
}

function oneLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return redactSecrets(text.replace(/\s+/g, ' ').trim());
}

/** The servers for messages: credentials in URLs replaced by `***`. */
export function describeServers(servers: readonly string[]): string {
  return redactSecrets(servers.join(','));
}

function readSecretFile(path: string, what: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (err) {
    throw new Error(`cannot read the NATS ${what} file ${path}: ${(err as NodeJS.ErrnoException).code ?? oneLine(err)}`);
  }
}

/**
 * `nats://user:pass@host` and `nats://token@host`: the client library does not read credentials
 * from server URLs, so they are taken out here (the first URL that has them) and the URLs passed on
 * without them.
 */
export function urlCredentials(urls: readonly string[]): { servers: string[]; user?: string; pass?: string; token?: string } {
  let found: { user?: string; pass?: string; token?: string } = {};
  const servers = urls.map((raw) => {
    let u: URL;
    try {
      u = new URL(raw);
    } catch {
      return raw;
    }
    if (u.username === '' && u.password === '') return raw;
    if (found.user === undefined && found.token === undefined) {
      const name = decodeURIComponent(u.username);
      found = u.password !== '' ? { user: name, pass: decodeURIComponent(u.password) } : { token: name };
    }
    u.username = '';
    u.password = '';
    return u.toString().replace(/\/$/, '');
  });
  return { servers, ...found };
}

/** Authenticators for the credential files given (none: the URL's own user/password/token, if any). */
export function authenticators(auth: NatsAuth): Authenticator[] {
  const out: Authenticator[] = [];
  if (auth.credsFile !== undefined) {
    const creds = readSecretFile(auth.credsFile, 'credentials (--nats-creds)');
    if (!/-----BEGIN NATS USER JWT-----/.test(new TextDecoder().decode(creds))) {
      throw new Error(`the NATS credentials file ${auth.credsFile} (--nats-creds) holds no user JWT: expected a .creds file as nsc writes it`);
    }
    out.push(credsAuthenticator(creds));
  }
  if (auth.nkeyFile !== undefined) {
    const seed = new TextDecoder().decode(readSecretFile(auth.nkeyFile, 'nkey seed (--nats-nkey)')).trim();
    if (!/^SU[A-Z2-7]{56}$/.test(seed)) throw new Error(`the NATS nkey file ${auth.nkeyFile} (--nats-nkey) does not hold a user nkey seed (SU..., 58 characters)`);
    out.push(nkeyAuthenticator(new TextEncoder().encode(seed)));
  }
  if (auth.tokenFile !== undefined) {
    const token = new TextDecoder().decode(readSecretFile(auth.tokenFile, 'token (--nats-token-file)')).trim();
    if (token === '') throw new Error(`the NATS token file ${auth.tokenFile} (--nats-token-file) is empty`);
    out.push(tokenAuthenticator(token));
  }
  return out;
}

/**
 * Connect, retrying reconnects forever afterwards (a broker outage pauses the service, it does not
 * end it). An unreachable broker at start is one clear line, no stack.
 */
export async function connectNats(o: ResolvedNatsOptions): Promise<NatsConnection> {
  const auth = authenticators(o.auth);
  const { servers, user, pass, token } = urlCredentials(o.servers);
  try {
    return await connect({
      servers,
      ...(auth.length > 0 ? { authenticator: auth } : {}),
      ...(user !== undefined ? { user, pass } : {}),
      ...(token !== undefined ? { token } : {}),
      name: o.name,
      timeout: 5_000,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      reconnectJitter: 100,
      pingInterval: 5_000,
      maxPingOut: 3,
    });
  } catch (err) {
    throw new Error(`cannot connect to NATS at ${describeServers(o.servers)}: ${oneLine(err)}`);
  }
}

export async function openManager(nc: NatsConnection, o: ResolvedNatsOptions): Promise<JetStreamManager> {
  try {
    return await jetstreamManager(nc, { timeout: o.requestTimeoutMs });
  } catch (err) {
    throw new Error(`NATS at ${describeServers(o.servers)} has no usable JetStream (start nats-server with -js): ${oneLine(err)}`);
  }
}

function isApiError(err: unknown, code: number): boolean {
  return err instanceof JetStreamApiError && err.code === code;
}

const nanos = (ms: number): number => Math.round(ms * 1_000_000);

interface StreamPlan {
  readonly name: string;
  readonly subject: string;
  readonly retention: RetentionPolicy;
  /** Limits we own on this stream (set at creation, updated when they differ). */
  readonly limits?: { readonly max_age: number; readonly max_bytes: number };
}

/**
 * Make sure the request stream exists and captures our subject, and, with `deadLetters`, the
 * dead-letter stream too (`mayhem run` needs it; `mayhem publish` does not, and never creates it).
 * Everything is checked before anything is created: a stream of the same name that does not
 * capture our subject, or another stream that already captures it, is one line naming both, and
 * nothing is left half-created.
 */
export async function ensureStreams(jsm: JetStreamManager, o: ResolvedNatsOptions, { deadLetters = true }: { deadLetters?: boolean } = {}): Promise<void> {
  const plans: StreamPlan[] = [{ name: o.stream, subject: o.subject, retention: RetentionPolicy.Workqueue }];
  if (deadLetters) {
    plans.push({
      name: o.deadLetterStream, subject: o.deadLetterSubject, retention: RetentionPolicy.Limits,
      // JetStream: 0 max age = forever, -1 max bytes = no limit.
      limits: { max_age: nanos(o.deadLetterMaxAgeMs), max_bytes: o.deadLetterMaxBytes > 0 ? o.deadLetterMaxBytes : -1 },
    });
  }
  for (let attempt = 1; ; attempt++) {
    const missing: StreamPlan[] = [];
    for (const plan of plans) {
      const info = await streamInfo(jsm, plan.name);
      if (info === undefined) {
        await checkSubjectFree(jsm, plan);
        missing.push(plan);
      } else {
        if (!info.config.subjects?.includes(plan.subject)) {
          throw new Error(`NATS stream ${plan.name} exists but does not capture subject ${plan.subject} (it has ${JSON.stringify(info.config.subjects ?? [])}); use another --stream or --${plan.limits ? 'dead-letter-subject' : 'subject'}`);
        }
        if (plan.limits && (info.config.max_age !== plan.limits.max_age || info.config.max_bytes !== plan.limits.max_bytes)) {
          await jsm.streams.update(plan.name, { ...info.config, ...plan.limits });
          o.logger.info({ stream: plan.name, maxAgeMs: o.deadLetterMaxAgeMs, maxBytes: plan.limits.max_bytes }, `Updated the limits of NATS stream ${plan.name} to this instance's settings`);
        }
      }
    }
    if (missing.length === 0) return;
    const created: string[] = [];
    try {
      for (const plan of missing) {
        await jsm.streams.add({
          name: plan.name,
          subjects: [plan.subject],
          retention: plan.retention,
          storage: StorageType.File,
          num_replicas: o.replicas,
          // Publish de-duplication by Nats-Msg-Id (the messageId) within this window.
          duplicate_window: nanos(120_000),
          ...(plan.limits ? { ...plan.limits, discard: DiscardPolicy.Old } : {}),
        });
        created.push(plan.name);
        o.logger.info({ stream: plan.name, subject: plan.subject, replicas: o.replicas }, `Created NATS stream ${plan.name}`);
      }
      return;
    } catch (err) {
      // Nothing half-way: what this call created goes again -- only while it is still empty and
      // unused (adding an existing identical stream succeeds, so it may be another instance's).
      for (const name of created) {
        const info = await streamInfo(jsm, name).catch(() => undefined);
        if (info !== undefined && info.state.messages === 0 && info.state.consumer_count === 0) await jsm.streams.delete(name).catch(() => undefined);
      }
      // Another instance may have created them at the same moment: look again (and name a conflict).
      if (attempt >= 3) throw new Error(`could not create NATS stream(s) ${missing.map((p) => p.name).join(', ')}: ${oneLine(err)}`);
    }
  }
}

async function streamInfo(jsm: JetStreamManager, name: string): Promise<StreamInfo | undefined> {
  try {
    return await jsm.streams.info(name);
  } catch (err) {
    if (isApiError(err, JetStreamApiCodes.StreamNotFound)) return undefined;
    throw err;
  }
}

/** Throws one line naming the stream that already captures `plan.subject` (JetStream forbids overlaps). */
async function checkSubjectFree(jsm: JetStreamManager, plan: StreamPlan): Promise<void> {
  const holders: string[] = [];
  for await (const name of jsm.streams.names(plan.subject)) if (name !== plan.name) holders.push(name);
  if (holders.length === 0) return;
  const first = holders[0] ?? '';
  let subjects = '';
  try {
    subjects = ` (${JSON.stringify((await jsm.streams.info(first)).config.subjects ?? [])})`;
  } catch {
    // Named without its subjects, then.
  }
  const advice = plan.limits
    ? 'choose another --dead-letter-subject'
    : `choose another --subject, or consume that stream with --stream ${first}${holders.length > 1 ? ' (if it captures only this subject)' : ''}`;
  throw new Error(`NATS stream ${plan.name} cannot be created for subject ${plan.subject}: stream ${holders.join(', ')} already captures it${subjects}; ${advice}`);
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
