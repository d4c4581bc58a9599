/** The one redaction helper: credentials out of every URL in a text, whatever its shape. */
import { describe, expect, it } from 'vitest';
import { redactSecrets } from '../../src/core/redact.js';

describe('redactSecrets', () => {
  it.each([
    ['nats://admin:s3cret@h:4222', 'nats://admin:***@h:4222'],
    ['nats://T0KEN@h:4222', 'nats://***@h:4222'],
    ['nats://a:x@h1:4222,nats://b:y@h2:4222', 'nats://a:***@h1:4222,nats://b:***@h2:4222'],
    ['postgres://app:p%40ss@db:5432/x', 'postgres://app:***@db:5432/x'],
    ['postgres://app@db/x', 'postgres://app@db/x'],
    ['postgresql://app:pa/ss@db/x', 'postgresql://app:***@db/x'],
    [
      'postgres://app@db/x?sslmode=require&password=s3cret&application_name=m',
      'postgres://app@db/x?sslmode=require&password=***&application_name=m',
    ],
    ['pg://app:hunter2@h/x', 'pg://app:***@h/x'],
    ['invalid --db "pg://app:hunter2secret@h/x": expected', 'invalid --db "pg://app:***@h/x": expected'],
    ['{"db":"postgres://u:pw@h/x","broker":"nats://t@h"}', '{"db":"postgres://u:***@h/x","broker":"nats://***@h"}'],
    ['at nats://u:pw@h:1: connection refused', 'at nats://u:***@h:1: connection refused'],
    ['no url here', 'no url here'],
    ['sqlite:./mayhem.db', 'sqlite:./mayhem.db'],
    ['https://h/path?token=abc#frag', 'https://h/path?token=***#frag'],
  ])('%s', (input, expected) => {
    expect(redactSecrets(input)).toBe(expected);
  });
});
