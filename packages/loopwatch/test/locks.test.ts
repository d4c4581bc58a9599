/**
 * Lock cycles: two async-mutex Mutexes taken in opposite order (through `watchMutex`), and a lock of
 * the program's own (`lockWaiting` / `lockHeld`), deadlocked in a real process, show as cycles in
 * `loopwatch pstree`; the adapter keeps async-mutex's contract; everything is a no-op while off.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Mutex, Semaphore } from 'async-mutex';
import { lockHeld, lockWaiting, NO_CLAIM, watchMutex } from '../src/locks.js';
import { LockTable } from '../src/instrument/locks.js';
import { LOCK_TRACKER } from '../src/model/locks.js';
import { fixturePath, markerLine, PACKAGE_ROOT } from './run-fixture.js';

const run = promisify(execFile);
const CLI = path.join(PACKAGE_ROOT, 'dist', 'src', 'cli.js');
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-locks-'));
fs.chmodSync(root, 0o755);
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

async function deadlocked(dir: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'loopwatch/register', fixturePath('lock-cycle')], {
    cwd: PACKAGE_ROOT,
    env: { ...process.env, LOOPWATCH: 'debug', LOOPWATCH_ATTACH_DIR: dir },
  });
  children.push(child);
  let out = '';
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  await new Promise<void>((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes('ready\n')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`fixture exited (${code}) before ready: ${err}`)));
  });
  return child;
}

describe('lock cycles in pstree', () => {
  it('two mutexes taken in opposite order, and two hand-made locks, are each a cycle', async () => {
    const dir = path.join(root, 'd1');
    const child = await deadlocked(dir);
    const env = { ...process.env, LOOPWATCH_ATTACH_DIR: dir };
    const tree = (await run(process.execPath, [CLI, 'pstree', String(child.pid)], { cwd: PACKAGE_ROOT, env })).stdout;
    expect(tree).toContain('ERROR: await-graph contains cycles');
    const cycles = tree.split('\n').filter((l) => l.startsWith('cycle: '));
    expect(cycles).toHaveLength(2);
    // async-mutex: transfer holds accounts and waits for ledger; audit's runExclusive callback holds ledger, waits for accounts.
    const mutexCycle = cycles.find((c) => c.includes('transfer'));
    expect(mutexCycle).toMatch(/\[lock "ledger"\] → <anonymous> \(#\d+\) → \[lock "accounts"\] → transfer/);
    // lockWaiting / lockHeld: each philosopher's take() waits for the fork the other holds.
    const forkCycle = cycles.find((c) => c.includes('philosopher'));
    expect(forkCycle).toContain('[lock "right fork"]');
    expect(forkCycle).toContain('[lock "left fork"]');
    expect(forkCycle?.match(/philosopher \(#\d+\)/g)).toHaveLength(3);
    // ps --json carries the lock edges: the waiter, the lock, the holder.
    const ps = JSON.parse(
      (await run(process.execPath, [CLI, 'ps', String(child.pid), '--json'], { cwd: PACKAGE_ROOT, env })).stdout,
    ) as {
      data: {
        tasks: { id: number; name: string; awaitsId?: number; waitsForLock?: string; waitingAt: { line: number }[] }[];
      };
    };
    const tasks = ps.data.tasks;
    const transfer = tasks.find((t) => t.name === 'transfer')!;
    expect(transfer.waitsForLock).toBe('ledger');
    expect(transfer.waitingAt[0]?.line).toBe(await markerLine('lock-cycle', 'TRANSFER-WAITS'));
    const callback = tasks.find((t) => t.id === transfer.awaitsId)!;
    expect(callback.waitsForLock).toBe('accounts');
    expect(callback.waitingAt[0]?.line).toBe(await markerLine('lock-cycle', 'AUDIT-WAITS'));
    expect(callback.awaitsId).toBe(transfer.id);
  });
});

describe('the API while loopwatch is off', () => {
  it('hands out the shared no-op claim, and a watched mutex is async-mutex unchanged', async () => {
    expect((globalThis as Record<symbol, unknown>)[LOCK_TRACKER]).toBeUndefined();
    const lock = {};
    expect(lockWaiting(lock, 'x')).toBe(NO_CLAIM);
    expect(lockHeld(lock)).toBe(NO_CLAIM);
    expect(Object.isFrozen(NO_CLAIM)).toBe(true);
    const m = watchMutex(new Mutex(), 'm');
    const order: string[] = [];
    const a = m.runExclusive(async () => {
      order.push('a in');
      await new Promise((r) => setImmediate(r));
      order.push('a out');
      return 1;
    });
    const b = m.runExclusive(() => {
      order.push('b');
      return 2;
    });
    expect(await Promise.all([a, b])).toEqual([1, 2]);
    expect(order).toEqual(['a in', 'a out', 'b']);
    expect(m.isLocked()).toBe(false);
  });
});

describe('the adapter keeps the contract while tracking', () => {
  it('exclusion, releasers, release(), errors, and a semaphore’s [value, releaser]', async () => {
    const table = new LockTable(() => undefined);
    table.install();
    try {
      const m = watchMutex(new Mutex(), 'm');
      const release = await m.acquire();
      expect(m.isLocked()).toBe(true);
      const waiting = m.acquire();
      release();
      (await waiting)();
      expect(m.isLocked()).toBe(false);
      await m.acquire();
      m.release();
      expect(m.isLocked()).toBe(false);
      await expect(m.runExclusive(() => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
      expect(m.isLocked()).toBe(false);
      expect(() => lockWaiting({}).release()).not.toThrow();
      const s = watchMutex(new Semaphore(2), 's');
      const [v, r1] = await s.acquire();
      expect(v).toBe(2);
      expect(await s.runExclusive((value) => value)).toBe(1);
      r1();
      expect(s.getValue()).toBe(2);
    } finally {
      table.uninstall();
    }
  });
});
