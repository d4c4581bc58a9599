import { describe, expect, it } from 'vitest';
import { OptionsError, optionsFromEnv } from '../src/options.js';

describe('optionsFromEnv', () => {
  it('defaults: off, 100 ms, text', () => {
    expect(optionsFromEnv({})).toEqual({ mode: 'off', slowMs: 100, format: 'text' });
  });
  it('reads every variable', () => {
    expect(
      optionsFromEnv({
        LOOPWATCH: 'debug',
        LOOPWATCH_SLOW_MS: '50',
        LOOPWATCH_FORMAT: 'json',
        LOOPWATCH_MONITOR_MS: '2000',
        LOOPWATCH_STATSD: 'localhost:8125',
      }),
    ).toEqual({ mode: 'debug', slowMs: 50, format: 'json', monitorMs: 2000, statsd: 'localhost:8125' });
    expect(optionsFromEnv({ LOOPWATCH: 'production' }).mode).toBe('production');
  });
  it.each([
    [{ LOOPWATCH: 'verbose' }, 'LOOPWATCH="verbose" must be debug, production or off'],
    [{ LOOPWATCH_SLOW_MS: '-1' }, 'LOOPWATCH_SLOW_MS="-1" is not a positive number'],
    [{ LOOPWATCH_FORMAT: 'xml' }, 'LOOPWATCH_FORMAT="xml" must be text or json'],
    [{ LOOPWATCH_STATSD: 'localhost' }, 'LOOPWATCH_STATSD="localhost" must be host:port'],
    [{ LOOPWATCH_MONITOR_MS: 'soon' }, 'LOOPWATCH_MONITOR_MS="soon" is not a positive number'],
  ])('rejects %j with one clear line', (env, text) => {
    expect(() => optionsFromEnv(env)).toThrow(OptionsError);
    expect(() => optionsFromEnv(env)).toThrow(text);
  });
});
