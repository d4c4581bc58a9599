/**
 * One JetStream delivery as the pipeline sees it (the `Delivery` contract): the payload, the
 * counts its ack subject carries, and settles that go through the settler. One per message, so it
 * holds only what a settle needs.
 */
import type { Msg } from '@nats-io/transport-node';
import type { Delivery } from '../../core/contracts.js';
import type { AckInfo } from './ack-subject.js';
import type { Settleable, Settler } from './settler.js';

export class NatsDelivery implements Delivery, Settleable {
  readonly data: Uint8Array;
  readonly deliveryCount: number;
  readonly streamSequence: number;
  readonly reply: string;
  settled = false;
  readonly #msg: Msg;
  readonly #settler: Settler;

  constructor(settler: Settler, msg: Msg, reply: string, info: AckInfo) {
    this.#settler = settler;
    this.#msg = msg;
    this.data = msg.data;
    this.reply = reply;
    this.deliveryCount = info.deliveryCount;
    this.streamSequence = info.streamSequence;
  }

  /** Decoded on demand: only dead-lettering needs it. */
  get subject(): string {
    return this.#msg.subject;
  }

  extend(): Promise<void> {
    return this.#settler.extend(this);
  }

  ack(): Promise<void> {
    return this.#settler.ack(this);
  }

  nack(delayMs: number): Promise<void> {
    return this.#settler.nack(this, delayMs);
  }

  deadLetter(reason: string): Promise<void> {
    return this.#settler.deadLetter(this, reason);
  }
}
