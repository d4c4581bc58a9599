/**
 * Getting JetStream ready for us: the JetStream manager, the request stream, the dead-letter stream
 * and the shared durable pull consumer, created when missing and brought to our settings when they
 * differ; and connect-then-set-up, patient while a cluster elects its leaders.
 */
import type { NatsConnection } from '@nats-io/transport-node';
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
import { errorText } from '../../core/errors.js';
import { connectNats, describeServers, oneLine } from './connection.js';
import { resolveNatsOptions, type NatsOptions, type ResolvedNatsOptions } from './options.js';

export async function openManager(nc: NatsConnection, o: ResolvedNatsOptions): Promise<JetStreamManager> {
  try {
    return await jetstreamManager(nc, { timeout: o.requestTimeoutMs });
  } catch (err) {
    throw new Error(
      `NATS at ${describeServers(o.servers)} has no usable JetStream (start nats-server with -js): ${oneLine(err)}`,
    );
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
export async function ensureStreams(
  jsm: JetStreamManager,
  o: ResolvedNatsOptions,
  { deadLetters = true }: { deadLetters?: boolean } = {},
): Promise<void> {
  const plans: StreamPlan[] = [{ name: o.stream, subject: o.subject, retention: RetentionPolicy.Workqueue }];
  if (deadLetters) {
    plans.push({
      name: o.deadLetterStream,
      subject: o.deadLetterSubject,
      retention: RetentionPolicy.Limits,
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
          throw new Error(
            `NATS stream ${plan.name} exists but does not capture subject ${plan.subject} (it has ${JSON.stringify(info.config.subjects ?? [])}); use another --stream or --${plan.limits ? 'dead-letter-subject' : 'subject'}`,
          );
        }
        if (
          plan.limits &&
          (info.config.max_age !== plan.limits.max_age || info.config.max_bytes !== plan.limits.max_bytes)
        ) {
          await jsm.streams.update(plan.name, { ...info.config, ...plan.limits });
          o.logger.info(
            { stream: plan.name, maxAgeMs: o.deadLetterMaxAgeMs, maxBytes: plan.limits.max_bytes },
            `Updated the limits of NATS stream ${plan.name} to this instance's settings`,
          );
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
        o.logger.info(
          { stream: plan.name, subject: plan.subject, replicas: o.replicas },
          `Created NATS stream ${plan.name}`,
        );
      }
      return;
    } catch (err) {
      // Nothing half-way: what this call created goes again -- only while it is still empty and
      // unused (adding an existing identical stream succeeds, so it may be another instance's).
      for (const name of created) {
        const info = await streamInfo(jsm, name).catch(() => undefined);
        if (info !== undefined && info.state.messages === 0 && info.state.consumer_count === 0)
          await jsm.streams.delete(name).catch(() => undefined);
      }
      // Another instance may have created them at the same moment: look again (and name a conflict).
      if (attempt >= 3)
        throw new Error(`could not create NATS stream(s) ${missing.map((p) => p.name).join(', ')}: ${oneLine(err)}`);
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
  throw new Error(
    `NATS stream ${plan.name} cannot be created for subject ${plan.subject}: stream ${holders.join(', ')} already captures it${subjects}; ${advice}`,
  );
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
      if (
        c.ack_wait !== wanted.ack_wait ||
        c.max_deliver !== wanted.max_deliver ||
        c.max_ack_pending !== wanted.max_ack_pending
      ) {
        o.logger.warn(
          {
            consumer: o.durable,
            had: {
              ack_wait_ms: (c.ack_wait ?? 0) / 1e6,
              max_deliver: c.max_deliver,
              max_ack_pending: c.max_ack_pending,
            },
            now: { ack_wait_ms: o.ackWaitMs, max_deliver: o.maxDeliver, max_ack_pending: o.maxAckPending },
          },
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
      o.logger.info(
        {
          consumer: o.durable,
          stream: o.stream,
          ackWaitMs: o.ackWaitMs,
          maxDeliver: o.maxDeliver,
          maxAckPending: o.maxAckPending,
        },
        `Created NATS consumer ${o.durable}`,
      );
      return info;
    } catch (err) {
      if (attempt >= 3) throw err;
    }
  }
}

// How long setup keeps trying while JetStream answers "not now" (a leader election in a cluster).
const SETUP_PATIENCE_MS = 30_000;

/**
 * JetStream's "not now": a request timeout or an unavailable cluster while it elects its leaders. (No
 * responders at all means no JetStream on that server: that is final, and openManager says so.)
 */
function isTransientSetupError(err: unknown): boolean {
  const text = errorText(err);
  return !text.startsWith('NATS at') && /timeout|temporarily unavailable|cluster not available|no leader/i.test(text);
}

/**
 * Connect, run `setup` (stream, consumer) — again while JetStream is not ready yet, for a while —
 * and close the connection again if setup fails.
 */
export async function connectAndSetUp<T>(
  opts: NatsOptions,
  setup: (nc: NatsConnection, o: ResolvedNatsOptions) => Promise<T>,
): Promise<T> {
  const o = resolveNatsOptions(opts);
  const nc = await connectNats(o);
  const deadline = Date.now() + SETUP_PATIENCE_MS;
  for (let attempt = 1; ; attempt++) {
    try {
      return await setup(nc, o);
    } catch (err) {
      if (isTransientSetupError(err) && Date.now() < deadline && !nc.isClosed()) {
        if (attempt === 1)
          o.logger.warn(
            { err: errorText(err) },
            `NATS JetStream not ready (${errorText(err)}); retrying setup for up to ${SETUP_PATIENCE_MS / 1000} s`,
          );
        await new Promise((r) => setTimeout(r, Math.min(2_000, 250 * attempt)));
        continue;
      }
      await nc.close().catch(() => undefined);
      throw err instanceof Error && err.message.startsWith('NATS')
        ? err
        : new Error(`NATS setup failed: ${errorText(err)}`);
    }
  }
}
