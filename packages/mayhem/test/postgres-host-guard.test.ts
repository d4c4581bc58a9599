import { setMaxListeners } from 'node:events';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { pino } from 'pino';
import type { HostGuard } from '../src/core/contracts.js';
import { withHost } from '../src/core/host-guard.js';
import { openPostgresStorage, type PostgresStorage } from '../src/storage/postgres/storage.js';
import { startTestPostgres, type TestPostgres } from './helpers/postgres.js';

const silent = pino({ level: 'silent' });
let pgt: TestPostgres;
let a: PostgresStorage;
let b: PostgresStorage;

beforeAll(async () => {
  pgt = await startTestPostgres();
  // Two "instances" sharing one database.
  const open = (): Promise<PostgresStorage> => openPostgresStorage({ url: pgt.url, logger: silent });
  [a, b] = await Promise.all([open(), open()]);
});
afterAll(async () => {
  await Promise.all([a?.close(), b?.close()]);
  await pgt?.close();
});

// One signal shared by every call, as the pipeline does (its shutdown signal).
const never = new AbortController().signal;
setMaxListeners(0, never); // many in-process waiters on one host listen to it at once

function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

describe('postgres host guard', () => {
  it('never runs fn for one host concurrently across two instances, under real overlap attempts', async () => {
    const guards: HostGuard[] = [a.hostGuard(), b.hostGuard()];
    const hosts = Array.from({ length: 8 }, (_, i) => `cattle-${i}.example.net`);
    const active = new Map<string, number>();
    let maxSameHost = 0;
    let maxOverall = 0;
    let overall = 0;
    const ran: string[] = [];
    const tasks = Array.from({ length: 400 }, (_, i) => {
      const host = hosts[i % hosts.length]!;
      const guard = guards[Math.floor(i / hosts.length) % 2]!; // every host is wanted by both instances
      return withHost(guard, host, never, async () => {
        const now = (active.get(host) ?? 0) + 1;
        active.set(host, now);
        overall++;
        maxSameHost = Math.max(maxSameHost, now);
        maxOverall = Math.max(maxOverall, overall);
        // Hold the host across a few turns of the loop and a timer, giving the other instance
        // every chance to get in if the lock did not hold.
        await new Promise((r) => setTimeout(r, 1));
        await new Promise((r) => setImmediate(r));
        active.set(host, active.get(host)! - 1);
        overall--;
        ran.push(host);
      });
    });
    await Promise.all(tasks);
    expect(ran).toHaveLength(400);
    expect(maxSameHost).toBe(1);
    expect(maxOverall).toBeGreaterThan(1); // different hosts did overlap
  });

  it('blocks the second instance while the first holds the host, then lets it in', async () => {
    const held = gate();
    const entered = gate();
    const order: string[] = [];
    const first = withHost(a.hostGuard(), 'pinned.example.net', never, async () => {
      order.push('a in');
      entered.open();
      await held.promise;
      order.push('a out');
    });
    await entered.promise;
    const contendedBefore = b.stats().lockStatements;
    const second = withHost(b.hostGuard(), 'pinned.example.net', never, () => {
      order.push('b in');
      return Promise.resolve('b result');
    });
    // b must have tried (and been refused) several times while a holds the lock.
    await vi.waitFor(() => expect(b.stats().lockStatements - contendedBefore).toBeGreaterThanOrEqual(3), {
      timeout: 5000,
      interval: 5,
    });
    expect(order).toEqual(['a in']);
    held.open();
    await first;
    await expect(second).resolves.toBe('b result');
    expect(order).toEqual(['a in', 'a out', 'b in']);
  });

  it('runs different hosts concurrently, across and within instances', async () => {
    const bothIn = gate();
    let inside = 0;
    const enter = async (): Promise<void> => {
      if (++inside === 3) bothIn.open();
      await bothIn.promise; // would never resolve if the three were serialised
    };
    await Promise.race([
      Promise.all([
        withHost(a.hostGuard(), 'x1.example.net', never, enter),
        withHost(a.hostGuard(), 'x2.example.net', never, enter),
        withHost(b.hostGuard(), 'x3.example.net', never, enter),
      ]),
      new Promise((_, reject) => setTimeout(() => reject(new Error('different hosts were serialised')), 5000)),
    ]);
  });

  it('rejects with the signal reason when aborted while waiting, and the host stays usable', async () => {
    const held = gate();
    const entered = gate();
    const holder = withHost(a.hostGuard(), 'abort.example.net', never, async () => {
      entered.open();
      await held.promise;
    });
    await entered.promise;
    const acLocal = new AbortController();
    const acRemote = new AbortController();
    const fn = vi.fn(() => Promise.resolve());
    const waitingLocal = withHost(a.hostGuard(), 'abort.example.net', acLocal.signal, fn); // in-process queue
    const waitingRemote = withHost(b.hostGuard(), 'abort.example.net', acRemote.signal, fn); // advisory lock retries
    const reason = new Error('shutdown');
    acLocal.abort(reason);
    acRemote.abort(reason);
    await expect(waitingLocal).rejects.toBe(reason);
    await expect(waitingRemote).rejects.toBe(reason);
    held.open();
    await holder;
    expect(fn).not.toHaveBeenCalled();
    await expect(withHost(b.hostGuard(), 'abort.example.net', never, () => Promise.resolve(7))).resolves.toBe(7);
    await expect(withHost(a.hostGuard(), 'abort.example.net', never, () => Promise.resolve(8))).resolves.toBe(8);
  });

  it('releases the host when fn throws', async () => {
    const boom = new Error('restart failed');
    await expect(withHost(a.hostGuard(), 'throws.example.net', never, () => Promise.reject(boom))).rejects.toBe(boom);
    await expect(withHost(b.hostGuard(), 'throws.example.net', never, () => Promise.resolve('ok'))).resolves.toBe('ok');
  });

  it('1000 hosts in flight use one lock connection per instance and few statements', async () => {
    const before = a.stats().lockStatements;
    let peak = 0;
    let inside = 0;
    const all = gate();
    await Promise.all(
      Array.from({ length: 1000 }, (_, i) =>
        withHost(a.hostGuard(), `many-${i}.example.net`, never, async () => {
          peak = Math.max(peak, ++inside);
          if (inside === 1000) all.open();
          await all.promise;
          inside--;
        }),
      ),
    );
    expect(peak).toBe(1000); // all held at once: no pool starvation, no serialisation
    expect(a.stats().lockStatements - before).toBeLessThanOrEqual(10);
    const conns = await pgt.query<{ n: string }>(
      `SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'mayhem-host-guard'`,
    );
    expect(Number(conns[0]?.n)).toBeLessThanOrEqual(2); // one per instance
  });

  it('recovers when its lock connection is terminated', async () => {
    await withHost(a.hostGuard(), 'reconnect.example.net', never, () => Promise.resolve());
    await pgt.terminateConnections();
    // The first attempt may see the dead connection; the next one reconnects.
    for (const guard of [a.hostGuard(), b.hostGuard()]) {
      let result: string | undefined;
      for (let i = 0; i < 3 && result === undefined; i++) {
        result = await withHost(guard, 'reconnect.example.net', never, () => Promise.resolve('ok')).catch(
          (e: unknown) => {
            expect((e as Error).message).toMatch(/^host lock unavailable: /);
            return undefined;
          },
        );
      }
      expect(result).toBe('ok');
    }
    // And exclusivity still holds after the reconnect.
    const held = gate();
    const entered = gate();
    const holder = withHost(a.hostGuard(), 'reconnect.example.net', never, async () => {
      entered.open();
      await held.promise;
    });
    await entered.promise;
    const before = b.stats().lockStatements;
    let bIn = false;
    const other = withHost(b.hostGuard(), 'reconnect.example.net', never, () => {
      bIn = true;
      return Promise.resolve();
    });
    await vi.waitFor(() => expect(b.stats().lockStatements - before).toBeGreaterThanOrEqual(2), {
      timeout: 5000,
      interval: 5,
    });
    expect(bIn).toBe(false);
    held.open();
    await holder;
    await other;
    expect(bIn).toBe(true);
  });
});
