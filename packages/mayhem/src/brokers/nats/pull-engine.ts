/**
 * The pull engine: asks a JetStream pull consumer for messages, never for more than the caller can
 * hold.
 *
 * Why not the library's own: its `consume()` refills on receipt, not on processing, and its
 * `fetch()` re-asks for a full batch after a reconnect even when part of it already arrived;
 * neither bounds leases by what the caller can hold. So pull requests are issued here, with credit
 * accounting: every request asks for `batch` messages and holds that credit until the messages
 * arrive or the request ends (408 expiry, 409, silence). `pull(max)` only requests
 * `max − (buffered + outstanding credit)`, so this instance never holds more leases than the caller
 * said it can take — across reconnects too.
 *
 * Invariant: `outstanding` = Σ (batch − received) over the live requests; an ended request holds
 * no credit. Phases: running → stopping (the first aborted pull: no new requests, buffered and
 * late deliveries go back) → closed (requests unsubscribed, the waiting pull resolved empty).
 *
 * The engine drives a small port (pull-port.ts: subscribe, publish, isClosed) rather than the
 * connection itself, so its accounting is tested against an in-process stand-in for the server.
 */
import { errorText } from '../../core/errors.js';
import { ACK_SUBJECT_PREFIX } from './ack-subject.js';

import type {
  PulledMessage,
  PullPort,
  PullEngineHooks,
  PullEngineOptions,
  PullEngineStats,
  PullEnginePhase,
} from './pull-port.js';

/** How long an ended pull request still listens for deliveries that were already on their way. */
export const LATE_DELIVERY_GRACE_MS = 5_000;

/** One pull request and the credit it holds. */
interface PullRequest {
  readonly batch: number;
  received: number;
  ended: boolean;
  subscription: { unsubscribe(): void };
  /** One timer per request, re-armed for what is left of the silence window (see #noteHeard). */
  timer: NodeJS.Timeout | undefined;
  /** When the server last spoke to this request (Date.now()). */
  heardAt: number;
}

/** The caller's pull that found nothing buffered and waits. */
interface Waiter<D> {
  readonly max: number;
  resolve(deliveries: D[]): void;
  reject(err: Error): void;
}

const NOT_SUBSCRIBED = { unsubscribe(): void {} };

export class PullEngine<M extends PulledMessage, D> {
  readonly #port: PullPort<M>;
  readonly #hooks: PullEngineHooks<M, D>;
  readonly #options: PullEngineOptions;
  readonly #nextSubject: string;
  #phase: PullEnginePhase = 'running';
  #buffer: D[] = [];
  #outstanding = 0;
  readonly #requests = new Set<PullRequest>();
  #waiter: Waiter<D> | undefined;
  #feedScheduled = false;
  /** The largest `max` a caller has asked for: sizes the smallest top-up worth a request. */
  #maxSeen = 1;
  #inboxSeq = 0;
  #pullRequests = 0;
  /** No new pull request before this time (after a failed one), so errors never spin. */
  #backoffUntil = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  /** Failures since the last delivery: the backoff grows with them. */
  #failures = 0;
  /** A failure no pull was waiting for: the next pull reports it. */
  #error: Error | undefined;

  constructor(port: PullPort<M>, hooks: PullEngineHooks<M, D>, options: PullEngineOptions) {
    this.#port = port;
    this.#hooks = hooks;
    this.#options = options;
    this.#nextSubject = `$JS.API.CONSUMER.MSG.NEXT.${options.stream}.${options.consumer}`;
  }

  get phase(): PullEnginePhase {
    return this.#phase;
  }

  stats(): PullEngineStats {
    return {
      buffered: this.#buffer.length,
      outstanding: this.#outstanding,
      requests: this.#requests.size,
      pullRequests: this.#pullRequests,
    };
  }

