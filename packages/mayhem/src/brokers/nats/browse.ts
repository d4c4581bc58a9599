/**
 * A read-only look at the restart requests pending on the stream, for previews (`mayhem plan`, a
 * leashed `mayhem run`): messages are read by sequence (JetStream's message-get API), so no consumer
 * is created or joined and nothing is delivered, acked or redelivered. The stream is a work queue:
 * what it still holds is what the fleet has not acked yet.
 *
 * {@link BrowsingBroker} gives a leashed instance its deliveries from such a look: new messages as
 * they arrive, and its own redeliveries (a deferral) kept in process. Settling one changes nothing on
 * the server; a message the fleet acked meanwhile is dropped at its redelivery.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { JetStreamApiCodes, JetStreamApiError, type JetStreamManager, type MsgRequest } from '@nats-io/jetstream';
import type { Broker, Delivery } from '../../core/contracts.js';
import { drainOrClose } from './connection.js';
import type { NatsOptions, ResolvedNatsOptions } from './options.js';
import { connectAndSetUp, openManager } from './setup.js';

/** A request as the stream holds it. */
export interface StreamMessage {
  readonly seq: number;
  readonly data: Uint8Array;
}

export class StreamBrowser {
  readonly #nc: NatsConnection;
  readonly #jsm: JetStreamManager;
  readonly #o: ResolvedNatsOptions;

  private constructor(nc: NatsConnection, jsm: JetStreamManager, o: ResolvedNatsOptions) {
    this.#nc = nc;
    this.#jsm = jsm;
    this.#o = o;
  }

  /** Connect; the stream must exist (a preview creates nothing). */
  static open(opts: NatsOptions): Promise<StreamBrowser> {
    return connectAndSetUp(opts, async (nc, o) => {
      const jsm = await openManager(nc, o);
      try {
        await jsm.streams.info(o.stream);
      } catch (err) {
        if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound)
          throw new Error(
            `NATS stream ${o.stream} does not exist: no request is pending (it is created by mayhem run or publish)`,
          );
        throw err;
      }
      return new StreamBrowser(nc, jsm, o);
    });
  }

  /** The stream's name, for messages. */
  get stream(): string {
    return this.#o.stream;
  }

  /** Up to `max` requests on our subject from sequence `from` on, oldest first. */
  async next(from: number, max: number): Promise<StreamMessage[]> {
    const out: StreamMessage[] = [];
    let seq = from;
    while (out.length < max) {
      // "The first message on the subject at or after seq": skips what the fleet acked (gaps) in one ask.
      const m = await this.#jsm.streams.getMessage(this.#o.stream, {
        seq,
        next_by_subj: this.#o.subject,
      } as unknown as MsgRequest);
      if (m === null) break;
      out.push({ seq: m.seq, data: m.data });
      seq = m.seq + 1;
    }
    return out;
  }

  /** Whether the stream still holds sequence `seq` (the fleet has not acked it). */
  async holds(seq: number): Promise<boolean> {
    return (await this.#jsm.streams.getMessage(this.#o.stream, { seq })) !== null;
  }

  /** Remove one request from the stream (`mayhem plan --ack`); false when it was gone already. */
  remove(seq: number): Promise<boolean> {
    return this.#jsm.streams.deleteMessage(this.#o.stream, seq, false).catch((err: unknown) => {
      if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.NoMessageFound) return false;
      throw err;
    });
  }

  close(): Promise<void> {
    return drainOrClose(this.#nc);
  }
}

/** A leashed instance's deliveries, from a look at the stream (see the file's comment). */
export class BrowsingBroker implements Broker {
  // Nothing is leased: the deadline only paces the pipeline's extensions, which do nothing here.
  readonly ackDeadlineMs = 60_000;
  readonly #browser: StreamBrowser;
  readonly #pollMs: number;
  #nextSeq = 1;
  readonly #again: { at: number; seq: number; data: Uint8Array; count: number }[] = [];

  constructor(browser: StreamBrowser, pollMs = 1000) {
    this.#browser = browser;
    this.#pollMs = pollMs;
  }

  async pull(max: number, signal: AbortSignal): Promise<Delivery[]> {
    while (!signal.aborted) {
      const out: Delivery[] = [];
      const now = Date.now();
      for (let i = 0; i < this.#again.length && out.length < max;) {
        const r = this.#again[i]!;
        if (r.at > now) {
          i++;
          continue;
        }
        this.#again.splice(i, 1);
        // Acked by the fleet meanwhile: nothing left to preview.
        if (await this.#browser.holds(r.seq)) out.push(this.#delivery(r.seq, r.data, r.count));
      }
      if (out.length < max) {
        for (const m of await this.#browser.next(this.#nextSeq, max - out.length)) {
          this.#nextSeq = m.seq + 1;
          out.push(this.#delivery(m.seq, m.data, 1));
        }
      }
      if (out.length > 0) return out;
      await sleepUnlessAborted(this.#pollMs, signal);
    }
    return [];
  }

  close(): Promise<void> {
    return this.#browser.close();
  }

  #delivery(seq: number, data: Uint8Array, count: number): Delivery {
    const settled = (): Promise<void> => Promise.resolve();
    return {
      data,
      deliveryCount: count,
      extend: settled,
      ack: settled,
      deadLetter: settled,
      nack: (delayMs) => {
        this.#again.push({ at: Date.now() + delayMs, seq, data, count: count + 1 });
        return Promise.resolve();
      },
    };
  }
}

function sleepUnlessAborted(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

export function openBrowsingBroker(opts: NatsOptions): Promise<BrowsingBroker> {
  return StreamBrowser.open(opts).then((b) => new BrowsingBroker(b));
}
