/**
 * The experiments' journal and the audit trail's experiment and request instance, the same on every
 * storage: memory, the SQLite file, PostgreSQL.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import type { Storage } from '../src/core/contracts.js';
import type { ProbeCheck } from '../src/core/experiment.js';
import { openMemoryStorage } from '../src/storage/memory/storage.js';
import { openSqliteStorage } from '../src/storage/sqlite/storage.js';
import { openPostgresStorage } from '../src/storage/postgres/storage.js';
import { startTestPostgres, type TestPostgres } from './helpers/postgres.js';
import { tempDir } from './sqlite-helpers.js';

const silent = pino({ level: 'silent' });
const tmp = tempDir();
let pgt: TestPostgres;

beforeAll(async () => {
  pgt = await startTestPostgres();
});
afterAll(async () => {
  await pgt?.close();
  tmp.cleanup();
});

const adapters: [string, () => Promise<Storage>][] = [
  ['memory', () => Promise.resolve(openMemoryStorage())],
  ['sqlite', () => Promise.resolve(openSqliteStorage({ path: tmp.file(), logger: silent }))],
  ['postgres', async () => openPostgresStorage({ url: (await pgt.createDatabase()).url, logger: silent })],
];

const check = (at: number, ok: boolean, extra: Partial<ProbeCheck> = {}): ProbeCheck => ({
  experiment: 'exp-1',
  instance: 'vm:1',
  at,
  probe: 'health',
  phase: 'during',
  ok,
  latencyMs: 12.5,
  reason: ok ? 'HTTP 200' : 'HTTP 503',
  ...extra,
});

describe.each(adapters)('%s: experiments', (_name, open) => {
  it('records runs (start, end, settings) and checks (oldest first, the newest kept past a limit)', async () => {
    const s = await open();
    const x = s.experiments!();
    await x.startRun({ experiment: 'exp-1', instance: 'vm:1', startedAt: 1_000, settings: { probes: ['http:a'] } });
    await x.startRun({ experiment: 'exp-1', instance: 'vm:2', startedAt: 1_500, settings: {} });
    await x.startRun({ experiment: 'other', instance: 'vm:1', startedAt: 3_000, settings: {} });
    x.recordCheck(check(1_001, true, { phase: 'before' }));
    x.recordCheck(check(2_000, false, { value: 0.25 }));
    x.recordCheck(check(3_000, true));
    await x.endRun('exp-1', 'vm:1', 1_000, 9_000, 'all 10 messages settled');
    expect(await x.runs('exp-1')).toEqual([
      {
        experiment: 'exp-1',
        instance: 'vm:1',
        startedAt: 1_000,
        endedAt: 9_000,
        endReason: 'all 10 messages settled',
        settings: { probes: ['http:a'] },
      },
      expect.objectContaining({ instance: 'vm:2', startedAt: 1_500, endedAt: undefined }),
    ]);
    const checks = await x.checks('exp-1', 10);
    expect(checks.map((c) => [c.at, c.ok, c.phase, c.value])).toEqual([
      [1_001, true, 'before', undefined],
      [2_000, false, 'during', 0.25],
      [3_000, true, 'during', undefined],
    ]);
    expect(checks[1]).toMatchObject({ probe: 'health', latencyMs: 12.5, reason: 'HTTP 503', instance: 'vm:1' });
    expect((await x.checks('exp-1', 2)).map((c) => c.at)).toEqual([2_000, 3_000]);
    expect(await x.checks('nope', 10)).toEqual([]);
    expect(await x.names(10)).toEqual(['other', 'exp-1']);
    await s.close();
  });

  it('the audit trail keeps each row’s experiment and request instance; reads by experiment, --host by either', async () => {
    const s = await open();
    const c = s.control!();
    const row = { instance: 'vm:1', messageId: 'm', executor: 'mock', outcome: 'restarted' as const, reason: '' };
    const now = Date.now();
    c.audit({ ...row, at: now, host: 'web-1.prod.example.com', instanceName: 'web-1', experiment: 'exp-1' });
    c.audit({ ...row, at: now + 1, host: 'web-2.prod.example.com', instanceName: 'web-2', experiment: 'exp-1' });
    c.audit({ ...row, at: now + 2, host: 'web-1.prod.example.com', instanceName: 'web-1' });
    await c.close(); // flushes the batch
    const s2 = s; // the trail is read through the same storage (close() of the control flushed it)
    const read = async (q: { host?: string; experiment?: string }): Promise<number[]> =>
      (await s2.control!().readAudit({ limit: 10, ...q })).map((e) => e.at - now);
    expect(await read({ experiment: 'exp-1' })).toEqual([1, 0]);
    expect(await read({ host: 'web-1' })).toEqual([2, 0]);
    expect(await read({ host: 'web-1.prod.example.com' })).toEqual([2, 0]);
    expect(await read({ host: 'web-2', experiment: 'exp-1' })).toEqual([1]);
    expect(await read({ host: 'web-3' })).toEqual([]);
    const [first] = await s2.control!().readAudit({ limit: 1, experiment: 'exp-1' });
    expect(first).toMatchObject({ instanceName: 'web-2', experiment: 'exp-1', host: 'web-2.prod.example.com' });
    await s.close();
  });
});
