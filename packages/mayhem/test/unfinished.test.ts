/**
 * A SIGKILL on the embedded default loses what the in-memory broker held; the next start says what
 * the database shows was left unfinished. The real CLI, killed for real; counts checked against the
 * database.
 */
import { spawn, spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { query, tempDir } from './sqlite-helpers.js';

const MAIN = resolve(dirname(fileURLToPath(import.meta.url)), '../dist/src/cli/main.js');
const tmp = tempDir();
afterAll(() => tmp.cleanup());

interface Line {
  level: number;
  msg: string;
  unfinished?: Record<string, number>;
}

const lines = (out: string): Line[] =>
  out
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Line);

describe('what earlier runs left unfinished', () => {
  it('is reported on the next start, matching the database', async () => {
    const db = join(tmp.dir, 'killed.db');
    const args = [
      'run',
      '--db',
      `sqlite:${db}`,
      '--publish-rate',
      '0',
      '--restart-latency',
      '300ms',
      '--restart-failure-rate',
      '0',
      '--log-format',
      'json',
    ];
    const first = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    // Kill it once it has acked some and has many in flight.
    await new Promise<void>((res, rej) => {
      let acked = 0;
      first.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        acked += chunk.split('Done. Acked').length - 1;
        if (acked >= 200) res();
      });
      first.once('exit', (c) => rej(new Error(`first run exited ${c} early`)));
    });
    const killed = new Promise((r) => first.once('exit', r));
    first.kill('SIGKILL');
    await killed;

    const [expected] = query<{ total: number; restarted: number; inDoubt: number }>(
      db,
      `SELECT count(*) AS total, sum(restarted) AS restarted, sum(restarted = 0 AND restart_claimed > restart_released) AS inDoubt
       FROM messages WHERE acked = 0 AND dead_lettered = 0`,
    );
    expect(expected!.total).toBeGreaterThan(100); // --max-in-flight 1000 with 300 ms restarts

    const second = spawnSync(process.execPath, [MAIN, ...args, '--count', '5', '--restart-latency', '0'], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(second.status).toBe(0);
    const report = lines(second.stdout).find((l) => l.msg.startsWith('Earlier runs left'));
    expect(report?.level).toBe(40);
    expect(report?.unfinished).toMatchObject({
      total: expected!.total,
      fromPreviousRun: expected!.total,
      restarted: expected!.restarted,
      inDoubt: expected!.inDoubt,
      notRestarted: expected!.total - expected!.restarted - expected!.inDoubt,
    });
    expect(report?.msg).toMatch(
      new RegExp(
        `^Earlier runs left ${expected!.total} messages unfinished .*The in-memory broker is not durable: they will not be delivered again\\.$`,
      ),
    );

    // A third start: the second run (stopped by --count) also leaves its in-flight ones, told apart.
    const [after] = query<{ total: number }>(
      db,
      'SELECT count(*) AS total FROM messages WHERE acked = 0 AND dead_lettered = 0',
    );
    const third = spawnSync(process.execPath, [MAIN, ...args, '--count', '1', '--restart-latency', '0'], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    const again = lines(third.stdout).find((l) => l.msg.startsWith('Earlier runs left'));
    expect(again?.unfinished).toMatchObject({ total: after!.total, fromPreviousRun: after!.total - expected!.total });
  });

  it('says nothing when nothing was left', () => {
    const db = join(tmp.dir, 'clean.db');
    const args = [
      'run',
      '--db',
      `sqlite:${db}`,
      '--publish-rate',
      '0',
      '--restart-latency',
      '0',
      '--restart-failure-rate',
      '0',
      '--log-format',
      'json',
      '--count',
      '50',
      '--max-in-flight',
      '1',
    ];
    expect(spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8' }).status).toBe(0);
    const second = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8' });
    expect(lines(second.stdout).filter((l) => l.msg.startsWith('Earlier runs left'))).toEqual([]);
  });
});
