/**
 * The pull engine's edges (brokers/nats/pull-engine.ts): the port it drives instead of a NATS
 * connection (so its credit accounting is tested against an in-process stand-in for the server), what
 * it asks of its owner, its options and the figures it reports.
 */
import type { Logger } from 'pino';

/** What the engine reads of a message that arrives on a pull request's inbox. */
export interface PulledMessage {
  /** A delivery's ack subject (`$JS.ACK.…`); status messages have none. */
  readonly reply?: string | undefined;
  /** Status messages: 100 idle heartbeat, 404/408 request over, 409 conflict, 503 no JetStream. */
  readonly headers?: { readonly code: number; readonly description: string } | undefined;
}

/** The part of a NATS connection the engine drives. */
export interface PullPort<M extends PulledMessage> {
  /** Listen on a pull request's inbox. */
  subscribe(inbox: string, onMessage: (err: Error | null, msg: M) => void): { unsubscribe(): void };
  /** Send a pull request: `body` to `subject`, answered on `inbox`. May throw. */
  publish(subject: string, body: string, inbox: string): void;
  isClosed(): boolean;
}

/** What the engine asks of its owner. */
export interface PullEngineHooks<M, D> {
  /** The delivery for a message that carries an ack subject. */
  toDelivery(msg: M): D;
  /** Hand a delivery straight back (nak): it arrived after shutdown began, or for a request given up. */
  giveBack(delivery: D): void;
  /** Shutdown began; called before the buffered deliveries are given back. */
  onStopping(): void;
  /** The server said our consumer is gone (409 consumer deleted). */
  onConsumerDeleted(): void;
}

export interface PullEngineOptions {
  readonly stream: string;
  readonly consumer: string;
  /** Largest batch one pull request asks for. */
  readonly maxPullBatch: number;
  /** How long one pull request waits on the server before it expires (408). */
  readonly pullExpiresMs: number;
  /** Each request listens on `<inboxPrefix>.<n>`. */
  readonly inboxPrefix: string;
  readonly logger: Logger;
}

export interface PullEngineStats {
  /** Deliveries received and not yet handed to the caller. */
  readonly buffered: number;
  /** Messages requested by live pull requests and not yet received. */
  readonly outstanding: number;
  /** Live pull requests. */
  readonly requests: number;
  /** Pull requests issued since start. */
  readonly pullRequests: number;
}

export type PullEnginePhase = 'running' | 'stopping' | 'closed';
