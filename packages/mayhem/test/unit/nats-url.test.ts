/**
 * The one reader of `--broker nats://…`: config validation and the adapter share it, so what the
 * service connects to is exactly what was checked at start.
 */
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { openBroker, openPublisher } from '../../src/brokers/open.js';
import { parseNatsUrls } from '../../src/brokers/nats/url.js';

describe('parseNatsUrls', () => {
  it.each([
    ['nats://h', ['nats://h']],
    ['nats://127.0.0.1:4222', ['nats://127.0.0.1:4222']],
    ['nats://[::1]:65535', ['nats://[::1]:65535']],
    ['nats://u:p@h:4222', ['nats://u:p@h:4222']],
    ['nats://TOKEN@h:1', ['nats://TOKEN@h:1']],
    ['nats://a:4222, nats://b:4223', ['nats://a:4222', 'nats://b:4223']],
    [' nats://a:4222 ,nats://b ', ['nats://a:4222', 'nats://b']],
  ])('%j → %j (trimmed, credentials kept for the connection)', (text, servers) => {
    expect(parseNatsUrls(text)).toEqual(servers);
  });

  it.each([
    '',
    ' ',
    'memory',
    'h:4222',
    'nats://',
    'nats://:4222',
    'nats://h:0',
    'nats://h:65536',
    'nats://h:99999',
    'nats://h:x',
    'http://h:4222',
    'tls://h:4222',
    'nats://h:4222,http://x',
    'nats://h:4222,',
    ',nats://h:4222',
    'nats://a,,nats://b',
    'nats:// h',
    'nats://h :4222',
    'nats://h\t:1',
  ])('%j is refused', (text) => {
    expect(parseNatsUrls(text)).toBeUndefined();
  });
});

describe('the adapter uses the same reader', () => {
  const logger = pino({ level: 'silent' });
  const common = { logger, stream: 'S', subject: 's', replicas: 1 };

  it('openBroker refuses a list config would refuse, in one line with the password redacted, without connecting', async () => {
    const err = await openBroker({
      ...common,
      url: 'nats://u:S3cret@h:4222,http://x',
      ackDeadlineMs: 1000,
      maxInFlight: 1,
      maxDeliveries: 1,
      durable: 'd',
      deadLetterSubject: 'x',
    }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err?.message).toMatch(
      /^invalid --broker "nats:\/\/u:\*\*\*@h:4222,http:\/\/x": expected nats:\/\/host:port/,
    );
    expect(err?.message).not.toContain('S3cret');
  });

  it('openPublisher too', async () => {
    await expect(openPublisher({ ...common, url: 'nats://h:0' })).rejects.toThrow(/^invalid --broker "nats:\/\/h:0"/);
  });
});
