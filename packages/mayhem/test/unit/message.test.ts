/** Parsing restart requests at the edge: every malformed payload is a value, never a throw. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  encodeRestartRequest,
  hostnameOf,
  MAX_PUBLISHED_AT,
  MIN_PUBLISHED_AT,
  parseIsoTime,
  parseRestartRequest,
} from '../../src/core/message.js';
import { DEFAULT_HOST_TEMPLATE, parseHostTemplate } from '../../src/core/hostname.js';

const enc = new TextEncoder();
const iso = (ms: number): string => new Date(ms).toISOString();

function error(payload: Uint8Array | string): string {
  const r = parseRestartRequest(payload);
  if (r.ok) throw new Error(`expected a parse error for ${String(payload)}`);
  return r.error;
}

describe('parseRestartRequest', () => {
  it('round-trips the wire form (publishedAt as ISO-8601), from bytes or text', () => {
    const request = { messageId: 'a1', instanceName: 'cattle-x9z0', publishedAt: Date.UTC(2024, 0, 2, 3, 4, 5, 678) };
    const wire = encodeRestartRequest(request);
    expect(JSON.parse(wire)).toEqual({
      messageId: 'a1',
      instanceName: 'cattle-x9z0',
      publishedAt: '2024-01-02T03:04:05.678Z',
    });
    const parsed = { ...request, host: 'cattle-x9z0.example.net' };
    expect(parseRestartRequest(wire)).toEqual({ ok: true, request: parsed });
    expect(parseRestartRequest(enc.encode(wire))).toEqual({ ok: true, request: parsed });
  });

  it('the wire form is JSON.stringify of the request, key for key, whatever the strings and times', () => {
    const text = fc.string({ unit: 'grapheme' });
    fc.assert(
      fc.property(
        text,
        text,
        fc.option(text, { nil: undefined }),
        fc.integer({ min: MIN_PUBLISHED_AT, max: MAX_PUBLISHED_AT }),
        fc.boolean(),
        (messageId, instanceName, host, publishedAt, again) => {
          const request = { messageId, instanceName, host, publishedAt };
          const wire = encodeRestartRequest(request);
          expect(wire).toBe(
            JSON.stringify({
              messageId,
              instanceName,
              ...(host !== undefined && { host }),
              publishedAt: new Date(publishedAt).toISOString(),
            }),
          );
          // The same millisecond again (its ISO text is reused): still its own ids.
          if (again)
            expect(encodeRestartRequest({ ...request, messageId: `${messageId}x` })).toContain(`"${iso(publishedAt)}"`);
        },
      ),
    );
    expect(() => encodeRestartRequest({ messageId: 'a', instanceName: 'b', publishedAt: NaN })).toThrow(RangeError);
  });

  it('a request may carry its host (an FQDN) beside the instance name; names with dots are valid', () => {
    const r = parseRestartRequest(
      JSON.stringify({ messageId: 'a', instanceName: 'web-1.eu', host: 'web-1.prod.example.com', publishedAt: 5 }),
    );
    expect(r).toEqual({
      ok: true,
      request: { messageId: 'a', instanceName: 'web-1.eu', host: 'web-1.prod.example.com', publishedAt: 5 },
    });
    if (r.ok) expect(JSON.parse(encodeRestartRequest(r.request))).toMatchObject({ host: 'web-1.prod.example.com' });
  });

  it('--host-template makes the host of a request without one; the default is {instance}.example.net', () => {
    const wire = JSON.stringify({ messageId: 'a', instanceName: 'web-1', publishedAt: 5 });
    const t = parseHostTemplate('{instance}.prod.example.com');
    expect(parseRestartRequest(wire, t)).toMatchObject({ ok: true, request: { host: 'web-1.prod.example.com' } });
    expect(parseRestartRequest(wire)).toMatchObject({ ok: true, request: { host: 'web-1.example.net' } });
    expect(DEFAULT_HOST_TEMPLATE).toBe('{instance}.example.net');
  });

  it.each([
    ['no placeholder', 'web.example.com', /must contain \{instance\}/],
    ['another placeholder', '{instance}.{zone}.example.com', /unknown placeholder \{zone\}/],
    ['not a host name', '{instance}/x', /does not make a host name/],
  ])('refuses a --host-template with %s', (_name, text, expected) => {
    expect(() => parseHostTemplate(text)).toThrow(expected);
  });

  it('accepts publishedAt as epoch milliseconds and ignores unknown fields', () => {
    const r = parseRestartRequest(JSON.stringify({ messageId: 'a', instanceName: 'h', publishedAt: 5, extra: true }));
    expect(r).toEqual({
      ok: true,
      request: { messageId: 'a', instanceName: 'h', host: 'h.example.net', publishedAt: 5 },
    });
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
    [
      'instanceName with a space',
      { messageId: 'a', instanceName: 'cattle abcd', publishedAt: 1 },
      /instanceName must be a host name/,
    ],
    ['instanceName with an empty label', { messageId: 'a', instanceName: 'web..1', publishedAt: 1 }, /instanceName/],
    ['instanceName ending with a dot', { messageId: 'a', instanceName: 'web-1.', publishedAt: 1 }, /instanceName/],
    [
      'instanceName whose host would pass 253 characters',
      { messageId: 'a', instanceName: Array(4).fill('a'.repeat(62)).join('.'), publishedAt: 1 },
      /makes the host name too long \(263 > 253\)/,
    ],
    [
      'host that is not a host name',
      { messageId: 'a', instanceName: 'web-1', host: 'a b', publishedAt: 1 },
      /^host must/,
    ],
    ['host that is not a string', { messageId: 'a', instanceName: 'web-1', host: 7, publishedAt: 1 }, /^host must/],
    ['instanceName starting with -', { messageId: 'a', instanceName: '-abc', publishedAt: 1 }, /instanceName/],
    [
      'instanceName over 63 characters',
      { messageId: 'a', instanceName: 'a'.repeat(64), publishedAt: 1 },
      /instanceName/,
    ],
    ['missing publishedAt', { messageId: 'a', instanceName: 'h' }, /publishedAt must be/],
    [
      'unparseable publishedAt',
      { messageId: 'a', instanceName: 'h', publishedAt: 'yesterday' },
      /publishedAt is not an ISO-8601 date-time .*: "yesterday"$/,
    ],
    ['boolean publishedAt', { messageId: 'a', instanceName: 'h', publishedAt: true }, /publishedAt must be/],
  ])('rejects a request with %s', (_name, value, expected) => {
    expect(error(JSON.stringify(value))).toMatch(expected);
  });

  it('accepts the longest valid id and instance name', () => {
    const r = parseRestartRequest(
      JSON.stringify({ messageId: 'x'.repeat(200), instanceName: `a${'-'.repeat(61)}b`, publishedAt: 0 }),
    );
    expect(r.ok).toBe(true);
  });

  it('keeps error text to one short line, whatever the payload', () => {
    const e = error(`not json\n${'z'.repeat(500)}`);
    expect(e).not.toContain('\n');
    expect(e.length).toBeLessThan(120);
    expect(e).toMatch(/…"$/);
  });
});

const at = '2026-01-01T00:00:00Z';
const request = (fields: Record<string, unknown>): string =>
  JSON.stringify({ messageId: 'm1', instanceName: 'cattle-ab12', publishedAt: at, ...fields });

describe('parseRestartRequest on hostile input', () => {
  it('a field whose String() throws is a parse error, not a throw (the poison message of issue 9)', () => {
    const poison = '{"messageId":"x1","instanceName":{"toString":1},"publishedAt":"2026-01-01T00:00:00Z"}';
    expect(error(poison)).toBe("instanceName must be a host name (letters, digits, '-' and dots), got an object");
    expect(error(request({ publishedAt: { toString: 1, valueOf: 1 } }))).toMatch(/^publishedAt must be/);
    expect(error(request({ messageId: { toString: 1 } }))).toMatch(/^messageId must be/);
  });

  it.each([
    ['1e308', 1e308],
    ['-1e20', -1e20],
    ['year 10000', Date.UTC(10000, 0, 1)],
    ['one ms before year 0001', MIN_PUBLISHED_AT - 1],
    ['year +275760 as ISO', '+275760-09-13T00:00:00.000Z'],
    ['"1"', '1'],
    ['"2026"', '2026'],
    ['a date without a time', '2026-01-01'],
    ['a time without a zone', '2026-01-01T00:00:00'],
    ['February 31', '2026-02-31T00:00:00Z'],
    ['hour 24', '2026-01-01T24:00:00Z'],
    ['an RFC 2822 date', 'Thu, 01 Jan 2026 00:00:00 GMT'],
    ['year 10000 as ISO', '10000-01-01T00:00:00Z'],
  ])('rejects publishedAt %s (outside what every storage accepts, or not a date-time)', (_name, publishedAt) => {
    expect(error(request({ publishedAt }))).toMatch(/^publishedAt is (?:not an ISO-8601|out of range)/);
  });

  it('accepts publishedAt at the edges of the range, with offsets, fractions and epoch milliseconds', () => {
    const ok = (publishedAt: unknown): number => {
      const r = parseRestartRequest(request({ publishedAt }));
      if (!r.ok) throw new Error(r.error);
      return r.request.publishedAt;
    };
    expect(ok('0001-01-01T00:00:00Z')).toBe(MIN_PUBLISHED_AT);
    expect(ok('9999-12-31T23:59:59.999Z')).toBe(MAX_PUBLISHED_AT);
    expect(ok('2026-01-01T01:30:00+01:30')).toBe(Date.UTC(2026, 0, 1));
    expect(ok('2025-12-31T19:00:00.5-05:00')).toBe(Date.UTC(2026, 0, 1) + 500);
    expect(ok('2024-02-29T00:00:00Z')).toBe(Date.UTC(2024, 1, 29));
    expect(ok(MAX_PUBLISHED_AT)).toBe(MAX_PUBLISHED_AT);
    expect(ok(1767225600000.4)).toBe(1767225600000);
    expect(() => ok('2023-02-29T00:00:00Z')).toThrow(/publishedAt/);
    expect(() => ok(MAX_PUBLISHED_AT + 1)).toThrow(/out of range/);
  });

  it.each([
    ['a NUL byte', 'id\u0000x'],
    ['a newline', 'id\nINFO: forged line'],
    ['a carriage return', 'id\rx'],
    ['an escape sequence', 'id\u001b[31mred'],
    ['DEL', 'id\u007f'],
    ['a C1 control', 'id\u0085x'],
    ['a line separator', 'id\u2028x'],
    ['an unpaired high surrogate', 'id\ud800'],
    ['an unpaired low surrogate', '\udc00id'],
  ])('rejects a messageId with %s', (_name, messageId) => {
    expect(error(request({ messageId }))).toMatch(/^messageId must/);
  });

  it('accepts ids with any other Unicode, including U+FFFD and paired surrogates', () => {
    for (const messageId of ['id\ufffd', 'id😀', 'ünïcödé-ид-标识', 'a b\tc'.replace('\t', ' ')]) {
      expect(parseRestartRequest(request({ messageId })).ok).toBe(true);
    }
  });

  it('rejects a payload too large to be a restart request, before parsing it', () => {
    expect(error(request({ pad: 'x'.repeat(70_000) }))).toMatch(
      /^payload is \d+ bytes, more than 65536 \(--max-message-bytes\)$/,
    );
    // --max-message-bytes moves the limit.
    const small = request({ pad: 'x'.repeat(2000) });
    expect(parseRestartRequest(small).ok).toBe(true);
    expect(parseRestartRequest(small, undefined, 1024)).toEqual({
      ok: false,
      error: `payload is ${Buffer.byteLength(small)} bytes, more than 1024 (--max-message-bytes)`,
    });
  });
});

/** Any JSON value, with the keys and shapes that break naive code (toString, __proto__, ...) mixed in. */
const nasty = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.jsonValue(),
    fc.constantFrom(
      1e308,
      -1e20,
      -0,
      Number.MAX_SAFE_INTEGER,
      '1',
      '',
      'null',
      '2026-02-31T00:00:00Z',
      '\u0000',
      '\ud800',
      '\u2028',
    ),
    fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)) }),
    fc.dictionary(
      fc.constantFrom('toString', 'valueOf', '__proto__', 'constructor', 'toJSON', 'messageId', 'length'),
      tie('value'),
      { maxKeys: 4 },
    ),
    fc.array(tie('value'), { maxLength: 3 }),
  ),
})).value;

