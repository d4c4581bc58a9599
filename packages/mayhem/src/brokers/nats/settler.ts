/**
 * The settler: tells JetStream what became of each delivery.
 *
 * Mapping: extend → `+WPI` (JsMsg.working(), resets to the full ack wait), ack → `+ACK`,
 * nack → `-NAK {"delay":ns}`, dead-letter → publish to the dead-letter subject, then a bare
 * `+TERM` (2.9 ignores `+TERM reason`).
 *
 * Two modes. While connected and running, settles are fire-and-forget (a plain publish: no round
 * trip; a lost ack only means a redelivery, which the storage's restart-done record turns into a
 * skip, never a second restart). They are confirmed (ackAck: request/reply, retried) when it
 * matters that the server took them: while the connection is down (the reply proves the ack
 * reached a server after the reconnect) and once shutdown has begun (the first aborted pull), so
 * the process never exits on an ack that is still in a socket buffer. Confirmed settles made
 * before close are tracked, and close waits for them.
 */
import { headers, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import { errorText } from '../../core/errors.js';
import type { ResolvedNatsOptions } from './options.js';
import { DEAD_LETTER_PREFIX_BYTES } from '../../core/message.js';

/** What the settler reads and marks on a delivery. */
export interface Settleable {
  /** The ack subject: every settle is a message to it. */
  readonly reply: string;
  readonly data: Uint8Array;
  readonly subject: string;
  readonly deliveryCount: number;
  readonly streamSequence: number;
  /** Set by the settler once a final settle (ack, nack, term) was taken; later ones are no-ops. */
  settled: boolean;
}

export interface SettlerStats {
  /** Settles sent with confirmation (ackAck), and how many of those needed a retry. */
  readonly confirmedSettles: number;
  readonly settleRetries: number;
}

const encoder = new TextEncoder();
const ACK = encoder.encode('+ACK');
const WPI = encoder.encode('+WPI');
const TERM = encoder.encode('+TERM');
const NAK = encoder.encode('-NAK');
/** Attempts of one confirmed settle before it is reported as failed (the lease then expires). */
const CONFIRM_ATTEMPTS = 4;

function nakPayload(delayMs: number): Uint8Array {
  if (!(delayMs > 0)) return NAK;
  return encoder.encode(`-NAK {"delay":${Math.round(delayMs) * 1_000_000}}`);
}

/** Header values may not hold CR/LF; keep them short. */
function headerValue(text: string): string {
  const oneLine = text.replace(/[\r\n]+/g, ' ');
  return oneLine.length > 512 ? `${oneLine.slice(0, 511)}…` : oneLine;
}

type SettlerPhase = 'running' | 'stopping' | 'closed';

export class Settler {
  readonly #nc: NatsConnection;
  readonly #js: JetStreamClient;
  readonly #options: ResolvedNatsOptions;
  #connected = true;
  #phase: SettlerPhase = 'running';
  readonly #pending = new Set<Promise<unknown>>();
  #confirmedSettles = 0;
  #settleRetries = 0;

  constructor(nc: NatsConnection, o: ResolvedNatsOptions) {
    this.#nc = nc;
    this.#options = o;
    this.#js = jetstream(nc, { timeout: o.requestTimeoutMs });
  }

  stats(): SettlerStats {
    return { confirmedSettles: this.#confirmedSettles, settleRetries: this.#settleRetries };
  }

  /** The connection went down (false) or came back (true): settles are confirmed while it is down. */
  setConnected(connected: boolean): void {
    this.#connected = connected;
  }

  /** Shutdown began: every settle from now on is confirmed. */
  beginStopping(): void {
    if (this.#phase === 'running') this.#phase = 'stopping';
  }

  /** Wait for the confirmed settles made so far; later ones are the caller's to await. */
  async close(): Promise<void> {
    this.beginStopping();
    this.#phase = 'closed';
    await Promise.allSettled([...this.#pending]);
  }

  /** Work in progress: reset the ack timer to the full ack wait. */
  extend(d: Settleable): Promise<void> {
    if (d.settled) return Promise.resolve();
    try {
      this.#nc.publish(d.reply, WPI);
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(new Error(`NATS extend failed: ${errorText(err)}`));
    }
  }

  ack(d: Settleable): Promise<void> {
    return this.#settle(d, ACK);
  }

  nack(d: Settleable, delayMs: number): Promise<void> {
    return this.#settle(d, nakPayload(delayMs));
  }

  /** Nack at once, nobody awaiting it: a lease this instance will not work on goes back. */
  giveBack(d: Settleable): void {
    this.#track(this.#settle(d, NAK));
  }

  /**
   * Park a message on the dead-letter subject (kept by the dead-letter stream), then terminate it
   * so it is never redelivered. The dead-letter publish is confirmed and de-duplicated by stream
   * sequence, so a retried dead-letter lands once.
   */
  async deadLetter(d: Settleable, reason: string): Promise<void> {
    if (d.settled) return;
    const meta = headers();
    meta.set('Mayhem-Reason', headerValue(reason));
    meta.set('Mayhem-Original-Subject', d.subject);
    meta.set('Mayhem-Original-Stream', this.#options.stream);
    meta.set('Mayhem-Original-Sequence', String(d.streamSequence));
    meta.set('Mayhem-Deliveries', String(d.deliveryCount));
    // A message over the limit is not copied whole a second time: its size and first 1 KiB.
    let data = d.data;
    if (data.byteLength > this.#options.maxMessageBytes) {
      meta.set('Mayhem-Original-Bytes', String(data.byteLength));
      data = data.subarray(0, DEAD_LETTER_PREFIX_BYTES);
    }
    await this.#js.publish(this.#options.deadLetterSubject, data, {
      headers: meta,
      msgID: `${this.#options.stream}-${d.streamSequence}-dead`,
      timeout: this.#options.requestTimeoutMs,
    });
    await this.#settle(d, TERM);
  }

  /** A final settle (ack, nack, term): fire-and-forget or confirmed (see the top of this file). */
  #settle(d: Settleable, payload: Uint8Array): Promise<void> {
    if (d.settled) return Promise.resolve();
    if (this.#connected && this.#phase === 'running') {
      try {
        this.#nc.publish(d.reply, payload);
        d.settled = true;
        return Promise.resolve();
      } catch (err) {
        return Promise.reject(new Error(`NATS settle failed: ${errorText(err)}`));
      }
    }
    const confirmed = this.#confirm(d, payload);
    if (this.#phase === 'closed') return confirmed;
    this.#track(confirmed);
    return confirmed;
  }

  /** ackAck: request/reply on the ack subject, retried; the server answers once it processed it. */
  async #confirm(d: Settleable, payload: Uint8Array): Promise<void> {
    this.#confirmedSettles += 1;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#nc.request(d.reply, payload, { timeout: this.#options.requestTimeoutMs });
        d.settled = true;
        return;
      } catch (err) {
        if (attempt >= CONFIRM_ATTEMPTS || this.#nc.isClosed()) {
          throw new Error(
            `NATS did not confirm the settle of message #${d.streamSequence} after ${attempt} attempts: ${errorText(err)}`,
          );
        }
        this.#settleRetries += 1;
        await new Promise((r) => setTimeout(r, 100 * attempt));
      }
    }
  }

  /** Keep a settle nobody awaits: log its failure, and let close wait for it. */
  #track(p: Promise<unknown>): void {
    const tracked = p.catch((err: unknown) =>
      this.#options.logger.warn(
        { err: errorText(err) },
        'NATS settle failed; the lease will expire and the message will be redelivered',
      ),
    );
    this.#pending.add(tracked);
    void tracked.finally(() => this.#pending.delete(tracked));
  }
}
