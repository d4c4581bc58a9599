/**
 * NATS JetStream broker: a durable pull consumer shared by every instance (each message goes to
 * one of them), and a publisher with de-duplication by messageId.
 *
 * Pull engine. The library's `consume()` refills on receipt, not on processing, and its `fetch()`
 * re-asks for a full batch after a reconnect even when part of it already arrived; neither bounds
 * leases by what the caller can hold. So pulls are issued here, on the client's own connection,
 * with credit accounting: every pull request asks for `batch` messages and holds that credit until
 * the messages arrive or the request ends (408 expiry, 409, timeout). `pull(max)` only requests
 * `max − (buffered + outstanding credit)`, so this instance never holds more leases than the
 * caller said it can take — across reconnects too.
 *
 * Settling. Mapping: extend → `+WPI` (JsMsg.working(), resets to the full ack wait), ack → `+ACK`,
 * nack → `-NAK {"delay":ns}`, dead-letter → publish to the dead-letter subject, then a bare
 * `+TERM` (2.9 ignores `+TERM reason`). While connected and running, settles are fire-and-forget
 * (plain ack(): no round trip; a lost ack only means a redelivery, which the storage's restart-done
 * record turns into a skip, never a second restart). They are confirmed (ackAck: request/reply,
 * retried) when it matters that the server took them: while the connection is down (the reply
 * proves the ack reached a server after the reconnect) and once shutdown has begun (the first
 * aborted pull), so the process never exits on an ack that is still in a socket buffer.
 */
