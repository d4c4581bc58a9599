/**
 * What a restart request is. Parsed and validated once, at the edge; everything past the broker
 * sees only a valid {@link RestartRequest}.
 */
import { errorText } from './errors.js';
import { DEFAULT_HOST, isHostname, renderHost, type HostTemplate } from './hostname.js';

/** A restart request as it travels on the wire (JSON). */
export interface RestartRequest {
  /** Unique id: the idempotency key for saves and restarts. */
  readonly messageId: string;
  /** Instance to restart: a host name (dots allowed). */
  readonly instanceName: string;
  /**
   * The host to restart (an FQDN), when the request carries one; else `--host-template` makes it from
   * the instance name (default `<instanceName>.example.net`). Parsing always sets it.
   */
  readonly host?: string;
  /** When it was published, ms since epoch (the wire carries an ISO-8601 string or a number). */
  readonly publishedAt: number;
}

export type ParseResult =
  { readonly ok: true; readonly request: RestartRequest } | { readonly ok: false; readonly error: string };

const MAX_ID = 200;
/**
 * A restart request is a few hundred bytes; anything larger than this (`--max-message-bytes`) is
 * not one, is not parsed, and is dead-lettered as its size and first {@link DEAD_LETTER_PREFIX_BYTES}.
 */
export const MAX_PAYLOAD_BYTES = 64 * 1024;
/** What a dead letter keeps of a payload over the limit: enough to tell where it came from. */
export const DEAD_LETTER_PREFIX_BYTES = 1024;

/**
 * A payload as a dead letter keeps it: whole up to `maxBytes`; past it, its first
 * {@link DEAD_LETTER_PREFIX_BYTES} (whole characters) and a note of the full size, never the whole
 * of it a second time.
 */
export function deadLetterPayload(data: Uint8Array, maxBytes: number = MAX_PAYLOAD_BYTES): string {
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (bytes.byteLength <= maxBytes) return bytes.toString('utf8');
  // Decoding a cut sequence yields U+FFFD at the end; drop it: the prefix ends on a whole character.
  const prefix = bytes
    .subarray(0, DEAD_LETTER_PREFIX_BYTES)
    .toString('utf8')
    .replace(/\uFFFD+$/, '');
  return `${prefix}… [${bytes.byteLength} bytes; the first ${DEAD_LETTER_PREFIX_BYTES} kept]`;
}

/**
 * The range of `publishedAt` accepted at the edge: years 0001 to 9999, what ISO-8601 writes with
 * four digits and every storage holds (SQLite integer ms, PostgreSQL timestamptz, a JS Date). A
 * value outside it would pass here and then fail every save, so it is malformed here.
 */
export const MIN_PUBLISHED_AT = -62_135_596_800_000; // 0001-01-01T00:00:00.000Z
export const MAX_PUBLISHED_AT = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z

// RFC 3339 date-time: a full date, a time to at least the minute, and a zone (Z or ±hh:mm).
const ISO_RE =
  /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(?:([Zz])|([+-])(\d{2}):?(\d{2}))$/;

/**
 * Strict ISO-8601 / RFC 3339 → epoch ms, or undefined. `Date.parse` alone accepts far too much
 * ("1" is 2001-01-01 in V8, "2026-02-31" is 3 March), so the fields are checked here.
 */
export function parseIsoTime(text: string): number | undefined {
  // The form every publisher of ours writes (toISOString), read without a regex or a Date: it is
  // parsed once per message on the hot path.
  if (text.length === 24) {
    const fast = canonicalIsoTime(text);
    if (fast !== undefined) return fast;
  }
  const m = ISO_RE.exec(text);
  if (m === null) return undefined;
  const [, y, mo, d, h, mi, s = '0', frac = '0', z, sign, oh = '0', om = '0'] = m;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(s);
  if (month < 1 || month > 12 || day < 1 || day > daysIn(year, month) || hour > 23 || minute > 59 || second > 59)
    return undefined;
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

/** `YYYY-MM-DDTHH:MM:SS.sssZ` (years 1000-9999) → epoch ms; undefined for anything else. */
function canonicalIsoTime(t: string): number | undefined {
  if (
    t.charCodeAt(4) !== 45 ||
    t.charCodeAt(7) !== 45 ||
    t.charCodeAt(10) !== 84 ||
    t.charCodeAt(13) !== 58 ||
    t.charCodeAt(16) !== 58 ||
    t.charCodeAt(19) !== 46 ||
    t.charCodeAt(23) !== 90
  )
    return undefined;
  const year = digits(t, 0, 4);
  const month = digits(t, 5, 2);
  const day = digits(t, 8, 2);
  const hour = digits(t, 11, 2);
  const minute = digits(t, 14, 2);
  const second = digits(t, 17, 2);
  const ms = digits(t, 20, 3);
  if (
    year < 1000 ||
    month < 1 ||
    month > 12 ||
    day < 1 ||
    day > daysIn(year, month) ||
    hour > 23 ||
    minute > 59 ||
    second > 59 ||
    ms < 0
  )
    return undefined;
  return Date.UTC(year, month - 1, day, hour, minute, second, ms);
}

/** The decimal number in t[at, at + n), or -1 when a character there is not a digit. */
function digits(t: string, at: number, n: number): number {
  let v = 0;
  for (let i = at; i < at + n; i++) {
    const d = t.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return -1;
    v = v * 10 + d;
  }
  return v;
}

function daysIn(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/** Whether `text` holds a control character (C0, DEL, C1) or a line/paragraph separator. */
export function controlCharacterIn(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f) || c === 0x2028 || c === 0x2029) return true;
  }
  return false;
}

