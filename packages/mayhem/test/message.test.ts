/** Parsing restart requests at the edge: every malformed payload is a value, never a throw. */
import { describe, expect, it } from 'vitest';
import { encodeRestartRequest, hostnameOf, parseRestartRequest } from '../src/core/message.js';

const enc = new TextEncoder();

function error(payload: Uint8Array | string): string {
  const r = parseRestartRequest(payload);
  if (r.ok) throw new Error(`expected a parse error for ${String(payload)}`);
  return r.error;
}

describe('parseRestartRequest', () => {
  it('round-trips the wire form (publishedAt as ISO-8601), from bytes or text', () => {
    const request = { messageId: 'a1', instanceName: 'cattle-x9z0', publishedAt: Date.UTC(2024, 0, 2, 3, 4, 5, 678) };
    const wire = encodeRestartRequest(request);
    expect(JSON.parse(wire)).toEqual({ messageId: 'a1', instanceName: 'cattle-x9z0', publishedAt: '2024-01-02T03:04:05.678Z' });
    expect(parseRestartRequest(wire)).toEqual({ ok: true, request });
    expect(parseRestartRequest(enc.encode(wire))).toEqual({ ok: true, request });
  });

  it('accepts publishedAt as epoch milliseconds and ignores unknown fields', () => {
    const r = parseRestartRequest(JSON.stringify({ messageId: 'a', instanceName: 'h', publishedAt: 5, extra: true }));
    expect(r).toEqual({ ok: true, request: { messageId: 'a', instanceName: 'h', publishedAt: 5 } });
  });

  it('the host is <instanceName>.example.net', () => {
    expect(hostnameOf({ instanceName: 'cattle-abcd' })).toBe('cattle-abcd.example.net');
  });

  it.each([
    ['invalid UTF-8', new Uint8Array([0xc3, 0x28]), /not valid UTF-8/],
    ['empty', '', /not JSON/],
    ['not JSON', 'restart cattle-abcd please', /^payload is not JSON: "restart cattle-abcd please"$/],
    ['truncated JSON', '{"messageId":"a"', /not JSON/],
    ['null', 'null', /not a JSON object/],
    ['an array', '[{"messageId":"a"}]', /not a JSON object/],
    ['a string', '"hello"', /not a JSON object/],
    ['a number', '42', /not a JSON object/],
  ])('rejects a payload that is %s', (_name, payload, expected) => {
    expect(error(payload)).toMatch(expected);
  });

  it.each([
    ['missing messageId', { instanceName: 'h', publishedAt: 1 }, /messageId/],
    ['empty messageId', { messageId: '', instanceName: 'h', publishedAt: 1 }, /messageId/],
    ['numeric messageId', { messageId: 7, instanceName: 'h', publishedAt: 1 }, /messageId/],
    ['messageId over 200 characters', { messageId: 'x'.repeat(201), instanceName: 'h', publishedAt: 1 }, /at most 200/],
    ['missing instanceName', { messageId: 'a', publishedAt: 1 }, /instanceName/],
    ['instanceName with a space', { messageId: 'a', instanceName: 'cattle abcd', publishedAt: 1 }, /instanceName must be a hostname label/],
    ['instanceName with a dot', { messageId: 'a', instanceName: 'evil.com', publishedAt: 1 }, /instanceName/],
    ['instanceName starting with -', { messageId: 'a', instanceName: '-abc', publishedAt: 1 }, /instanceName/],
    ['instanceName over 63 characters', { messageId: 'a', instanceName: 'a'.repeat(64), publishedAt: 1 }, /instanceName/],
    ['missing publishedAt', { messageId: 'a', instanceName: 'h' }, /publishedAt must be/],
    ['unparseable publishedAt', { messageId: 'a', instanceName: 'h', publishedAt: 'yesterday' }, /publishedAt is not a valid time: "yesterday"/],
    ['boolean publishedAt', { messageId: 'a', instanceName: 'h', publishedAt: true }, /publishedAt must be/],
  ])('rejects a request with %s', (_name, value, expected) => {
    expect(error(JSON.stringify(value))).toMatch(expected);
  });

  it('accepts the longest valid id and instance name', () => {
    const r = parseRestartRequest(JSON.stringify({ messageId: 'x'.repeat(200), instanceName: `a${'-'.repeat(61)}b`, publishedAt: 0 }));
    expect(r.ok).toBe(true);
  });

  it('keeps error text to one short line, whatever the payload', () => {
    const e = error(`not json\n${'z'.repeat(500)}`);
    expect(e).not.toContain('\n');
    expect(e.length).toBeLessThan(120);
    expect(e).toMatch(/…"$/);
  });
});