const candidate = fc.record(
  {
    messageId: nasty,
    instanceName: fc.oneof(nasty, fc.constantFrom('cattle-ab12', 'a', 'x-y')),
    publishedAt: fc.oneof(
      nasty,
      fc.integer(),
      fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
    ),
  },
  { requiredKeys: [] },
);

function checkResult(payload: Uint8Array | string): void {
  const r = parseRestartRequest(payload);
  if (r.ok) {
    const { messageId, publishedAt } = r.request;
    expect(publishedAt).toBeGreaterThanOrEqual(MIN_PUBLISHED_AT);
    expect(publishedAt).toBeLessThanOrEqual(MAX_PUBLISHED_AT);
    expect(Number.isInteger(publishedAt)).toBe(true);
    expect(Buffer.from(messageId, 'utf8').toString('utf8')).toBe(messageId);
    // eslint-disable-next-line no-control-regex
    expect(messageId).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/);
    // What was accepted can be written out and read back unchanged (dead-letter and retry paths).
    expect(parseRestartRequest(encodeRestartRequest(r.request))).toEqual(r);
  } else {
    expect(typeof r.error).toBe('string');
    expect(r.error).not.toMatch(/[\n\r]/);
    expect(r.error.length).toBeLessThan(200);
  }
}

describe('parseRestartRequest, property-based (fast-check)', () => {
  it('never throws on any JSON text built from hostile values, and what it accepts is valid and round-trips', () => {
    fc.assert(
      fc.property(candidate, (fields) => checkResult(JSON.stringify(fields))),
      { numRuns: 3000 },
    );
  });

  it('never throws on any JSON value at the top level', () => {
    fc.assert(
      fc.property(nasty, (value) => checkResult(JSON.stringify(value) ?? 'undefined')),
      { numRuns: 2000 },
    );
  });

  it('never throws on arbitrary bytes or on a valid payload with bytes flipped, cut or inserted', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => checkResult(bytes)),
      { numRuns: 2000 },
    );
    const valid = new TextEncoder().encode(request({}));
    const mutated = fc
      .tuple(
        fc.array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
        fc.nat(valid.length),
      )
      .map(([flips, cut]) => {
        const b = valid.slice(0, Math.max(1, cut));
        for (const [i, v] of flips) if (i < b.length) b[i] = v;
        return b;
      });
    fc.assert(
      fc.property(mutated, (bytes) => checkResult(bytes)),
      { numRuns: 3000 },
    );
  });

  it('never throws on arbitrary strings, including lone surrogates', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength: 200 }),
        (s) => checkResult(s),
      ),
      { numRuns: 2000 },
    );
  });

  it('parseIsoTime agrees with Date for every valid date-time it is given', () => {
    fc.assert(
      fc.property(
        fc.date({ min: new Date(MIN_PUBLISHED_AT), max: new Date(MAX_PUBLISHED_AT), noInvalidDate: true }),
        (d) => {
          expect(parseIsoTime(d.toISOString())).toBe(d.getTime());
        },
      ),
      { numRuns: 2000 },
    );
  });
});
