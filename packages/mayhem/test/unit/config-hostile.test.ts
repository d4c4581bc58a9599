/**
 * Settings as a careless user or an attacker gives them: nulls, huge durations, a BOM, duplicate
 * keys, bad ports, credentials in URLs. Every one is a single line naming where the value came
 * from (flag, variable or file), and no secret is echoed.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  ConfigError,
  formatDuration,
  parseBytes,
  resolveConfig,
  SETTINGS,
  TIMER_MAX_MS,
  type Config,
} from '../../src/config/config.js';

const dir = mkdtempSync(join(tmpdir(), 'mayhem-config-hostile-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
function file(text: string): string {
  const path = join(dir, `config-${files++}.json`);
  writeFileSync(path, text);
  return path;
}

function run(
  flags: Record<string, unknown> = {},
  env: Record<string, string> = {},
  configFile?: string,
  command: 'run' | 'publish' = 'run',
): Config {
  return resolveConfig({ flags, env, file: configFile }, command);
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

describe('null in a config file is a bad value, not "unset"', () => {
  it.each(['restartAttempts', 'maxDeliveries', 'maxInFlight', 'extendEvery', 'db', 'dryRun', 'max-in-flight'])(
    '%s: null',
    (key) => {
      const path = file(JSON.stringify({ [key]: null }));
      expect(errorOf(() => run({}, {}, path))).toMatch(
        new RegExp(`^invalid "${key}" in ${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} null: expected `),
      );
    },
  );

  it('a setting given under both of its names is refused', () => {
    const path = file(JSON.stringify({ maxInFlight: 5, 'max-in-flight': 6 }));
    expect(errorOf(() => run({}, {}, path))).toBe(
      `config file ${path}: "maxInFlight" and "max-in-flight" are the same setting; keep one`,
    );
  });

  it('a flag or variable still wins over a null in the file (the file value is never used)', () => {
    const path = file(JSON.stringify({ restartAttempts: null }));
    expect(run({ restartAttempts: '4' }, {}, path).restartAttempts).toBe(4);
  });
});

describe('every duration has a maximum below the timer limit', () => {
  const durations = Object.entries(SETTINGS).filter(([, s]) => s.kind === 'duration') as [
    string,
    { flag: string; max?: number; min?: number },
  ][];

  it.each(durations)('%s', (key, s) => {
    expect(s.max, `${key} needs a max`).toBeDefined();
    const max = s.max as number;
    // Those that become timers stay below 2^31 ms (beyond it Node fires after 1 ms); ages compared
    // with timestamps (stream limits, retention windows, audit --since) do not become timers.
    if (!['deadLetterMaxAge', 'retention', 'deadLetterRetention', 'since'].includes(key))
      expect(max).toBeLessThan(TIMER_MAX_MS);
    // The maximum itself is accepted, one ms more is not.
    const flags = { ackDeadline: '12h', [key]: String(max) };
    expect((run(flags) as unknown as Record<string, number>)[key]).toBe(max);
    expect(errorOf(() => run({ [key]: String(max + 1) }))).toMatch(
      new RegExp(`^invalid --${s.flag} "${max + 1}": expected a duration .* at most ${formatDuration(max)}$`),
    );
  });

  it('the values of issue 9 are refused: --grace and --ack-deadline 3000000000, a huge --status-every', () => {
    expect(errorOf(() => run({ grace: '3000000000' }))).toMatch(/^invalid --grace "3000000000": .*at most 1h$/);
    expect(errorOf(() => run({ ackDeadline: '3000000000' }))).toMatch(
      /^invalid --ack-deadline "3000000000": .*at most 12h$/,
    );
    expect(errorOf(() => run({}, { MAYHEM_STATUS_EVERY: '30d' }))).toMatch(
      /^invalid MAYHEM_STATUS_EVERY "30d": .*at most 1d$/,
    );
    expect(errorOf(() => run({ monitorTasksMs: '99999999999999999999h' }))).toMatch(/^invalid --monitor-tasks-ms/);
  });

  it('parses days and sizes for the dead-letter limits', () => {
    expect(run().deadLetterMaxAge).toBe(30 * 86_400_000);
    expect(run().deadLetterMaxBytes).toBe(2 ** 30);
    expect(run({ deadLetterMaxAge: '7d', deadLetterMaxBytes: '512MB' })).toMatchObject({
      deadLetterMaxAge: 7 * 86_400_000,
      deadLetterMaxBytes: 512e6,
    });
    expect(parseBytes('1GiB')).toBe(2 ** 30);
    expect(parseBytes('1.5kb')).toBe(1500);
    expect(parseBytes('lots')).toBeUndefined();
  });
});

describe('a config file as editors write it', () => {
  it('accepts a UTF-8 byte order mark', () => {
    const path = file('\ufeff{"maxInFlight": 7}');
    expect(run({}, {}, path).maxInFlight).toBe(7);
  });
});

describe('booleans', () => {
  it.each([
    ['true', true],
    ['false', false],
    [true, true],
    [false, false],
    ['1', true],
    ['no', false],
  ])('--dry-run %j', (value, expected) => {
    expect(run({ dryRun: value }, { MAYHEM_DRY_RUN: String(!expected) }).dryRun).toBe(expected);
  });
});

describe('errors name the variable or the file that holds the value', () => {
  it('--db from MAYHEM_DB or the file', () => {
    expect(errorOf(() => run({}, { MAYHEM_DB: 'mysql://x' }))).toBe(
      'invalid MAYHEM_DB "mysql://x": expected sqlite:<path>, postgres://user@host:port/db or memory:',
    );
    const path = file(JSON.stringify({ db: 'mysql://x' }));
    expect(errorOf(() => run({}, {}, path))).toBe(
      `invalid "db" in ${path} "mysql://x": expected sqlite:<path>, postgres://user@host:port/db or memory:`,
    );
  });

  it('--broker from MAYHEM_BROKER, for publish too', () => {
    expect(errorOf(() => run({}, { MAYHEM_BROKER: 'kafka://x' }, undefined, 'publish'))).toMatch(
      /^invalid MAYHEM_BROKER "kafka:\/\/x"/,
    );
  });

  it('the extend-every / ack-deadline check names where each came from', () => {
    expect(errorOf(() => run({ ackDeadline: '2s' }, { MAYHEM_EXTEND_EVERY: '3s' }))).toMatch(
      /^MAYHEM_EXTEND_EVERY \(3000ms\) must be shorter than --ack-deadline \(2000ms\)/,
    );
  });
});

describe('hosts and ports', () => {
  it.each(['h:0', 'h:65536', 'h:', ':8125', 'h', 'a b:1'])('--statsd %j is refused', (v) => {
    expect(errorOf(() => run({ statsd: v }))).toMatch(/^invalid --statsd .*port from 1 to 65535/);
  });

  it.each(['localhost:8125', '127.0.0.1:1', '[::1]:65535', 'statsd.internal:8125'])('--statsd %j is accepted', (v) => {
    expect(run({ statsd: v }).statsd).toBe(v);
  });

  it.each(['nats://h:99999', 'nats://h:0', 'nats://', 'nats://h:4222,http://x', 'nats://h:4222,', 'nats:// h'])(
    '--broker %j is refused at start',
    (v) => {
      expect(errorOf(() => run({ broker: v }))).toMatch(/^invalid --broker .*expected memory or nats:\/\/host:port/);
    },
  );

  it.each(['nats://h', 'nats://u:p@h:4222', 'nats://a:4222, nats://b:4223'])('--broker %j is accepted', (v) => {
    expect(run({ broker: v }).broker).toBe(v);
  });

  it('--db sqlite: with no path is refused (it would keep nothing); postgres URLs must parse', () => {
    expect(errorOf(() => run({ db: 'sqlite:' }))).toMatch(/^invalid --db "sqlite:": sqlite: needs a file path/);
    expect(errorOf(() => run({ db: 'sqlite:  ' }))).toMatch(/needs a file path/);
    expect(errorOf(() => run({ db: 'postgres://u:p@h:99999/x' }))).toMatch(
      /^invalid --db "postgres:\/\/u:\*\*\*@h:99999\/x": not a valid URL/,
    );
    // PG* variables fill what the URL leaves out (PGHOST, PGUSER, PGPASSWORD, ...).
    expect(run({ db: 'postgres://' }).db).toBe('postgres://');
  });
});

describe('no secret in a config error', () => {
  it.each([
    [{ db: 'pg://app:hunter2secret@db.example/x' }, 'hunter2secret'],
    [{ db: 'mysql://root:hunter2secret@db/x' }, 'hunter2secret'],
    [{ db: 'postgres://app@db:99999/x?password=hunter2secret&sslmode=require' }, 'hunter2secret'],
    [{ broker: 'nats://admin:NatsS3cret@h:99999' }, 'NatsS3cret'],
    [{ broker: 'nats://TOKENs3cret@h:0' }, 'TOKENs3cret'],
    [{ broker: 'nats://a:4222,nats://u:NatsS3cret@b:99999' }, 'NatsS3cret'],
  ])('%j', (flags, secret) => {
    const message = errorOf(() => run(flags));
    expect(message).not.toContain(secret);
    expect(message).toContain('***');
  });
});

describe('credential files', () => {
  it('--nats-creds, --nats-nkey and --nats-token-file must name readable files', () => {
    const token = join(dir, 'token');
    writeFileSync(token, 's3cret\n');
    expect(run({ natsTokenFile: token }, {}, undefined, 'publish').natsTokenFile).toBe(token);
    expect(errorOf(() => run({ natsCreds: join(dir, 'missing.creds') }))).toMatch(
      /^invalid --nats-creds ".*missing\.creds": expected the path of a readable file$/,
    );
    expect(errorOf(() => run({}, { MAYHEM_NATS_NKEY: dir }))).toMatch(/^invalid MAYHEM_NATS_NKEY .*readable file$/);
    if (process.getuid?.() !== 0) {
      chmodSync(token, 0o000);
      expect(errorOf(() => run({ natsTokenFile: token }))).toMatch(/readable file/);
    }
  });
});

describe('the memory broker backlog', () => {
  it('defaults to 10,000 and is validated', () => {
    expect(run().maxBacklog).toBe(10_000);
    expect(run({}, { MAYHEM_MAX_BACKLOG: '500' }).maxBacklog).toBe(500);
    expect(errorOf(() => run({ maxBacklog: '0' }))).toBe(
      'invalid --max-backlog "0": expected a whole number from 1 to 10000000',
    );
  });
});
