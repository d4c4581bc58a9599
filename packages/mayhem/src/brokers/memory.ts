/**
 * The embedded broker: an in-memory pull queue with real lease semantics. A lease that expires
 * redelivers; a nack redelivers after its delay; delivery counts grow; dead letters are kept.
 * Not durable: what is in it when the process exits is gone (the distributed broker's job).
 * Bounded when `maxBacklog` is given: it holds at most that many messages (ready, leased or
 * waiting out a nack delay); publishing waits for room (`publish`, `waitForRoom`), so a publisher
 * faster than the consumer cannot grow memory without limit. Redeliveries never wait: they are
 * already counted.
 */
import type { Broker, Delivery, LocalPublisher, Publisher } from '../core/contracts.js';
import { DeadlineQueue } from '../core/deadline-queue.js';
import { DONE } from '../core/settled.js';

/** @internal A message as the memory broker holds it. */
export interface Entry {
  readonly seq: number;
  readonly data: Uint8Array;
  readonly messageId: string | undefined;
  deliveryCount: number;
  /** Changes with every lease, so a stale handle (expired lease) cannot settle a redelivery. */
  lease: number;
}

export interface DeadLetterEntry {
  readonly data: Uint8Array;
  readonly reason: string;
  readonly deliveries: number;
}

export interface MemoryBrokerStats {
  published: number;
  acked: number;
  nacked: number;
  expired: number;
  deadLettered: number;
  /** Ready to be pulled. */
  ready: number;
  /** Leased to a consumer, not yet settled. */
  leased: number;
  /** Nacked, waiting out their delay. */
  delayed: number;
}

export interface MemoryBrokerOptions {
  readonly ackDeadlineMs: number;
  /** Messages held at most (published, not yet acked or dead-lettered). Default: no bound. */
  readonly maxBacklog?: number | undefined;
  /** Clock, for tests. */
  readonly now?: () => number;
}

/** Dead letters the broker keeps for inspection, newest first kept (older ones are dropped). */
export const DEAD_LETTERS_KEPT = 10_000;

export class MemoryBroker implements Broker, Publisher, LocalPublisher {
  readonly ackDeadlineMs: number;
  /** The newest {@link DEAD_LETTERS_KEPT} dead letters (stats().deadLettered counts them all). */
  readonly deadLetters: DeadLetterEntry[] = [];
  // Ready queue as an array with a moving head: O(1) push and shift without copying.
  #ready: Entry[] = [];
  #head = 0;
  // Every lease lasts ackDeadlineMs from its start or last extension: one timer for all of them.
  // Keyed by entry: an entry has at most one lease at a time, and `entry.lease` tells whose it is.
  readonly #leases: DeadlineQueue<Entry>;
  // Nacked entries waiting out their delay, by their timer (close() hands them back to the ready queue).
  readonly #delayed = new Map<ReturnType<typeof setTimeout>, Entry>();
  #waiter: (() => void) | undefined;
  #seq = 0;
  #closed = false;
  readonly #stats = { published: 0, acked: 0, nacked: 0, expired: 0, deadLettered: 0 };
  readonly maxBacklog: number;
  // Publishers waiting for room are woken together once the backlog is down to this (not at every
  // settle: one wake-up per tenth of the bound, not one per message).
  readonly #lowWater: number;
  #roomWaiters: (() => void)[] = [];

