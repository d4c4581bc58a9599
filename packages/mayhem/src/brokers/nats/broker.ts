/**
 * NATS JetStream broker: a durable pull consumer shared by every instance (each message goes to
 * one of them). A thin façade over parts with one job each:
 *
 *   pull-engine.ts        pull requests and their credits, liveness, status codes
 *   settler.ts            extend / ack / nack / dead-letter, fire-and-forget or confirmed
 *   delivery.ts           one delivery, settled through the settler
 *   connection-status.ts  disconnects and reconnects, told to the engine and the settler
 *
 * This file wires them to the connection and owns the shutdown order: stop pulling, give back
 * what was never handed out, wait for confirmed settles, flush, drain.
 */
import { createInbox, type Msg, type NatsConnection } from '@nats-io/transport-node';
import type { JetStreamManager } from '@nats-io/jetstream';
import type { Broker, Delivery } from '../../core/contracts.js';
import { errorText } from '../../core/errors.js';
import { parseAckSubject, type AckInfo } from './ack-subject.js';
import { drainOrClose } from './connection.js';
import { watchConnection } from './connection-status.js';
import { NatsDelivery } from './delivery.js';
import type { NatsOptions, ResolvedNatsOptions } from './options.js';
import { PullEngine } from './pull-engine.js';
import type { PullEngineStats, PullPort } from './pull-port.js';
import { connectAndSetUp, ensureConsumer, ensureStreams, openManager } from './setup.js';
import { Settler, type SettlerStats } from './settler.js';

export type NatsBrokerStats = PullEngineStats & SettlerStats;

/** Counts for a delivery whose ack subject we cannot read: a first delivery of no known sequence. */
const UNREADABLE_ACK_SUBJECT: AckInfo = { deliveryCount: 1, streamSequence: 0 };

/** The connection as the pull engine's port. */
function pullPort(nc: NatsConnection): PullPort<Msg> {
  return {
    subscribe: (inbox, onMessage) => nc.subscribe(inbox, { callback: onMessage }),
    publish: (subject, body, inbox) => nc.publish(subject, body, { reply: inbox }),
    isClosed: () => nc.isClosed(),
  };
}

export class NatsBroker implements Broker {
  readonly ackDeadlineMs: number;
  readonly #nc: NatsConnection;
  readonly #options: ResolvedNatsOptions;
  readonly #settler: Settler;
  readonly #engine: PullEngine<Msg, NatsDelivery>;
  #jsm: Promise<JetStreamManager> | undefined;
  /** An unreadable ack subject is logged once, not once per message. */
  #warnedUnreadable = false;

  constructor(nc: NatsConnection, o: ResolvedNatsOptions, ackWaitMs: number) {
    this.#nc = nc;
    this.#options = o;
    this.ackDeadlineMs = ackWaitMs;
    const settler = new Settler(nc, o);
    this.#settler = settler;
    this.#engine = new PullEngine<Msg, NatsDelivery>(
      pullPort(nc),
      {
        toDelivery: (msg) => this.#toDelivery(msg),
        giveBack: (d) => settler.giveBack(d),
        onStopping: () => settler.beginStopping(),
        onConsumerDeleted: () => void this.#recreateConsumer(),
      },
      {
        stream: o.stream,
        consumer: o.durable,
        maxPullBatch: o.maxPullBatch,
        pullExpiresMs: o.pullExpiresMs,
        inboxPrefix: createInbox(),
        logger: o.logger,
      },
    );
    void watchConnection(nc, o.logger, {
      disconnected: () => settler.setConnected(false),
      reconnected: () => {
        settler.setConnected(true);
        this.#engine.reconnected();
      },
      closing: () => this.#engine.phase === 'closed',
    });
  }

  stats(): NatsBrokerStats {
    return { ...this.#engine.stats(), ...this.#settler.stats() };
  }

  pull(max: number, signal: AbortSignal): Promise<Delivery[]> {
    return this.#engine.pull(max, signal);
  }

  /** Messages of the stream the shared durable consumer has not delivered yet (fleet-wide): the backlog gauge. */
  async backlog(): Promise<number> {
    this.#jsm ??= openManager(this.#nc, this.#options);
    const jsm = await this.#jsm.catch((err: unknown) => {
      this.#jsm = undefined;
      throw err;
    });
    return (await jsm.consumers.info(this.#options.stream, this.#options.durable)).num_pending;
  }

  async close(): Promise<void> {
    if (this.#engine.phase === 'closed') return;
    this.#engine.close();
    await this.#settler.close();
    try {
      // Everything sent fire-and-forget reaches the server before the connection goes.
      await this.#nc.flush();
    } catch {
      // The connection is gone; unsettled leases expire and are redelivered.
    }
    await drainOrClose(this.#nc);
  }

  #toDelivery(msg: Msg): NatsDelivery {
    const reply = msg.reply ?? '';
    return new NatsDelivery(this.#settler, msg, reply, parseAckSubject(reply) ?? this.#unreadable(reply));
  }

  /** Only a server that changed the ack subject's shape sends one: still a lease the reply settles. */
  #unreadable(reply: string): AckInfo {
    if (!this.#warnedUnreadable) {
      this.#warnedUnreadable = true;
      this.#options.logger.warn(
        { reply },
        'NATS ack subject not understood; such deliveries count as first deliveries (is this mayhem older than the server?)',
      );
    }
    return UNREADABLE_ACK_SUBJECT;
  }

  async #recreateConsumer(): Promise<void> {
    try {
      const jsm: JetStreamManager = await openManager(this.#nc, this.#options);
      await ensureConsumer(jsm, this.#options);
    } catch (err) {
      this.#options.logger.error({ err: errorText(err) }, 'Could not recreate the NATS consumer');
    }
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
