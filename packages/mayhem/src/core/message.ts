/**
 * What a restart request is. Parsed and validated once, at the edge; everything past the broker
 * sees only a valid {@link RestartRequest}.
 */

/** A restart request as it travels on the wire (JSON). */
export interface RestartRequest {
  /** Unique id: the idempotency key for saves and restarts. */
  readonly messageId: string;
  /** Instance to restart; the host is `<instanceName>.example.net`. */
  readonly instanceName: string;
  /** When it was published, ms since epoch (the wire carries an ISO-8601 string or a number). */
  readonly publishedAt: number;
}

export type ParseResult =
  | { readonly ok: true; readonly request: RestartRequest }
  | { readonly ok: false; readonly error: string };

const MAX_ID = 200;
// Instance names become DNS labels: keep them to what a hostname may hold.
const INSTANCE_RE = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/** The host a request restarts. */
export function hostnameOf(request: Pick<RestartRequest, 'instanceName'>): string {
  return `${request.instanceName}.example.net`;
}

/** The wire form: JSON with `publishedAt` as ISO-8601. */
export function encodeRestartRequest(request: RestartRequest): string {
  return JSON.stringify({
    messageId: request.messageId,
    instanceName: request.instanceName,
    publishedAt: new Date(request.publishedAt).toISOString(),
  });
}

const decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * Parse and validate a payload. Never throws: a malformed message is a value the pipeline
 * dead-letters with the returned one-line reason.
 */
export function parseRestartRequest(payload: Uint8Array | string): ParseResult {
  let text: string;
  try {
    text = typeof payload === 'string' ? payload : decoder.decode(payload);
  } catch {
    return { ok: false, error: 'payload is not valid UTF-8' };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, error: `payload is not JSON: ${preview(text)}` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, error: 'payload is not a JSON object' };
  }
  const { messageId, instanceName, publishedAt } = value as Record<string, unknown>;
  if (typeof messageId !== 'string' || messageId.length === 0 || messageId.length > MAX_ID) {
    return { ok: false, error: `messageId must be a non-empty string of at most ${MAX_ID} characters` };
  }
  if (typeof instanceName !== 'string' || !INSTANCE_RE.test(instanceName)) {
    return { ok: false, error: `instanceName must be a hostname label (letters, digits, '-'), got ${preview(String(instanceName))}` };
  }
  let at: number;
  if (typeof publishedAt === 'number') at = publishedAt;
  else if (typeof publishedAt === 'string') at = Date.parse(publishedAt);
  else return { ok: false, error: 'publishedAt must be an ISO-8601 string or epoch milliseconds' };
  if (!Number.isFinite(at)) return { ok: false, error: `publishedAt is not a valid time: ${preview(String(publishedAt))}` };
  return { ok: true, request: { messageId, instanceName, publishedAt: at } };
}

function preview(text: string): string {
  const oneLine = text.replace(/\s+/g, ' ');
  return JSON.stringify(oneLine.length > 60 ? `${oneLine.slice(0, 60)}…` : oneLine);
}