/** Why `messageId` is not a usable id, or undefined when it is. */
export function messageIdProblem(messageId: unknown): string | undefined {
  if (typeof messageId !== 'string' || messageId.length === 0 || messageId.length > MAX_ID) {
    return `messageId must be a non-empty string of at most ${MAX_ID} characters`;
  }
  // One pass over the code units (the hot path: every message).
  for (let i = 0; i < messageId.length; i++) {
    const c = messageId.charCodeAt(i);
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f) || c === 0x2028 || c === 0x2029) {
      // Control characters (C0, DEL, C1) and the line/paragraph separators: an id holding one could
      // forge log lines, and PostgreSQL cannot store NUL (it collided with other ids).
      return 'messageId must not contain control characters or line separators';
    }
    if (c >= 0xd800 && c <= 0xdfff) {
      // A surrogate must be a high one followed by a low one: a lone one is not a character.
      const next = messageId.charCodeAt(i + 1);
      if (c > 0xdbff || !(next >= 0xdc00 && next <= 0xdfff))
        return 'messageId must be well-formed Unicode (it has an unpaired surrogate)';
      i += 1;
    }
  }
  return undefined;
}

/** The host a request restarts (set by parsing; else the default template's). */
export function hostnameOf(request: Pick<RestartRequest, 'instanceName' | 'host'>): string {
  return request.host ?? renderHost(DEFAULT_HOST, request.instanceName);
}

// The last time encoded and its ISO form: a publisher at full rate stamps many messages per millisecond.
let isoAt = NaN;
let iso = '';

/**
 * The wire form: JSON with `publishedAt` as ISO-8601. Written out rather than JSON.stringify of an
 * object (the simulated publisher's hot path: one per message); the same text, key for key.
 */
export function encodeRestartRequest(request: RestartRequest): string {
  const at = request.publishedAt;
  if (at !== isoAt) {
    iso = new Date(at).toISOString(); // throws on an invalid time, as before
    isoAt = at;
  }
  const host = request.host === undefined ? '' : `,"host":${JSON.stringify(request.host)}`;
  return `{"messageId":${JSON.stringify(request.messageId)},"instanceName":${JSON.stringify(request.instanceName)}${host},"publishedAt":"${iso}"}`;
}

const decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * Parse and validate a payload. Never throws, whatever the bytes or JSON value: a malformed
 * message is a value the pipeline dead-letters with the returned one-line reason. A request without
 * a `host` gets one from `hosts` (`--host-template`).
 */
export function parseRestartRequest(
  payload: Uint8Array | string,
  hosts: HostTemplate = DEFAULT_HOST,
  maxBytes: number = MAX_PAYLOAD_BYTES,
): ParseResult {
  try {
    return parse(payload, hosts, maxBytes);
  } catch (err) {
    // Unreachable by design (property-tested); kept so that a bug here dead-letters one message
    // instead of crashing every consumer the broker redelivers it to.
    return { ok: false, error: `payload could not be parsed: ${preview(errorText(err))}` };
  }
}

function parse(payload: Uint8Array | string, hosts: HostTemplate, maxBytes: number): ParseResult {
  const size = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.byteLength;
  if (size > maxBytes)
    return { ok: false, error: `payload is ${size} bytes, more than ${maxBytes} (--max-message-bytes)` };
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
  const { messageId, instanceName, publishedAt, host } = value as Record<string, unknown>;
  const idProblem = messageIdProblem(messageId);
  if (idProblem !== undefined || typeof messageId !== 'string')
    return { ok: false, error: idProblem ?? 'messageId must be a string' };
  if (typeof instanceName !== 'string' || !isHostname(instanceName)) {
    return {
      ok: false,
      error: `instanceName must be a host name (letters, digits, '-' and dots), got ${describe(instanceName)}`,
    };
  }
  if (host !== undefined && (typeof host !== 'string' || !isHostname(host))) {
    return { ok: false, error: `host must be a host name (letters, digits, '-' and dots), got ${describe(host)}` };
  }
  const target = host ?? renderHost(hosts, instanceName);
  if (!isHostname(target))
    return {
      ok: false,
      error: `instanceName ${describe(instanceName)} makes the host name too long (${target.length} > 253)`,
    };
  let at: number | undefined;
  if (typeof publishedAt === 'number') at = Number.isFinite(publishedAt) ? Math.round(publishedAt) : undefined;
  else if (typeof publishedAt === 'string') at = parseIsoTime(publishedAt);
  else return { ok: false, error: 'publishedAt must be an ISO-8601 string or epoch milliseconds' };
  if (at === undefined) {
    return {
      ok: false,
      error: `publishedAt is not an ISO-8601 date-time with a zone (e.g. 2026-01-01T00:00:00Z) or epoch milliseconds: ${describe(publishedAt)}`,
    };
  }
  if (at < MIN_PUBLISHED_AT || at > MAX_PUBLISHED_AT) {
    return { ok: false, error: `publishedAt is out of range (years 0001 to 9999): ${describe(publishedAt)}` };
  }
  // -0 is a valid time but not a value to store.
  return { ok: true, request: { messageId, instanceName, host: target, publishedAt: at === 0 ? 0 : at } };
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
