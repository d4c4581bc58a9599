/** Reading the delivery count and stream sequence from JetStream ack subjects (pure; no server). */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parseAckSubject } from '../../src/brokers/nats/ack-subject.js';

describe('parseAckSubject', () => {
  it.each([
    // v1: $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>
    ['v1, first delivery', '$JS.ACK.MAYHEM.mayhem.1.42.7.1700000000000000000.3', 1, 42],
    ['v1, redelivered', '$JS.ACK.T1-x_y.d1.3.1000.12.1700000000000000000.0', 3, 1000],
    // v2: $JS.ACK.<domain>.<account hash>.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>[.<token>]
    ['v2, no domain, no token', '$JS.ACK._.ACCHASH.MAYHEM.mayhem.2.77.9.1700000000000000000.5', 2, 77],
    ['v2, domain and token', '$JS.ACK.hub.ABCDEF123.MAYHEM.mayhem.5.123456.99.1700000000000000000.0.Xy9kq', 5, 123456],
    ['v2, later tokens ignored', '$JS.ACK.hub.ABC.S.C.1.2.3.4.5.tok.more', 1, 2],
    ['largest safe sequence', `$JS.ACK.S.C.1.${Number.MAX_SAFE_INTEGER}.1.1.0`, 1, Number.MAX_SAFE_INTEGER],
  ])('%s', (_what, subject, deliveryCount, streamSequence) => {
    expect(parseAckSubject(subject)).toEqual({ deliveryCount, streamSequence });
  });

  it.each([
    ['empty', ''],
    ['an ordinary subject', 'mayhem.restart'],
    ['an inbox', '_INBOX.abc.1'],
    ['the prefix alone', '$JS.ACK.'],
    ['another JetStream API', '$JS.API.CONSUMER.MSG.NEXT.S.C.1.2.3'],
    ['lower case', '$js.ack.S.C.1.2.3.4.5'],
    ['8 tokens', '$JS.ACK.S.C.1.2.3.4'],
    ['10 tokens', '$JS.ACK.S.C.1.2.3.4.5.6'],
    ['delivered not a number', '$JS.ACK.S.C.x.2.3.4.5'],
    ['delivered zero', '$JS.ACK.S.C.0.2.3.4.5'],
    ['sequence zero', '$JS.ACK.S.C.1.0.3.4.5'],
    ['sequence empty', '$JS.ACK.S.C.1..3.4.5'],
    ['sequence negative', '$JS.ACK.S.C.1.-2.3.4.5'],
    ['sequence with a sign', '$JS.ACK.S.C.1.+2.3.4.5'],
    ['sequence in exponent form', '$JS.ACK.S.C.1.1e3.3.4.5'],
    ['sequence with a space', '$JS.ACK.S.C.1. 2.3.4.5'],
    ['sequence past 2^53', '$JS.ACK.S.C.1.9007199254740993.3.4.5'],
    ['sequence of 17 digits', '$JS.ACK.S.C.1.10000000000000000.3.4.5'],
    ['v2 with the counts shifted', '$JS.ACK.hub.ABC.S.C.x.y.1.2.3'],
  ])('%s is not an ack subject: %j', (_what, subject) => {
    expect(parseAckSubject(subject)).toBeUndefined();
  });

  it('reads back any count and sequence in either shape', () => {
    const name = fc.stringMatching(/^[A-Za-z0-9_-]{1,12}$/);
    const positive = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER });
    fc.assert(
      fc.property(
        fc.boolean(),
        name,
        name,
        name,
        positive,
        positive,
        fc.nat(),
        fc.option(name, { nil: undefined }),
        (v2, stream, consumer, account, delivered, sseq, pending, token) => {
          const head = v2 ? `$JS.ACK._.${account}.${stream}.${consumer}` : `$JS.ACK.${stream}.${consumer}`;
          const tail = v2 && token !== undefined ? `.${token}` : '';
          const subject = `${head}.${delivered}.${sseq}.${pending + 1}.1700000000000000000.${pending}${tail}`;
          expect(parseAckSubject(subject)).toEqual({ deliveryCount: delivered, streamSequence: sseq });
        },
      ),
    );
  });
});
