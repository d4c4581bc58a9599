/**
 * `mayhem publish` and the benches: restart requests into the request stream, confirmed by the
 * stream and de-duplicated by messageId.
 */
import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Publisher } from '../../core/contracts.js';
import { errorText } from '../../core/errors.js';
import { drainOrClose } from './connection.js';
import type { NatsOptions, ResolvedNatsOptions } from './options.js';
import { connectAndSetUp, ensureStreams, openManager } from './setup.js';

class NatsPublisher implements Publisher {
  readonly #nc: NatsConnection;
  readonly #js: JetStreamClient;
  readonly #options: ResolvedNatsOptions;

  constructor(nc: NatsConnection, o: ResolvedNatsOptions) {
    this.#nc = nc;
    this.#options = o;
    this.#js = jetstream(nc, { timeout: o.requestTimeoutMs });
  }

  /**
   * Publish and wait for the stream's ack. Retried on timeouts and while JetStream is unavailable
   * (a leader election, a reconnect); with a messageId the retry is de-duplicated by the server.
   */
  async publish(payload: string, messageId?: string): Promise<void> {
    const deadline = Date.now() + 60_000;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#js.publish(
          this.#options.subject,
          payload,
          messageId === undefined
            ? { timeout: this.#options.requestTimeoutMs }
            : { msgID: messageId, timeout: this.#options.requestTimeoutMs },
        );
        return;
      } catch (err) {
        if (this.#nc.isClosed() || Date.now() > deadline) throw new Error(`NATS publish failed: ${errorText(err)}`);
        await new Promise((r) => setTimeout(r, Math.min(1_000, 50 * attempt)));
      }
    }
  }

  close(): Promise<void> {
    return drainOrClose(this.#nc);
  }
}

/** Connect and make sure the stream exists (publishing may start before any instance runs). */
export function openNatsPublisher(opts: NatsOptions): Promise<Publisher> {
  return connectAndSetUp(opts, async (nc, o) => {
    // Publishing needs only the request stream: the dead-letter stream is `mayhem run`'s.
    await ensureStreams(await openManager(nc, o), o, { deadLetters: false });
    return new NatsPublisher(nc, o);
  });
}
