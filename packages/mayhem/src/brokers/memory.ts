/**
 * The embedded broker: an in-memory pull queue with real lease semantics. A lease that expires
 * redelivers; a nack redelivers after its delay; delivery counts grow; dead letters are kept.
 * Not durable: what is in it when the process exits is gone (the distributed broker's job).
 */
import type { Broker, Delivery, Publisher } from '../core/contracts.js';

interface Entry {
  readonly seq: number;
  readonly data: Uint8Array;
  readonly messageId: string | undefined;
  deliveryCount: number;
  /** Changes with every lease, so a stale handle (expired lease) cannot settle a redelivery. */
  lease: number;
  expiresAt: number;
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
  /** Clock, for tests. */
  readonly now?: () => number;
}

const encoder = new TextEncoder();

export class MemoryBroker implements Broker, Publisher {
  readonly ackDeadlineMs: number;
  readonly deadLetters: DeadLetterEntry[] = [];
  readonly #now: () => number;
  // Ready queue as an array with a moving head: O(1) push and shift without copying.
  #ready: Entry[] = [];
  #head = 0;
  // Leases in insertion order. Every lease lasts ackDeadlineMs from its start or last extension,
  // and an extension re-inserts, so insertion order is expiry order: the sweeper reads the front.
  readonly #leases = new Map<number, Entry>();
  // Nacked entries waiting out their delay, by their timer (close() hands them back to the ready queue).
  readonly #delayed = new Map<ReturnType<typeof setTimeout>, Entry>();
  #sweeper: ReturnType<typeof setTimeout> | undefined;
  #waiter: (() => void) | undefined;
  #seq = 0;
  #closed = false;
  readonly #stats = { published: 0, acked: 0, nacked: 0, expired: 0, deadLettered: 0 };

  constructor(options: MemoryBrokerOptions) {
    this.ackDeadlineMs = options.ackDeadlineMs;
    this.#now = options.now ?? (() => performance.now());
  }

  stats(): MemoryBrokerStats {
    return { ...this.#stats, ready: this.#ready.length - this.#head, leased: this.#leases.size, delayed: this.#delayed.size };
  }

  publish(payload: string, messageId?: string): Promise<void> {
    this.publishSync(payload, messageId);
    return Promise.resolve();
  }

  /** Publish without a promise (the simulated publisher's hot path). */
  publishSync(payload: string | Uint8Array, messageId?: string): void {
    if (this.#closed) throw new Error('memory broker is closed');
    const data = typeof payload === 'string' ? encoder.encode(payload) : payload;
    this.#stats.published += 1;
    this.#enqueue({ seq: ++this.#seq, data, messageId, deliveryCount: 0, lease: 0, expiresAt: 0 });
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
    if (this.#sweeper) clearTimeout(this.#sweeper);
    this.#waiter?.();
    return Promise.resolve();
  }

  #enqueue(entry: Entry): void {
    this.#ready.push(entry);
    this.#waiter?.();
  }

  #lease(max: number): Delivery[] {
    const out: Delivery[] = [];
    const now = this.#now();
    while (out.length < max && this.#head < this.#ready.length) {
      const entry = this.#ready[this.#head] as Entry;
      this.#ready[this.#head++] = undefined as unknown as Entry;
      entry.deliveryCount += 1;
      entry.lease = ++this.#seq;
      entry.expiresAt = now + this.ackDeadlineMs;
      this.#leases.set(entry.lease, entry);
      out.push(this.#handle(entry, entry.lease));
    }
    if (this.#head > 1024 && this.#head * 2 > this.#ready.length) {
      this.#ready = this.#ready.slice(this.#head);
      this.#head = 0;
    }
    this.#armSweeper();
    return out;
  }

  #handle(entry: Entry, lease: number): Delivery {
    // Settling checks the lease: after expiry the message belongs to its next delivery.
    const take = (): boolean => entry.lease === lease && this.#leases.delete(lease);
    return {
      data: entry.data,
      deliveryCount: entry.deliveryCount,
      extend: () => {
        if (entry.lease === lease && this.#leases.delete(lease)) {
          entry.expiresAt = this.#now() + this.ackDeadlineMs;
          this.#leases.set(lease, entry);
        }
        return Promise.resolve();
      },
      ack: () => {
        if (take()) this.#stats.acked += 1;
        return Promise.resolve();
      },
      nack: (delayMs: number) => {
        if (!take()) return Promise.resolve();
        this.#stats.nacked += 1;
        entry.lease = 0;
        if (delayMs <= 0 || this.#closed) {
          this.#requeue(entry);
        } else {
          const t = setTimeout(() => {
            this.#delayed.delete(t);
            this.#requeue(entry);
          }, delayMs);
          this.#delayed.set(t, entry);
        }
        return Promise.resolve();
      },
      deadLetter: (reason: string) => {
        if (take()) {
          this.#stats.deadLettered += 1;
          this.deadLetters.push({ data: entry.data, reason, deliveries: entry.deliveryCount });
        }
        return Promise.resolve();
      },
    };
  }

  #requeue(entry: Entry): void {
    if (this.#closed) {
      // Kept countable after close: the shutdown summary reports what was handed back.
      this.#ready.push(entry);
      return;
    }
    this.#enqueue(entry);
  }

  #armSweeper(): void {
    if (this.#sweeper !== undefined || this.#leases.size === 0 || this.#closed) return;
    const first = this.#leases.values().next().value as Entry;
    const wait = Math.max(0, first.expiresAt - this.#now());
    this.#sweeper = setTimeout(() => {
      this.#sweeper = undefined;
      this.#expire();
    }, wait + 1);
    // Leases alone never keep the process alive; the consumer does.
    this.#sweeper.unref();
  }

  #expire(): void {
    const now = this.#now();
    for (const [lease, entry] of this.#leases) {
      if (entry.expiresAt > now) break;
      this.#leases.delete(lease);
      entry.lease = 0;
      this.#stats.expired += 1;
      this.#enqueue(entry);
    }
    this.#armSweeper();
  }
}
