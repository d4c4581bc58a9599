/**
 * Connecting to NATS: credentials (files, or user/password/token in the URL), the reconnect policy
 * that makes an outage a pause, and one clear line, secrets redacted, when the server is unreachable.
 */
import { readFileSync } from 'node:fs';
import {
  connect,
  credsAuthenticator,
  nkeyAuthenticator,
  tokenAuthenticator,
  type Authenticator,
  type NatsConnection,
} from '@nats-io/transport-node';
import { errorText } from '../../core/errors.js';
import { redactSecrets } from '../../core/redact.js';
import type { NatsAuth, ResolvedNatsOptions } from './options.js';

/** An error as one line with credentials redacted: connection errors may quote the URL. */
export function oneLine(err: unknown): string {
  return redactSecrets(errorText(err).replace(/\s+/g, ' ').trim());
}

/** The servers for messages: credentials in URLs replaced by `***`. */
export function describeServers(servers: readonly string[]): string {
  return redactSecrets(servers.join(','));
}

function readSecretFile(path: string, what: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (err) {
    throw new Error(
      `cannot read the NATS ${what} file ${path}: ${(err as NodeJS.ErrnoException).code ?? oneLine(err)}`,
    );
  }
}

/**
 * `nats://user:pass@host` and `nats://token@host`: the client library does not read credentials
 * from server URLs, so they are taken out here (the first URL that has them) and the URLs passed on
 * without them.
 */
export function urlCredentials(urls: readonly string[]): {
  servers: string[];
  user?: string;
  pass?: string;
  token?: string;
} {
  let found: { user?: string; pass?: string; token?: string } = {};
  const servers = urls.map((raw) => {
    let u: URL;
    try {
      u = new URL(raw);
    } catch {
      return raw;
    }
    if (u.username === '' && u.password === '') return raw;
    if (found.user === undefined && found.token === undefined) {
      const name = decodeURIComponent(u.username);
      found = u.password !== '' ? { user: name, pass: decodeURIComponent(u.password) } : { token: name };
    }
    u.username = '';
    u.password = '';
    return u.toString().replace(/\/$/, '');
  });
  return { servers, ...found };
}

/** Authenticators for the credential files given (none: the URL's own user/password/token, if any). */
export function authenticators(auth: NatsAuth): Authenticator[] {
  const out: Authenticator[] = [];
  if (auth.credsFile !== undefined) {
    const creds = readSecretFile(auth.credsFile, 'credentials (--nats-creds)');
    if (!/-----BEGIN NATS USER JWT-----/.test(new TextDecoder().decode(creds))) {
      throw new Error(
        `the NATS credentials file ${auth.credsFile} (--nats-creds) holds no user JWT: expected a .creds file as nsc writes it`,
      );
    }
    out.push(credsAuthenticator(creds));
  }
  if (auth.nkeyFile !== undefined) {
    const seed = new TextDecoder().decode(readSecretFile(auth.nkeyFile, 'nkey seed (--nats-nkey)')).trim();
    if (!/^SU[A-Z2-7]{56}$/.test(seed))
      throw new Error(
        `the NATS nkey file ${auth.nkeyFile} (--nats-nkey) does not hold a user nkey seed (SU..., 58 characters)`,
      );
    out.push(nkeyAuthenticator(new TextEncoder().encode(seed)));
  }
  if (auth.tokenFile !== undefined) {
    const token = new TextDecoder().decode(readSecretFile(auth.tokenFile, 'token (--nats-token-file)')).trim();
    if (token === '') throw new Error(`the NATS token file ${auth.tokenFile} (--nats-token-file) is empty`);
    out.push(tokenAuthenticator(token));
  }
  return out;
}

/**
 * Connect, retrying reconnects forever afterwards (a broker outage pauses the service, it does not
 * end it). An unreachable broker at start is one clear line, no stack.
 */
export async function connectNats(o: ResolvedNatsOptions): Promise<NatsConnection> {
  const auth = authenticators(o.auth);
  const { servers, user, pass, token } = urlCredentials(o.servers);
  try {
    return await connect({
      servers,
      ...(auth.length > 0 ? { authenticator: auth } : {}),
      ...(user !== undefined ? { user, pass } : {}),
      ...(token !== undefined ? { token } : {}),
      name: o.name,
      timeout: 5_000,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      reconnectJitter: 100,
      pingInterval: 5_000,
      maxPingOut: 3,
    });
  } catch (err) {
    throw new Error(`cannot connect to NATS at ${describeServers(o.servers)}: ${oneLine(err)}`);
  }
}

/** Drain (deliver what is buffered, then close); a connection that cannot drain is closed. */
export async function drainOrClose(nc: NatsConnection): Promise<void> {
  try {
    await nc.drain();
  } catch {
    await nc.close().catch(() => undefined);
  }
}
