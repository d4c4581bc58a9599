/**
 * The one reader of a `--broker nats://…` value. Config validation (at start, so a typo is one
 * line before anything connects) and the adapter (when it connects) both use it, so what starts is
 * exactly what was checked. Kept free of the client library: config loads it without loading NATS.
 */

/** What a NATS broker value looks like, for error messages. */
export const NATS_URL_FORM = 'nats://host:port[,nats://host:port...] with a port from 1 to 65535';

/**
 * The server URLs of a comma list of nats://host[:port] URLs (each trimmed, as given: credentials
 * stay in them for the connection to take out), or undefined when any entry is not one: not a URL,
 * another scheme, no host, port 0, whitespace inside, or an empty entry. A port above 65535 is not
 * a URL at all.
 */
export function parseNatsUrls(text: string): string[] | undefined {
  const servers = text.split(',').map((s) => s.trim());
  for (const s of servers) if (!isNatsUrl(s)) return undefined;
  return servers;
}

function isNatsUrl(s: string): boolean {
  if (/\s/.test(s)) return false;
  let url: URL;
  try {
    url = new URL(s);
  } catch {
    return false;
  }
  return url.protocol === 'nats:' && url.hostname !== '' && url.port !== '0';
}
