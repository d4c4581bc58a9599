/**
 * Reconnect watching: the connection's status events turned into what the broker's parts act on
 * (the settler confirms settles while the connection is down; the pull engine re-checks its
 * requests after a reconnect), and the log lines an operator reads during an outage.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { errorText } from '../../core/errors.js';

export interface ConnectionListener {
  disconnected(): void;
  reconnected(): void;
  /** Shutdown in progress: a disconnect is then expected and not worth a warning. */
  closing(): boolean;
}

/** Runs until the connection closes. */
export async function watchConnection(nc: NatsConnection, logger: Logger, listener: ConnectionListener): Promise<void> {
  for await (const event of nc.status()) {
    switch (event.type) {
      case 'disconnect':
        listener.disconnected();
        if (!listener.closing())
          logger.warn(
            { server: event.server },
            'NATS disconnected; reconnecting (in-flight acks are held and confirmed after the reconnect)',
          );
        break;
      case 'reconnect':
        logger.info({ server: event.server }, 'NATS reconnected');
        listener.reconnected();
        break;
      case 'error':
        logger.warn({ err: errorText(event.error) }, 'NATS connection error');
        break;
      default:
        break;
    }
  }
}
