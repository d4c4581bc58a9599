/**
 * The SQLite worker dying mid-run, on the whole service (`mayhem run`, the compiled CLI): the fault
 * drill MAYHEM_SQLITE_WORKER_CRASH_AFTER makes the first storage worker throw an uncaught error after
 * that many storage calls. The run must end with exit 0 and, read from the database afterwards:
 * every acked message has its record (acked, saved, restarted or in doubt), all N are acked (none lost
 * on redelivery), no host restarted twice (the mock's journal), and the fault told once.
 *
 * Needs `npm run build` first (the service runs from dist).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { CLI, Instance, killAll } from './fleet-harness.js';

const dir = mkdtempSync(join(tmpdir(), 'mayhem-worker-fault-'));
const instances: Instance[] = [];
afterEach(async () => {
  await killAll(instances.splice(0));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const N = 3000;

describe('SQLite worker fault, whole service', () => {
  it('the storage worker crashes mid-run: told once, nothing acked without its record, none lost, no double restart', async () => {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
    const path = join(dir, 'crash.db');
    const journal = join(dir, 'crash.journal');
    const i = new Instance(
      'crash',
      [
        ...['--db', `sqlite:${path}`, '--count', String(N), '--publish-rate', '1000'],
        ...['--restart-latency', '20ms', '--restart-failure-rate', '0.1', '--max-in-flight', '200'],
        ...['--nack-delay', '200ms', '--log-format', 'json', '--status-every', '0'],
      ],
      // About a third of the way: each message makes three or four storage calls.
      { MAYHEM_MOCK_JOURNAL: journal, MAYHEM_SQLITE_WORKER_CRASH_AFTER: String(N) },
    );
    instances.push(i);
    const { code } = await i.exited;
    expect(code, i.describe()).toBe(0);

    const db = new Database(path, { readonly: true });
    const one = (sql: string): number => Number(db.prepare(sql).pluck().get());
    const acked = one('SELECT count(*) FROM messages WHERE acked = 1');
    const ackedWithoutRecord = one(
      'SELECT count(*) FROM messages WHERE acked = 1 AND NOT (saved = 1 AND (restarted = 1 OR restart_in_doubt = 1))',
    );
    const restarted = one('SELECT count(*) FROM messages WHERE restarted = 1');
    const inDoubt = one('SELECT count(*) FROM messages WHERE restart_in_doubt = 1 AND restarted = 0');
    db.close();

    const summary = i.lines.find((l) => l.msg.startsWith('Summary'));
    expect(Number(summary?.acked), i.describe()).toBe(N);
    expect(acked).toBe(N);
    expect(ackedWithoutRecord).toBe(0);
    // One journal line per restart that took effect, one restarted row per restart recorded.
    expect(readFileSync(journal, 'utf8').split('\n').filter(Boolean).length).toBe(restarted);
    expect(restarted + inDoubt).toBe(N);
    // The fault happened, and was told once (then once more when the new worker was up).
    const stopped = i.lines.filter((l) => l.msg.startsWith('SQLite storage worker stopped'));
    expect(stopped, i.describe()).toHaveLength(1);
    expect(stopped[0]!.msg).toMatch(/fault drill/);
    expect(i.lines.filter((l) => l.msg.startsWith('SQLite storage worker is back'))).toHaveLength(1);
  }, 90_000);
});