  constructor(options: MemoryBrokerOptions) {
    this.ackDeadlineMs = options.ackDeadlineMs;
    this.maxBacklog = options.maxBacklog ?? Infinity;
    if (!(this.maxBacklog >= 1)) throw new RangeError(`maxBacklog must be at least 1, got ${this.maxBacklog}`);
    this.#lowWater = Number.isFinite(this.maxBacklog)
      ? this.maxBacklog - Math.max(1, Math.floor(this.maxBacklog / 10))
      : Infinity;
    this.#leases = new DeadlineQueue(options.ackDeadlineMs, (entry: Entry) => this.#expire(entry), {
      now: options.now,
    });
  }

  /** It lives in this process: the service's simulated publisher feeds it. */
  localPublisher(): LocalPublisher {
    return this;
  }

  stats(): MemoryBrokerStats {
    return {
      ...this.#stats,
      ready: this.#ready.length - this.#head,
      leased: this.#leases.size,
      delayed: this.#delayed.size,
    };
  }

  /** Messages held now: published and not yet acked or dead-lettered. */
  get backlog(): number {
    return this.#stats.published - this.#stats.acked - this.#stats.deadLettered;
  }

  /** Publish, waiting first while the backlog is full. */
  async publish(payload: string, messageId?: string): Promise<void> {
    let wait = this.waitForRoom();
    while (wait !== undefined) {
      await wait;
      wait = this.waitForRoom();
    }
    this.publishSync(payload, messageId);
  }

  /**
   * Undefined while there is room for one more message; otherwise a promise that resolves once
   * the backlog has gone down (or the broker closed, or `signal` aborted). Ask again after it.
   */
  waitForRoom(signal?: AbortSignal): Promise<void> | undefined {
    if (this.#closed || this.backlog < this.maxBacklog || signal?.aborted === true) return undefined;
    return new Promise((resolve) => {
      const done = (): void => {
        signal?.removeEventListener('abort', done);
        resolve();
      };
      this.#roomWaiters.push(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  /**
   * Publish without a promise (the simulated publisher's hot path). Throws when the backlog is
   * full: the caller waits for room first (`waitForRoom`).
   */
  publishSync(payload: string | Uint8Array, messageId?: string): void {
    if (this.#closed) throw new Error('memory broker is closed');
    if (this.backlog >= this.maxBacklog)
      throw new Error(`memory broker backlog is full (${this.maxBacklog} messages): wait for room before publishing`);
    // Buffer.from takes small payloads from Node's shared pool: no ArrayBuffer per message.
    const data = typeof payload === 'string' ? Buffer.from(payload) : payload;
    this.#stats.published += 1;
    this.#enqueue({ seq: ++this.#seq, data, messageId, deliveryCount: 0, lease: 0 });
  }

  pull(max: number, signal: AbortSignal): Promise<Delivery[]> {
    if (this.#closed || signal.aborted) return Promise.resolve([]);
    if (this.#ready.length > this.#head) return Promise.resolve(this.#lease(max));
    if (this.#waiter) return Promise.reject(new Error('memory broker supports one puller at a time'));
    return new Promise((resolve) => {
      const wake = (): void => {
        this.#waiter = undefined;
        signal.removeEventListener('abort', wake);
        resolve(this.#closed || signal.aborted ? [] : this.#lease(max));
      };
      this.#waiter = wake;
      signal.addEventListener('abort', wake, { once: true });
    });
  }

  close(): Promise<void> {
    this.#closed = true;
    // Nacked messages still waiting out their delay stay countable, like those nacked after close.
    for (const [t, entry] of this.#delayed) {
      clearTimeout(t);
      this.#ready.push(entry);
    }
    this.#delayed.clear();
    // Leased messages stay counted (stats().leased) for the shutdown summary; they just never expire now.
    this.#waiter?.();
    this.#wakePublishers();
    return DONE;
  }

  #enqueue(entry: Entry): void {
    this.#ready.push(entry);
    this.#waiter?.();
  }

  #lease(max: number): Delivery[] {
    const out: Delivery[] = [];
    while (out.length < max && this.#head < this.#ready.length) {
      const entry = this.#ready[this.#head] as Entry;
      this.#ready[this.#head++] = undefined as unknown as Entry;
      entry.deliveryCount += 1;
      entry.lease = ++this.#seq;
      this.#leases.add(entry);
      out.push(new MemoryDelivery(this, entry, entry.lease));
    }
    if (this.#head > 1024 && this.#head * 2 > this.#ready.length) {
      this.#ready = this.#ready.slice(this.#head);
      this.#head = 0;
    }
    return out;
  }

  /** Ends a lease if it is still current; false for a stale handle (expired and redelivered). */
  take(entry: Entry, lease: number): boolean {
    if (entry.lease !== lease || !this.#leases.delete(entry)) return false;
    entry.lease = 0;
    return true;
  }

  extendLease(entry: Entry, lease: number): void {
    if (entry.lease === lease && this.#leases.has(entry)) this.#leases.add(entry);
  }

  acked(): void {
    this.#stats.acked += 1;
    if (this.#roomWaiters.length > 0 && this.backlog <= this.#lowWater) this.#wakePublishers();
  }

  #wakePublishers(): void {
    const waiters = this.#roomWaiters;
    this.#roomWaiters = [];
    for (const wake of waiters) wake();
  }

  nacked(entry: Entry, delayMs: number): void {
    this.#stats.nacked += 1;
    if (delayMs <= 0 || this.#closed) {
      this.#requeue(entry);
      return;
    }
    const t = setTimeout(() => {
      this.#delayed.delete(t);
      this.#requeue(entry);
    }, delayMs);
    this.#delayed.set(t, entry);
  }

  deadLettered(entry: Entry, reason: string): void {
    this.#stats.deadLettered += 1;
    this.deadLetters.push({ data: entry.data, reason, deliveries: entry.deliveryCount });
    if (this.deadLetters.length > DEAD_LETTERS_KEPT * 2)
      this.deadLetters.splice(0, this.deadLetters.length - DEAD_LETTERS_KEPT);
    if (this.#roomWaiters.length > 0 && this.backlog <= this.#lowWater) this.#wakePublishers();
  }

  #requeue(entry: Entry): void {
    if (this.#closed) {
      // Kept countable after close: the shutdown summary reports what was handed back.
      this.#ready.push(entry);
      return;
    }
    this.#enqueue(entry);
  }

  #expire(entry: Entry): void {
    entry.lease = 0;
    this.#stats.expired += 1;
    this.#requeue(entry);
  }
}

/** A lease on one message. A class, not closures: 100k in flight means 100k of these. */
class MemoryDelivery implements Delivery {
  readonly #broker: MemoryBroker;
  readonly #entry: Entry;
  readonly #lease: number;
  readonly deliveryCount: number;

  constructor(broker: MemoryBroker, entry: Entry, lease: number) {
    this.#broker = broker;
    this.#entry = entry;
    this.#lease = lease;
    this.deliveryCount = entry.deliveryCount;
  }

  get data(): Uint8Array {
    return this.#entry.data;
  }

  extend(): Promise<void> {
    this.#broker.extendLease(this.#entry, this.#lease);
    return DONE;
  }

  ack(): Promise<void> {
    if (this.#broker.take(this.#entry, this.#lease)) this.#broker.acked();
    return DONE;
  }

  nack(delayMs: number): Promise<void> {
    if (this.#broker.take(this.#entry, this.#lease)) this.#broker.nacked(this.#entry, delayMs);
    return DONE;
  }

  deadLetter(reason: string): Promise<void> {
    if (this.#broker.take(this.#entry, this.#lease)) this.#broker.deadLettered(this.#entry, reason);
    return DONE;
  }
}