  /**
   * Up to `max` deliveries: what is buffered at once (asking ahead for the rest of `max`), else the
   * next that arrive. An aborted `signal` means shutdown: `[]`, and the engine stops.
   */
  pull(max: number, signal: AbortSignal): Promise<D[]> {
    if (!(max >= 1)) return Promise.reject(new RangeError(`pull(max): max must be at least 1, got ${max}`));
    if (this.#phase === 'closed') return Promise.resolve([]);
    if (signal.aborted) {
      this.stop();
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
    return new Promise<D[]>((resolve, reject) => {
      const onAbort = (): void => {
        if (this.#waiter === waiter) this.#waiter = undefined;
        this.stop();
        resolve([]);
      };
      const waiter: Waiter<D> = {
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

  /** Shutdown begins: no new requests; leases held but never handed out go back for another instance. */
  stop(): void {
    if (this.#phase !== 'running') return;
    this.#phase = 'stopping';
    this.#hooks.onStopping();
    for (const d of this.#take(Number.POSITIVE_INFINITY)) this.#hooks.giveBack(d);
  }

  /** Stop, end every request (unsubscribed at once) and resolve a waiting pull with nothing. */
  close(): void {
    if (this.#phase === 'closed') return;
    this.stop();
    this.#phase = 'closed';
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    for (const req of [...this.#requests]) this.#endRequest(req);
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.resolve([]);
  }

  /**
   * The connection came back. Requests the old server held may be gone: give each a fresh
   * liveness window, after which a silent one is replaced.
   */
  reconnected(): void {
    for (const req of this.#requests) this.#noteHeard(req);
    this.#kick();
  }

  /** Take up to `max` buffered deliveries. */
  #take(max: number): D[] {
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
    if (this.#phase !== 'running' || this.#port.isClosed()) return;
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
      const batch = Math.min(want, this.#options.maxPullBatch);
      this.#request(batch);
      want -= batch;
    }
  }

  /** A request ended or the connection came back: a waiting pull may need new requests. */
  #kick(): void {
    const waiter = this.#waiter;
    if (waiter && this.#buffer.length === 0) this.#topUp(waiter.max);
  }

  #request(batch: number): void {
    const inbox = `${this.#options.inboxPrefix}.${++this.#inboxSeq}`;
    const req: PullRequest = {
      batch,
      received: 0,
      ended: false,
      subscription: NOT_SUBSCRIBED,
      timer: undefined,
      heardAt: 0,
    };
    req.subscription = this.#port.subscribe(inbox, (err, msg) => this.#onMessage(req, err, msg));
    this.#requests.add(req);
    this.#outstanding += batch;
    this.#pullRequests += 1;
    this.#noteHeard(req);
    const body = JSON.stringify({
      batch,
      expires: this.#options.pullExpiresMs * 1_000_000,
      idle_heartbeat: this.#heartbeatMs() * 1_000_000,
    });
    try {
      this.#port.publish(this.#nextSubject, body, inbox);
    } catch (err) {
      this.#endRequest(req);
      this.#fail(new Error(`NATS pull request failed: ${errorText(err)}`));
    }
  }

  #heartbeatMs(): number {
    return Math.max(500, Math.min(5_000, Math.floor(this.#options.pullExpiresMs / 4)));
  }

  /**
   * Liveness. A pull request is live while the server talks to it: messages, idle heartbeats when
   * there is nothing to deliver, and a 408 when it expires. Silence for longer than its expiry (a
   * restarted server, a new consumer leader) ends it, which releases its credit for a fresh request.
   */
  #noteHeard(req: PullRequest): void {
    // Only the time is noted: re-creating the timer for every delivery costs more than the rest
    // of receiving it. The one timer re-arms itself for whatever silence window is left.
    req.heardAt = Date.now();
    req.timer ??= setTimeout(() => this.#checkLiveness(req), this.#silenceMs());
  }

  #silenceMs(): number {
    return Math.max(this.#options.pullExpiresMs, this.#heartbeatMs() * 2) + 2_000;
  }

  #checkLiveness(req: PullRequest): void {
    req.timer = undefined;
    if (req.ended) return;
    const left = req.heardAt + this.#silenceMs() - Date.now();
    if (left > 0) {
      req.timer = setTimeout(() => this.#checkLiveness(req), left);
      return;
    }
    this.#options.logger.debug(
      { batch: req.batch, received: req.received },
      'NATS pull request went silent; re-issuing',
    );
    this.#endRequest(req);
    this.#kick();
  }

  #onMessage(req: PullRequest, err: Error | null, msg: M): void {
    if (req.ended) {
      // A delivery for a request we already gave up on (its credit is spent elsewhere, e.g. after
      // a stalled event loop let the liveness timer win): hand it straight back instead of letting
      // it sit leased until the ack wait runs out.
      if (!err && msg.reply?.startsWith(ACK_SUBJECT_PREFIX)) this.#hooks.giveBack(this.#hooks.toDelivery(msg));
      return;
    }
    if (err) {
      this.#endRequest(req);
      this.#fail(new Error(`NATS pull subscription failed: ${errorText(err)}`));
      return;
    }
    if (msg.reply?.startsWith(ACK_SUBJECT_PREFIX)) {
      this.#onDelivery(req, msg);
      return;
    }
    this.#onStatus(req, msg.headers?.code ?? 0, msg.headers?.description ?? '');
  }

  #onDelivery(req: PullRequest, msg: M): void {
    req.received += 1;
    this.#outstanding -= 1;
    this.#failures = 0;
    const delivery = this.#hooks.toDelivery(msg);
    if (req.received >= req.batch) this.#endRequest(req);
    else this.#noteHeard(req);
    if (this.#phase !== 'running') {
      // Arrived after shutdown began: give it straight back.
      this.#hooks.giveBack(delivery);
      return;
    }
    this.#buffer.push(delivery);
    this.#scheduleFeed();
  }

  /** A status message for this request. */
  #onStatus(req: PullRequest, code: number, description: string): void {
    if (code === 100) {
      this.#noteHeard(req); // idle heartbeat
      return;
    }
    this.#endRequest(req);
    if (code === 408 || code === 404) {
      // Expired (or nothing to give): normal; ask again if someone is waiting.
      this.#kick();
      return;
    }
    if (code === 409 && /consumer deleted/i.test(description)) {
      this.#fail(new Error(`NATS consumer ${this.#options.consumer} was deleted (${code} ${description})`));
      this.#hooks.onConsumerDeleted();
      return;
    }
    if (code === 409) {
      // Leadership change, max waiting exceeded, ...: transient; back off a little and ask again.
      this.#options.logger.debug({ code, description }, 'NATS pull request ended');
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
      const waiter = this.#waiter;
      if (!waiter || this.#buffer.length === 0) return;
      this.#waiter = undefined;
      waiter.resolve(this.#take(waiter.max));
    });
  }

  /** End a request: its unanswered credit is released. */
  #endRequest(req: PullRequest): void {
    if (req.ended) return;
    req.ended = true;
    if (req.timer) clearTimeout(req.timer);
    this.#requests.delete(req);
    this.#outstanding -= req.batch - req.received;
    if (this.#phase === 'closed') {
      req.subscription.unsubscribe();
      return;
    }
    // Listen a little longer: deliveries already on their way are given back at once (#onMessage).
    const subscription = req.subscription;
    setTimeout(() => subscription.unsubscribe(), LATE_DELIVERY_GRACE_MS).unref();
  }

  /** 100 ms after the first failure, doubling, at most 2 s. */
  #backOff(): void {
    this.#failures += 1;
    this.#backoffUntil = Date.now() + Math.min(2_000, 50 * 2 ** Math.min(this.#failures, 6));
  }

  /** Report a failure to the waiting pull (or the next one), and back off. */
  #fail(err: Error): void {
    this.#backOff();
    const waiter = this.#waiter;
    if (waiter && this.#buffer.length === 0) {
      this.#waiter = undefined;
      waiter.reject(err);
    } else {
      this.#error = err;
    }
  }
}
