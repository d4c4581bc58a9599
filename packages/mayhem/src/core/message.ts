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
/** A restart request is a few hundred bytes; anything this large is not one (and is not parsed). */
export const MAX_PAYLOAD_BYTES = 64 * 1024;
// Instance names become DNS labels: keep them to what a hostname may hold.
const INSTANCE_RE = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
// Control characters (C0, DEL, C1) and the Unicode line/paragraph separators: an id holding one
// could forge log lines, and PostgreSQL cannot store NUL (it would collide with other ids).
// eslint-disable-next-line no-control-regex
const ID_FORBIDDEN_RE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
// A UTF-16 surrogate without its partner: not a character, and not storable as UTF-8.
const LONE_SURROGATE_RE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * The range of `publishedAt` accepted at the edge: years 0001 to 9999, what ISO-8601 writes with
 * four digits and every storage holds (SQLite integer ms, PostgreSQL timestamptz, a JS Date). A
 * value outside it would pass here and then fail every save, so it is malformed here.
 */
export const MIN_PUBLISHED_AT = -62_135_596_800_000; // 0001-01-01T00:00:00.000Z
export const MAX_PUBLISHED_AT = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z

// RFC 3339 date-time: a full date, a time to at least the minute, and a zone (Z or ±hh:mm).
const ISO_RE = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(?:([Zz])|([+-])(\d{2}):?(\d{2}))$/;

/**
 * Strict ISO-8601 / RFC 3339 → epoch ms, or undefined. `Date.parse` alone accepts far too much
 * ("1" is 2001-01-01 in V8, "2026-02-31" is 3 March), so the fields are checked here.
 */
export function parseIsoTime(text: string): number | undefined {
  const m = ISO_RE.exec(text);
  if (m === null) return undefined;
  const [, y, mo, d, h, mi, s = '0', frac = '0', z, sign, oh = '0', om = '0'] = m;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(s);
  if (month < 1 || month > 12 || day < 1 || day > daysIn(year, month) || hour > 23 || minute > 59 || second > 59) return undefined;
  const offsetH = Number(oh);
  const offsetM = Number(om);
  if (offsetH > 23 || offsetM > 59) return undefined;
  const t = new Date(0);
  // setUTCFullYear, not Date.UTC: Date.UTC maps years 0-99 to 1900-1999.
  t.setUTCFullYear(year, month - 1, day);
  t.setUTCHours(hour, minute, second, Math.floor(Number(`0.${frac}`) * 1000));
  const offset = z !== undefined ? 0 : (sign === '-' ? -1 : 1) * (offsetH * 60 + offsetM) * 60_000;
  return t.getTime() - offset;
}

function daysIn(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/** Why `messageId` is not a usable id, or undefined when it is. */
export function messageIdProblem(messageId: unknown): string | undefined {
  if (typeof messageId !== 'string' || messageId.length === 0 || messageId.length > MAX_ID) {
    return `messageId must be a non-empty string of at most ${MAX_ID} characters`;
  }
  if (ID_FORBIDDEN_RE.test(messageId)) return 'messageId must not contain control characters or line separators';
  if (LONE_SURROGATE_RE.test(messageId)) return 'messageId must be well-formed Unicode (it has an unpaired surrogate)';
  return undefined;
}

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
 * Parse and validate a payload. Never throws, whatever the bytes or JSON value: a malformed
 * message is a value the pipeline dead-letters with the returned one-line reason.
 */
export function parseRestartRequest(payload: Uint8Array | string): ParseResult {
  try {
    return parse(payload);
  } catch (err) {
    // Unreachable by design (property-tested); kept so that a bug here dead-letters one message
    // instead of crashing every consumer the broker redelivers it to.
    return { ok: false, error: `payload could not be parsed: ${preview(err instanceof Error ? err.message : typeof err)}` };
  }
}

function parse(payload: Uint8Array | string): ParseResult {
  const size = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.byteLength;
  if (size > MAX_PAYLOAD_BYTES) return { ok: false, error: `payload is ${size} bytes, more than ${MAX_PAYLOAD_BYTES}` };
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
  const idProblem = messageIdProblem(messageId);
  if (idProblem !== undefined || typeof messageId !== 'string') return { ok: false, error: idProblem ?? 'messageId must be a string' };
  if (typeof instanceName !== 'string' || !INSTANCE_RE.test(instanceName)) {
    return { ok: false, error: `instanceName must be a hostname label (letters, digits, '-'), got ${describe(instanceName)}` };
  }
  let at: number | undefined;
  if (typeof publishedAt === 'number') at = Number.isFinite(publishedAt) ? Math.round(publishedAt) : undefined;
  else if (typeof publishedAt === 'string') at = parseIsoTime(publishedAt);
  else return { ok: false, error: 'publishedAt must be an ISO-8601 string or epoch milliseconds' };
  if (at === undefined) {
    return { ok: false, error: `publishedAt is not an ISO-8601 date-time with a zone (e.g. 2026-01-01T00:00:00Z) or epoch milliseconds: ${describe(publishedAt)}` };
  }
  if (at < MIN_PUBLISHED_AT || at > MAX_PUBLISHED_AT) {
    return { ok: false, error: `publishedAt is out of range (years 0001 to 9999): ${describe(publishedAt)}` };
  }
  // -0 is a valid time but not a value to store.
  return { ok: true, request: { messageId, instanceName, publishedAt: at === 0 ? 0 : at } };
}

/** A short, one-line, quoted rendering of any JSON value for an error message. */
function describe(value: unknown): string {
  if (typeof value === 'string') return preview(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : typeof value;
}

function preview(text: string): string {
  const oneLine = text.replace(/\s+/g, ' ');
  return JSON.stringify(oneLine.length > 60 ? `${oneLine.slice(0, 60)}…` : oneLine);
}
