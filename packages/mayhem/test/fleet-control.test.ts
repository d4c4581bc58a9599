/**
 * The fleet's settings and the blast radius behind the FleetControl contract, on each adapter
 * (memory, the SQLite file, PostgreSQL): settings stored with compare-and-set on their version and
 * seen by another connection's refresh; the blast radius's cap, its atomicity across two
 * connections (PostgreSQL), restart times and the hosts seen (rows not yet written included).
 */
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FleetControl, StoredSettings } from '../src/core/rails.js';
import { openMemoryStorage } from '../src/storage/memory/storage.js';
import { openPostgresStorage } from '../src/storage/postgres/storage.js';
import { openSqliteControl } from '../src/storage/sqlite/control.js';
import { openSqliteStorage } from '../src/storage/sqlite/storage.js';
import { startTestPostgres, type TestPostgres } from './helpers/postgres.js';
import { tempDir } from './sqlite-helpers.js';

const silent = pino({ level: 'silent' });
let pgt: TestPostgres;
const tmp = tempDir();

beforeAll(async () => {
  pgt = await startTestPostgres();
}, 60_000);
afterAll(async () => {
  await pgt?.close();
  tmp.cleanup();
});

interface Pair {
  /** The service's control. */
  readonly a: FleetControl;
  /** Another connection to the same fleet state (another instance, or the CLI). */
  readonly b: FleetControl;
  readonly close: () => Promise<void>;
}

let n = 0;
const adapters: [string, () => Promise<Pair>][] = [
  [
    'memory',
    () => {
      const c = openMemoryStorage().control();
      return Promise.resolve({ a: c, b: c, close: () => Promise.resolve() });
    },
  ],
  [
    'sqlite',
    () => {
      const path = tmp.file(`fleet-${++n}.db`);
      const s = openSqliteStorage({ path, logger: silent });
      const cli = openSqliteControl(path);
      return Promise.resolve({
        a: s.control(),
        b: cli.control,
        close: async () => {
          await cli.close();
          await s.close();
        },
      });
    },
  ],
  [
    'postgres',
    async () => {
      const { url } = await pgt.createDatabase();
      const s1 = await openPostgresStorage({ url, logger: silent });
      const s2 = await openPostgresStorage({ url, logger: silent });
      return {
        a: s1.control(),
        b: s2.control(),
        close: async () => {
          await s1.close();
          await s2.close();
        },
      };
    },
  ],
];

const doc = (values: Record<string, unknown>): Omit<StoredSettings, 'version'> => ({
  by: 'test',
  at: 1_000,
  values,
});

describe.each(adapters)('%s: fleet settings and blast radius', (_name, open) => {
  it('settings: the first write wins, a stale version changes nothing, another connection sees the change on refresh', async () => {
    const { a, b, close } = await open();
    try {
      await a.refresh();
      expect(a.settingsState()).toBeUndefined();
      const first = await a.writeSettings(doc({ denyHosts: 'db-*' }), 0);
      expect(first).toMatchObject({ version: 1, values: { denyHosts: 'db-*' } });
      // A second "first" writer loses and is told what is stored.
      expect(await b.writeSettings(doc({ denyHosts: 'web-*' }), 0)).toMatchObject({
        version: 1,
        values: { denyHosts: 'db-*' },
      });
      const second = await b.writeSettings(
        { ...doc({ maxConcurrentRestarts: 2 }), inventory: { source: 'h.txt', hosts: ['a', 'b'] } },
        1,
      );
      expect(second).toMatchObject({ version: 2, inventory: { hosts: ['a', 'b'] } });
      expect(await a.writeSettings(doc({}), 1)).toMatchObject({ version: 2, values: { maxConcurrentRestarts: 2 } });
      await a.refresh();
      expect(a.settingsState()).toEqual(second);
    } finally {
      await close();
    }
  });

  it('blast radius: at most cap distinct hosts in the window, a host already in it goes again, the oldest leave it', async () => {
    const { a, b, close } = await open();
    try {
      const t = 1_700_000_000_000;
      expect((await a.takeBlast('h1', t, t - 60_000, 2)).ok).toBe(true);
      expect((await b.takeBlast('h2', t + 1_000, t - 60_000, 2)).ok).toBe(true);
      const refused = await a.takeBlast('h3', t + 2_000, t - 60_000, 2);
      expect(refused).toEqual({ ok: false, others: [t, t + 1_000] });
      // h1 is in the window already: it does not count twice.
      expect((await b.takeBlast('h1', t + 3_000, t - 60_000, 2)).ok).toBe(true);
      expect(await a.lastRestart('h1')).toBe(t + 3_000);
      expect([...(await b.restartedSince(t + 500))].sort()).toEqual([
        ['h1', t + 3_000],
        ['h2', t + 1_000],
      ]);
      // Once h2's restart has left the window (since > t + 1000), h3 fits.
      expect((await a.takeBlast('h3', t + 70_000, t + 1_001, 2)).ok).toBe(true);
    } finally {
      await close();
    }
  });

  it('hosts seen: the audit trail in the window, rows still pending included, fleet-wide rows left out', async () => {
    const { a, b, close } = await open();
    try {
      const t = Date.now();
      const row = { instance: 'i', messageId: 'm', executor: 'mock', reason: '', instanceName: 'x' };
      a.audit({ ...row, at: t - 120_000, host: 'old', outcome: 'restarted' });
      a.audit({ ...row, at: t, host: 'web-1', outcome: 'skipped-denied' });
      a.audit({ ...row, at: t, host: '*', outcome: 'paused' });
      expect([...(await a.hostsSeenSince(t - 60_000))]).toEqual(['web-1']);
      // Written in a batch off the hot path: wait until the trail holds them.
      while ((await a.readAudit({ limit: 10 })).length < 3) await new Promise((r) => setTimeout(r, 10));
      b.audit({ ...row, at: t + 1, host: 'web-2', outcome: 'restarted' });
      expect([...(await b.hostsSeenSince(t - 60_000))].sort()).toEqual(['web-1', 'web-2']);
    } finally {
      await close();
    }
  });
});

describe('postgres: the blast radius is one taker at a time across instances', () => {
  it('20 hosts taken at once from two connections: exactly the cap gets through', async () => {
    const { url } = await pgt.createDatabase();
    const s1 = await openPostgresStorage({ url, logger: silent });
    const s2 = await openPostgresStorage({ url, logger: silent });
    try {
      const t = Date.now();
      const takes = await Promise.all(
        Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? s1 : s2).control().takeBlast(`h${i}`, t, t - 1_000, 5)),
      );
      expect(takes.filter((x) => x.ok)).toHaveLength(5);
      expect((await s1.control().restartedSince(t - 1_000)).size).toBe(5);
    } finally {
      await s1.close();
      await s2.close();
    }
  });
});
