/**
 * `--restart-headers <file>`: extra request headers for the webhook, one `Name: value` per line
 * (`#` comments and blank lines allowed), like curl's `-H @file`. The values are usually secrets
 * (`Authorization: Bearer …`): no error, log line or record ever shows one — errors name the file,
 * the line and the header, never the value.
 */
import { createHash } from 'node:crypto';

// RFC 9110 token characters.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Set by mayhem or by the HTTP layer itself: a file must not override them.
const RESERVED = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'upgrade',
  'content-type',
  'idempotency-key',
  'te',
  'trailer',
  'expect',
]);

/** Parse the file's text; throws an Error with a one-line reason naming `path` and the line. */
export function parseHeaders(text: string, path: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r$/, '');
    if (line.trim() === '' || line.trimStart().startsWith('#')) continue;
    const at = `${path} line ${i + 1}`;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new Error(`${at}: expected "Name: value"`);
    const name = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    if (!TOKEN.test(name)) throw new Error(`${at}: ${JSON.stringify(name.slice(0, 40))} is not a valid header name`);
    const lower = name.toLowerCase();
    if (RESERVED.has(lower))
      throw new Error(`${at}: header ${name} is set by mayhem or by HTTP itself and cannot come from the file`);
    // eslint-disable-next-line no-control-regex
    if (/[\u0000-\u0008\u000a-\u001f\u007f]/.test(value))
      throw new Error(`${at}: the value of ${name} holds a control character`);
    if (lower in out) throw new Error(`${at}: header ${name} is given twice`);
    out[lower] = value;
  }
  return out;
}

/**
 * The `Idempotency-Key` of a message: its messageId when that is a valid header value, else a hash
 * of it (the same for every attempt and redelivery either way).
 */
export function idempotencyKey(messageId: string): string {
  return /^[\x21-\x7e]{1,200}$/.test(messageId)
    ? messageId
    : `sha256-${createHash('sha256').update(messageId).digest('hex')}`;
}
