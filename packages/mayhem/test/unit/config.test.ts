/** Settings: durations, precedence (flags > env > file > default), and one-line errors naming the culprit. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  ConfigError,
  defaultConfig,
  envName,
  parseDuration,
  resolveConfig,
  SETTINGS,
  type Config,
  type SettingKey,
} from '../../src/config/config.js';
import { defaultMayhemSettings, mayhemSettings } from '../../src/config/mayhem-options.js';
import { renderHost } from '../../src/core/hostname.js';

const dir = mkdtempSync(join(tmpdir(), 'mayhem-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
function file(value: unknown): string {
  const path = join(dir, `config-${files++}.json`);
  writeFileSync(path, typeof value === 'string' ? value : JSON.stringify(value));
  return path;
}

function run(flags: Record<string, unknown> = {}, env: Record<string, string> = {}, configFile?: string): Config {
  return resolveConfig({ flags, env, file: configFile }, 'run');
}

function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    const message = (err as Error).message;
    expect(message).not.toContain('\n');
    return message;
  }
  throw new Error('expected a ConfigError');
}

describe('parseDuration', () => {
  it.each([
    ['250ms', 250],
    ['2s', 2000],
    ['1500', 1500],
    ['0', 0],
    ['1.5s', 1500],
    ['1.5m', 90_000],
    ['1h', 3_600_000],
    [' 2s ', 2000],
  ])('%j is %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(['5x', '', 's', '-1s', '2 seconds', '1e3', '2s5', 'ms'])('%j is not a duration', (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });
});

describe('resolveConfig', () => {
  it('has the documented defaults', () => {
    expect(run()).toMatchObject({
      broker: 'memory',
      db: 'sqlite:./mayhem.db',
      maxInFlight: 1000,
      extendEvery: 2000,
      ackDeadline: 10_000,
      restartAttempts: 3,
      maxDeliveries: 5,
      publishRate: 2,
      count: undefined,
      restartLatency: 1000,
      restartFailureRate: 0.25,
      saveFailureRate: 0,
      grace: 5000,
      dryRun: false,
      logLevel: 'info',
      malformedEvery: undefined,
    });
  });

  it('takes flags over env over file over defaults, setting by setting', () => {
    const configFile = file({ maxInFlight: 10, grace: '1s', 'restart-attempts': 7, extendEvery: 300 });
    const c = run({ maxInFlight: '30' }, { MAYHEM_MAX_IN_FLIGHT: '20', MAYHEM_GRACE: '2s' }, configFile);
    expect(c.maxInFlight).toBe(30);
    expect(c.grace).toBe(2000);
    expect(c.restartAttempts).toBe(7);
    expect(c.extendEvery).toBe(300);
    expect(c.saveAttempts).toBe(3);
    expect(run({}, { MAYHEM_MAX_IN_FLIGHT: '20' }, configFile).maxInFlight).toBe(20);
    expect(run({}, {}, configFile).maxInFlight).toBe(10);
  });

  it('reads durations from flags, env and file alike (a bare number is milliseconds)', () => {
    expect(run({ extendEvery: '250ms' }).extendEvery).toBe(250);
    expect(run({}, { MAYHEM_EXTEND_EVERY: '3s' }).extendEvery).toBe(3000);
    expect(run({ extendEvery: '400' }).extendEvery).toBe(400);
    expect(run({}, {}, file({ extendEvery: 700 })).extendEvery).toBe(700);
  });

  it('reads booleans and the fault-injection setting', () => {
    expect(run({ dryRun: true }).dryRun).toBe(true);
    expect(run({}, { MAYHEM_DRY_RUN: 'false' }).dryRun).toBe(false);
    expect(run({ malformedEvery: '10' }).malformedEvery).toBe(10);
  });

  it('names env variables after the flag', () => {
    expect(envName('max-in-flight')).toBe('MAYHEM_MAX_IN_FLIGHT');
  });

  it.each([
    [{ maxInFlight: 'abc' }, 'invalid --max-in-flight "abc": expected a whole number from 1 to 1000000'],
    [{ maxInFlight: '0' }, 'invalid --max-in-flight "0": expected a whole number from 1 to 1000000'],
    [{ maxInFlight: '2.5' }, 'invalid --max-in-flight "2.5": expected a whole number from 1 to 1000000'],
    [
      { extendEvery: '5x' },
      'invalid --extend-every "5x": expected a duration like 250ms, 2s or 1m (a bare number is ms), at least 10ms and at most 1h',
    ],
    [{ restartFailureRate: '1.5' }, 'invalid --restart-failure-rate "1.5": expected a number from 0 to 1'],
    [{ logLevel: 'loud' }, 'invalid --log-level "loud": expected trace, debug, info, warn, error, fatal, silent'],
    [
      { statsd: 'localhost' },
      'invalid --statsd "localhost": expected host:port with a port from 1 to 65535, e.g. 127.0.0.1:8125',
    ],
    [{ malformedEvery: '0' }, 'invalid --malformed-every "0": expected a whole number from 1 to 1000000000'],
    [{ dryRun: 'maybe' }, 'invalid --dry-run "maybe": expected true or false'],
  ])('rejects flags %j with one line naming the flag and what is allowed', (flags, message) => {
    expect(errorOf(() => run(flags))).toBe(message);
  });

  it('names the env variable or the file key that holds a bad value', () => {
    expect(errorOf(() => run({}, { MAYHEM_GRACE: 'soon' }))).toMatch(
      /^invalid MAYHEM_GRACE "soon": expected a duration/,
    );
    const configFile = file({ maxInFlight: 'lots' });
    expect(errorOf(() => run({}, {}, configFile))).toBe(
      `invalid "maxInFlight" in ${configFile} "lots": expected a whole number from 1 to 1000000`,
    );
  });

  it('rejects unreadable, non-JSON, non-object files and unknown keys', () => {
    expect(errorOf(() => run({}, {}, join(dir, 'missing.json')))).toMatch(
      /^cannot read config file .*missing\.json: ENOENT$/,
    );
    expect(errorOf(() => run({}, {}, file('{ nope')))).toMatch(/is not valid JSON/);
    expect(errorOf(() => run({}, {}, file([1, 2])))).toMatch(/must hold a JSON object/);
    expect(errorOf(() => run({}, {}, file({ maxInflight: 3 })))).toMatch(/unknown setting "maxInflight"/);
  });

  it('checks settings against each other and the --db and --broker schemes', () => {
    expect(errorOf(() => run({ extendEvery: '10s', ackDeadline: '10s' }))).toMatch(
      /^--extend-every \(10000ms\) must be shorter than --ack-deadline \(10000ms\)/,
    );
    expect(errorOf(() => run({ db: 'mysql://x' }))).toBe(
      'invalid --db "mysql://x": expected sqlite:<path>, postgres://user@host:port/db or memory:',
    );
    expect(errorOf(() => run({ broker: 'kafka://x' }))).toMatch(/^invalid --broker "kafka:\/\/x"/);
    expect(run({ db: 'memory:' }).db).toBe('memory:');
    expect(run({ broker: 'nats://a:4222,nats://b:4222' }).broker).toBe('nats://a:4222,nats://b:4222');
  });
});

describe('the table is the one source of defaults', () => {
  it('defaultConfig() is what resolveConfig gives when nothing is given, setting by setting', () => {
    const defaults = defaultConfig();
    expect(defaults).toEqual(run());
    for (const [key, s] of Object.entries(SETTINGS) as [SettingKey, { default?: unknown }][]) {
      if (s.default === undefined) expect(defaults[key], key).toBeUndefined();
      else expect(defaults[key], key).not.toBeUndefined();
    }
  });

  it("gives createMayhem the table's defaults, with the caps the help texts promise", () => {
    const m = defaultMayhemSettings();
    expect(m).toMatchObject({
      extendEveryMs: 2000,
      restartAttempts: 3,
      saveAttempts: 3,
      maxDeliveries: 5,
      retryBackoff: { baseMs: 100, maxMs: 2000 },
      nackBackoff: { baseMs: 1000, maxMs: 60_000 },
      dryRun: false,
      inDoubt: 'skip',
      maxInFlight: 1000,
      maxMessageBytes: 64 * 1024,
    });
    expect(renderHost(m.hostTemplate, 'cattle-1')).toBe('cattle-1.example.net');
  });

  it('maps every given setting onto the core knob it drives', () => {
    const m = mayhemSettings(
      run({
        extendEvery: '300ms',
        restartAttempts: '4',
        saveAttempts: '6',
        maxDeliveries: '9',
        retryBackoff: '50ms',
        nackDelay: '2s',
        dryRun: 'true',
        inDoubt: 'restart',
        maxInFlight: '7',
        maxMessageBytes: '2KiB',
        hostTemplate: '{instance}.prod.example.com',
      }),
    );
    expect(m).toMatchObject({
      extendEveryMs: 300,
      restartAttempts: 4,
      saveAttempts: 6,
      maxDeliveries: 9,
      retryBackoff: { baseMs: 50, maxMs: 1000 },
      nackBackoff: { baseMs: 2000, maxMs: 60_000 },
      dryRun: true,
      inDoubt: 'restart',
      maxInFlight: 7,
      maxMessageBytes: 2048,
    });
    expect(renderHost(m.hostTemplate, 'a')).toBe('a.prod.example.com');
  });
});
