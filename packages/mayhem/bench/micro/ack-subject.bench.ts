/**
 * brokers/nats/ack-subject.ts: reading the delivery count and stream sequence of a JetStream ack
 * subject by scanning it in place against splitting it on dots (one string per token), once per
 * delivery. Run with --expose-gc (npm run bench:micro does) to see the heap figure per call.
 */
import { bench, do_not_optimize, group, run, summary } from 'mitata';
import { ACK_SUBJECT_PREFIX, parseAckSubject, type AckInfo } from '../../src/brokers/nats/ack-subject.js';

/** The same rules by `split`: the alternative the comment names. */
function parseBySplit(subject: string): AckInfo | undefined {
  if (!subject.startsWith(ACK_SUBJECT_PREFIX)) return undefined;
  const tokens = subject.split('.');
  if (tokens.length !== 9 && tokens.length < 11) return undefined;
  const at = tokens.length === 9 ? 4 : 6;
  const deliveryCount = positive(tokens[at]!);
  const streamSequence = positive(tokens[at + 1]!);
  if (deliveryCount === 0 || streamSequence === 0) return undefined;
  return { deliveryCount, streamSequence };
}
function positive(token: string): number {
  if (!/^\d{1,16}$/.test(token)) return 0;
  const n = Number(token);
  return Number.isSafeInteger(n) && n > 0 ? n : 0;
}

const v1 = Array.from(
  { length: 256 },
  (_, i) => `$JS.ACK.restarts.mayhem.${1 + (i % 3)}.${1_000_000 + i}.${900_000 + i}.1732982400000000000.${i % 50}`,
);
const v2 = Array.from(
  { length: 256 },
  (_, i) =>
    `$JS.ACK.hub.ACCHASH.restarts.mayhem.${1 + (i % 3)}.${1_000_000 + i}.${900_000 + i}.1732982400000000000.${i % 50}.tok${i}`,
);
for (const s of [...v1, ...v2]) {
  const a = parseAckSubject(s);
  const b = parseBySplit(s);
  if (
    a === undefined ||
    b === undefined ||
    a.deliveryCount !== b.deliveryCount ||
    a.streamSequence !== b.streamSequence
  )
    throw new Error(`the two parsers disagree on ${s}`);
}
let i = 0;

group('parse one ack subject (v1, 9 tokens)', () => {
  summary(() => {
    bench('scan in place (parseAckSubject)', () => do_not_optimize(parseAckSubject(v1[i++ & 255]!)));
    bench('split on dots', () => do_not_optimize(parseBySplit(v1[i++ & 255]!)));
  });
});

group('parse one ack subject (v2, 12 tokens)', () => {
  summary(() => {
    bench('scan in place (parseAckSubject)', () => do_not_optimize(parseAckSubject(v2[i++ & 255]!)));
    bench('split on dots', () => do_not_optimize(parseBySplit(v2[i++ & 255]!)));
  });
});

await run();