import { createInbox, headers, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { jetstream, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import type { Broker, Delivery } from '../../core/contracts.js';
import { errorText } from '../../core/errors.js';
import { drainOrClose } from './connection.js';
import type { NatsOptions, ResolvedNatsOptions } from './options.js';
import { connectAndSetUp, ensureConsumer, ensureStreams, openManager } from './setup.js';
import { ACK_SUBJECT_PREFIX, parseAckSubject, type AckInfo } from './ack-subject.js';

const encoder = new TextEncoder();
const ACK = encoder.encode('+ACK');
const WPI = encoder.encode('+WPI');
const TERM = encoder.encode('+TERM');
const NAK = encoder.encode('-NAK');
/** Counts for a delivery whose ack subject we cannot read: a first delivery of no known sequence. */
const UNREADABLE_ACK_SUBJECT: AckInfo = { deliveryCount: 1, streamSequence: 0 };
/** How long an ended pull request still listens for deliveries that were already on their way. */
const LATE_DELIVERY_GRACE_MS = 5_000;

function nakPayload(delayMs: number): Uint8Array {
  if (!(delayMs > 0)) return NAK;
  return encoder.encode(`-NAK {"delay":${Math.round(delayMs) * 1_000_000}}`);
}

/** Header values may not hold CR/LF; keep them short. */
function headerValue(text: string): string {
  const oneLine = text.replace(/[\r\n]+/g, ' ');
  return oneLine.length > 512 ? `${oneLine.slice(0, 511)}…` : oneLine;
}

/** One outstanding pull request and the credit it holds. */
interface PullRequest {
  readonly batch: number;
  received: number;
  done: boolean;
  sub: Subscription;
  timer: NodeJS.Timeout | undefined;
  /** When the server last spoke to this request (Date.now()). */
  heardAt: number;
}

interface Waiter {
  readonly max: number;
  resolve(deliveries: Delivery[]): void;
  reject(err: Error): void;
}

export interface NatsBrokerStats {
  /** Deliveries received and not yet handed to the caller. */
  readonly buffered: number;
  /** Messages requested by live pull requests and not yet received. */
  readonly outstanding: number;
  /** Live pull requests. */
  readonly requests: number;
  /** Pull requests issued since start. */
  readonly pullRequests: number;
  /** Settles sent with confirmation (ackAck), and how many of those needed a retry. */
  readonly confirmedSettles: number;
  readonly settleRetries: number;
}

class NatsDelivery implements Delivery {
  readonly data: Uint8Array;
  readonly deliveryCount: number;
  readonly streamSequence: number;
  readonly #msg: Msg;
  readonly reply: string;
  /** Set once a final settle (ack, nack, term) has been taken; later ones are no-ops. */
  settled = false;
  readonly #broker: NatsBroker;

  constructor(broker: NatsBroker, msg: Msg) {
    this.#broker = broker;
    this.data = msg.data;
    this.#msg = msg;
    this.reply = msg.reply ?? '';
    // Unreadable only if a future server changes the shape: still a lease that the reply settles.
    const info = parseAckSubject(this.reply) ?? UNREADABLE_ACK_SUBJECT;
    this.deliveryCount = info.deliveryCount;
    this.streamSequence = info.streamSequence;
  }

  /** Decoded on demand: only dead-lettering needs it. */
  get subject(): string {
    return this.#msg.subject;
  }

  extend(): Promise<void> {
    return this.#broker.progress(this);
  }

  ack(): Promise<void> {
    return this.#broker.settle(this, ACK);
  }

  nack(delayMs: number): Promise<void> {
    return this.#broker.settle(this, nakPayload(delayMs));
  }

  deadLetter(reason: string): Promise<void> {
    return this.#broker.deadLetter(this, reason);
  }
}

export class NatsBroker implements Broker {
  readonly ackDeadlineMs: number;
  readonly #nc: NatsConnection;
  readonly #js: JetStreamClient;
  readonly #o: ResolvedNatsOptions;
  readonly #log: Logger;
  readonly #nextSubject: string;
  readonly #inboxPrefix = createInbox();
  #buffer: NatsDelivery[] = [];
  #outstanding = 0;
  readonly #requests = new Set<PullRequest>();
  #waiter: Waiter | undefined;
  #feedScheduled = false;
  #maxSeen = 1;
  #seq = 0;
  #connected = true;
  /** Shutdown has begun (a pull was aborted, or close()): settle with confirmation. */
  #stopping = false;
  #closed = false;
  /** No new pull request before this time (after a failed one), so errors never spin. */
  #backoffUntil = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  #failures = 0;
  #error: Error | undefined;
  readonly #pendingSettles = new Set<Promise<unknown>>();
  #pullRequests = 0;
  #confirmedSettles = 0;
  #settleRetries = 0;
  #jsm: Promise<JetStreamManager> | undefined;

  constructor(nc: NatsConnection, o: ResolvedNatsOptions, ackWaitMs: number) {
    this.#nc = nc;
    this.#o = o;
    this.#log = o.logger;
    this.#js = jetstream(nc, { timeout: o.requestTimeoutMs });
    this.ackDeadlineMs = ackWaitMs;
    this.#nextSubject = `$JS.API.CONSUMER.MSG.NEXT.${o.stream}.${o.durable}`;
    void this.#watchStatus();
  }

  stats(): NatsBrokerStats {
    return {
      buffered: this.#buffer.length,
      outstanding: this.#outstanding,
      requests: this.#requests.size,
      pullRequests: this.#pullRequests,
      confirmedSettles: this.#confirmedSettles,
      settleRetries: this.#settleRetries,
    };
  }

  pull(max: number, signal: AbortSignal): Promise<Delivery[]> {
    if (!(max >= 1)) return Promise.reject(new RangeError(`pull(max): max must be at least 1, got ${max}`));
    if (this.#closed) return Promise.resolve([]);
    if (signal.aborted) {
      this.#beginStopping();
      return Promise.resolve([]);
    }
    if (this.#waiter) return Promise.reject(new Error('NATS broker: pull() called while another pull is waiting'));
    this.#maxSeen = Math.max(this.#maxSeen, Math.floor(max));
    const taken = this.#take(max);
    if (taken.length > 0) {
      // Ask ahead for what the caller can still take, so the next pull finds messages waiting.
      this.#topUp(max - taken.length);
      return Promise.resolve(taken);
    }
    const error = this.#error;
    if (error) {
      this.#error = undefined;
      return Promise.reject(error);
    }
    return new Promise<Delivery[]>((resolve, reject) => {
      const onAbort = (): void => {
        if (this.#waiter === waiter) this.#waiter = undefined;
        this.#beginStopping();
        resolve([]);
      };
      const waiter: Waiter = {
        max,
        resolve: (deliveries) => {
          signal.removeEventListener('abort', onAbort);
          resolve(deliveries);
        },
        reject: (err) => {
          signal.removeEventListener('abort', onAbort);
          reject(err);
        },
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.#waiter = waiter;
      this.#topUp(max);
    });
  }

  /** Take up to `max` buffered deliveries. */
  #take(max: number): NatsDelivery[] {
    if (this.#buffer.length === 0) return [];
    if (this.#buffer.length <= max) {
      const all = this.#buffer;
      this.#buffer = [];
      return all;
    }
    return this.#buffer.splice(0, max);
  }

  /**
   * Issue pull requests so that buffered + outstanding reaches `room` (what the caller can still
   * take). Small top-ups wait while enough is already on its way, so a busy pipeline sends a few
   * large requests rather than many tiny ones.
   */
  #topUp(room: number): void {
    if (this.#closed || this.#stopping || this.#nc.isClosed()) return;
    const pending = this.#buffer.length + this.#outstanding;
    let want = Math.floor(room) - pending;
    if (want <= 0) return;
    const threshold = Math.max(1, Math.floor(this.#maxSeen / 4));
    if (want < threshold && pending > 0) return;
    const now = Date.now();
    if (now < this.#backoffUntil) {
      this.#retryTimer ??= setTimeout(() => {
        this.#retryTimer = undefined;
        this.#kick();
      }, this.#backoffUntil - now);
      return;
    }
    while (want > 0) {
      const batch = Math.min(want, this.#o.maxPullBatch);
      this.#request(batch);
      want -= batch;
    }
  }

  /** A request ended or the connection came back: a waiting pull may need new requests. */
  #kick(): void {
    const w = this.#waiter;
    if (w && this.#buffer.length === 0) this.#topUp(w.max);
  }

  #request(batch: number): void {
    const inbox = `${this.#inboxPrefix}.${++this.#seq}`;
    const req: PullRequest = { batch, received: 0, done: false, sub: undefined as unknown as Subscription, timer: undefined, heardAt: 0 };
    req.sub = this.#nc.subscribe(inbox, { callback: (err, msg) => this.#onPullMessage(req, err, msg) });
    this.#requests.add(req);
    this.#outstanding += batch;
    this.#pullRequests += 1;
    this.#armLiveness(req);
    const heartbeatMs = this.#heartbeatMs();
    const body = JSON.stringify({ batch, expires: this.#o.pullExpiresMs * 1_000_000, idle_heartbeat: heartbeatMs * 1_000_000 });
    try {
      this.#nc.publish(this.#nextSubject, body, { reply: inbox });
    } catch (err) {
      this.#endRequest(req);
      this.#fail(new Error(`NATS pull request failed: ${errorText(err)}`));
    }
  }

  #heartbeatMs(): number {
    return Math.max(500, Math.min(5_000, Math.floor(this.#o.pullExpiresMs / 4)));
  }

  /**
   * A pull request is live while the server talks to it: messages, idle heartbeats when there is
   * nothing to deliver, and a 408 when it expires. Silence for longer than its expiry (a restarted
   * server, a new consumer leader) ends it, which releases its credit for a fresh request.
   */
  #armLiveness(req: PullRequest): void {
    // Only the time is noted: re-creating the timer for every delivery costs more than the rest
    // of receiving it. The one timer re-arms itself for whatever silence window is left.
    req.heardAt = Date.now();
    req.timer ??= setTimeout(() => this.#checkLiveness(req), this.#silenceMs());
  }

  #silenceMs(): number {
    return Math.max(this.#o.pullExpiresMs, this.#heartbeatMs() * 2) + 2_000;
  }

  #checkLiveness(req: PullRequest): void {
    req.timer = undefined;
    if (req.done) return;
    const left = req.heardAt + this.#silenceMs() - Date.now();
    if (left > 0) {
      req.timer = setTimeout(() => this.#checkLiveness(req), left);
      return;
    }
    this.#log.debug({ batch: req.batch, received: req.received }, 'NATS pull request went silent; re-issuing');
    this.#endRequest(req);
    this.#kick();
  }

  #onPullMessage(req: PullRequest, err: Error | null, msg: Msg): void {
    if (req.done) {
      // A delivery for a request we already gave up on (its credit is spent elsewhere, e.g. after
      // a stalled event loop let the liveness timer win): hand it straight back instead of letting
      // it sit leased until the ack wait runs out.
      if (!err && msg.reply?.startsWith(ACK_SUBJECT_PREFIX)) this.#track(this.settle(new NatsDelivery(this, msg), NAK));
      return;
    }
    if (err) {
      this.#endRequest(req);
      this.#fail(new Error(`NATS pull subscription failed: ${errorText(err)}`));
      return;
    }
    if (msg.reply?.startsWith(ACK_SUBJECT_PREFIX)) {
      req.received += 1;
      this.#outstanding -= 1;
      this.#failures = 0;
      const delivery = new NatsDelivery(this, msg);
      if (req.received >= req.batch) this.#endRequest(req);
      else this.#armLiveness(req);
      if (this.#stopping) {
        // Arrived after shutdown began: give it straight back.
        this.#track(this.settle(delivery, NAK));
        return;
      }
      this.#buffer.push(delivery);
      this.#scheduleFeed();
      return;
    }
    // A status message for this request.
    const code = msg.headers?.code ?? 0;
    const description = msg.headers?.description ?? '';
    if (code === 100) {
      this.#armLiveness(req); // idle heartbeat
      return;
    }
    this.#endRequest(req);
    if (code === 408 || code === 404) {
      // Expired (or nothing to give): normal; ask again if someone is waiting.
      this.#kick();
      return;
    }
    if (code === 409 && /consumer deleted/i.test(description)) {
      this.#fail(new Error(`NATS consumer ${this.#o.durable} was deleted (${code} ${description})`));
      void this.#recreateConsumer();
      return;
    }
    if (code === 409) {
      // Leadership change, max waiting exceeded, ...: transient; back off a little and ask again.
      this.#log.debug({ code, description }, 'NATS pull request ended');
      this.#backOff();
      this.#kick();
      return;
    }
    if (code === 503) {
      this.#fail(new Error('NATS JetStream is not available (503 no responders); retrying'));
      return;
    }
    this.#fail(new Error(`NATS pull request ended with ${code} ${description}`));
  }

  /** Resolve a waiting pull after the current burst of messages has been read. */
  #scheduleFeed(): void {
    if (this.#feedScheduled || !this.#waiter) return;
    this.#feedScheduled = true;
    queueMicrotask(() => {
      this.#feedScheduled = false;
      const w = this.#waiter;
      if (!w || this.#buffer.length === 0) return;
      this.#waiter = undefined;
      w.resolve(this.#take(w.max));
    });
  }

  #endRequest(req: PullRequest): void {
    if (req.done) return;
    req.done = true;
    if (req.timer) clearTimeout(req.timer);
    this.#requests.delete(req);
    this.#outstanding -= req.batch - req.received;
    if (this.#closed) {
      req.sub.unsubscribe();
      return;
    }
    // Listen a little longer: deliveries already on their way are given back at once (see above).
    const sub = req.sub;
    setTimeout(() => sub.unsubscribe(), LATE_DELIVERY_GRACE_MS).unref();
  }

  #backOff(): void {
    this.#failures += 1;
    this.#backoffUntil = Date.now() + Math.min(2_000, 50 * 2 ** Math.min(this.#failures, 6));
  }

  /** Report a broker failure to the waiting pull (or the next one), and back off. */
  #fail(err: Error): void {
    this.#backOff();
    const w = this.#waiter;
    if (w && this.#buffer.length === 0) {
      this.#waiter = undefined;
      w.reject(err);
    } else {
      this.#error = err;
    }
  }

  async #recreateConsumer(): Promise<void> {
    try {
      const jsm: JetStreamManager = await openManager(this.#nc, this.#o);
      await ensureConsumer(jsm, this.#o);
    } catch (err) {
      this.#log.error({ err: errorText(err) }, 'Could not recreate the NATS consumer');
    }
  }

  async #watchStatus(): Promise<void> {
    for await (const s of this.#nc.status()) {
      switch (s.type) {
        case 'disconnect':
          this.#connected = false;
          if (!this.#closed) this.#log.warn({ server: s.server }, 'NATS disconnected; reconnecting (in-flight acks are held and confirmed after the reconnect)');
          break;
        case 'reconnect':
          this.#connected = true;
          this.#log.info({ server: s.server }, 'NATS reconnected');
          // Requests the old server held may be gone: give each a fresh liveness window, after
          // which a silent one is replaced.
          for (const req of this.#requests) this.#armLiveness(req);
          this.#kick();
          break;
        case 'error':
          this.#log.warn({ err: errorText(s.error) }, 'NATS connection error');
          break;
        default:
          break;
      }
    }
  }

  #beginStopping(): void {
    if (this.#stopping) return;
    this.#stopping = true;
    // Leases we hold but never handed out go straight back for another instance.
    const buffered = this.#take(Number.POSITIVE_INFINITY);
    for (const d of buffered) this.#track(this.settle(d, NAK));
  }

  #track(p: Promise<unknown>): void {
    const tracked = p.catch((err: unknown) => this.#log.warn({ err: errorText(err) }, 'NATS settle failed; the lease will expire and the message will be redelivered'));
    this.#pendingSettles.add(tracked);
    void tracked.finally(() => this.#pendingSettles.delete(tracked));
  }

  /** Work in progress: reset the ack timer to the full ack wait. */
  progress(d: NatsDelivery): Promise<void> {
    if (d.settled) return Promise.resolve();
    try {
      this.#nc.publish(d.reply, WPI);
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(new Error(`NATS extend failed: ${errorText(err)}`));
    }
  }

  /** Send a final settle (ack, nack, term) for a delivery: fire-and-forget or confirmed. */
  settle(d: NatsDelivery, payload: Uint8Array): Promise<void> {
    if (d.settled) return Promise.resolve();
    if (this.#connected && !this.#stopping && !this.#closed) {
      try {
        this.#nc.publish(d.reply, payload);
        d.settled = true;
        return Promise.resolve();
      } catch (err) {
        return Promise.reject(new Error(`NATS settle failed: ${errorText(err)}`));
      }
    }
    const confirmed = this.#confirm(d, payload);
    if (this.#closed) return confirmed;
    this.#track(confirmed);
    return confirmed;
  }

  /** ackAck: request/reply on the ack subject, retried; the server answers once it processed it. */
  async #confirm(d: NatsDelivery, payload: Uint8Array): Promise<void> {
    this.#confirmedSettles += 1;
    const attempts = 4;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#nc.request(d.reply, payload, { timeout: this.#o.requestTimeoutMs });
        d.settled = true;
        return;
      } catch (err) {
        if (attempt >= attempts || this.#nc.isClosed()) {
          throw new Error(`NATS did not confirm the settle of message #${d.streamSequence} after ${attempt} attempts: ${errorText(err)}`);
        }
        this.#settleRetries += 1;
        await new Promise((r) => setTimeout(r, 100 * attempt));
      }
    }
  }

  /**
   * Park a message on the dead-letter subject (kept by the dead-letter stream), then terminate it
   * so it is never redelivered. The dead-letter publish is confirmed and de-duplicated by stream
   * sequence, so a retried dead-letter lands once.
   */
  async deadLetter(d: NatsDelivery, reason: string): Promise<void> {
    if (d.settled) return;
    const h = headers();
    h.set('Mayhem-Reason', headerValue(reason));
    h.set('Mayhem-Original-Subject', d.subject);
    h.set('Mayhem-Original-Stream', this.#o.stream);
    h.set('Mayhem-Original-Sequence', String(d.streamSequence));
    h.set('Mayhem-Deliveries', String(d.deliveryCount));
    await this.#js.publish(this.#o.deadLetterSubject, d.data, {
      headers: h,
      msgID: `${this.#o.stream}-${d.streamSequence}-dead`,
      timeout: this.#o.requestTimeoutMs,
    });
    await this.settle(d, TERM);
  }

  /** Messages of the stream the shared durable consumer has not delivered yet (fleet-wide): the backlog gauge. */
  async backlog(): Promise<number> {
    this.#jsm ??= openManager(this.#nc, this.#o);
    const jsm = await this.#jsm.catch((err: unknown) => {
      this.#jsm = undefined;
      throw err;
    });
    return (await jsm.consumers.info(this.#o.stream, this.#o.durable)).num_pending;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#beginStopping();
    this.#closed = true;
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    for (const req of [...this.#requests]) this.#endRequest(req);
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.resolve([]);
    await Promise.allSettled([...this.#pendingSettles]);
    try {
      // Everything sent fire-and-forget reaches the server before the connection goes.
      await this.#nc.flush();
    } catch {
      // The connection is gone; unsettled leases expire and are redelivered.
    }
    await drainOrClose(this.#nc);
  }
}

/** Connect, create stream / dead-letter stream / durable consumer if missing, and return the broker. */
export function openNatsBroker(opts: NatsOptions): Promise<NatsBroker> {
  return connectAndSetUp(opts, async (nc, o) => {
    const jsm = await openManager(nc, o);
    await ensureStreams(jsm, o);
    const info = await ensureConsumer(jsm, o);
    const ackWaitMs = Math.round((info.config.ack_wait ?? o.ackWaitMs * 1_000_000) / 1_000_000);
    return new NatsBroker(nc, o, ackWaitMs);
  });
}

