import { describe, expect, it } from 'vitest';
import type { Storage } from '../../src/core/contracts.js';
import type { AuditEntry } from '../../src/core/rails.js';
import { LocalFleetControl } from '../../src/storage/memory/control.js';
import { openMemoryStorage, type MemoryStorage } from '../../src/storage/memory/storage.js';
import { describeStorageContract, request } from '../storage-contract.js';

describeStorageContract('memory', {
  open: () => openMemoryStorage(),
  read: (s: Storage, id) => (s as MemoryStorage).records.get(id),
  deadLetters: (s: Storage) =>
    (s as MemoryStorage).deadLetters.map((d) => ({
      messageId: d.request?.messageId ?? null,
      payload: d.payload,
      reason: d.reason,
      deliveries: d.deliveries,
    })),
});

describe('memory storage', () => {
  it('resolves on the microtask queue, without timers', async () => {
    const s = openMemoryStorage();
    let resolved = false;
    const p = s.saveMessage(request(1), 1).then(() => {
      resolved = true;
    });
    await Promise.resolve();
    await Promise.resolve();
    expect(resolved).toBe(true);
    await p;
  });
});

describe('the in-process audit trail', () => {
  const entry = (n: number): AuditEntry => ({
    at: 1000 + n,
    instance: 'test:1',
    host: `h${n % 2}`,
    messageId: `m-${n}`,
    executor: 'mock',
    outcome: 'restarted',
    reason: '',
  });

  it('keeps the newest maxAudit entries in a ring: oldest first in entries, newest first when read', async () => {
    const control = new LocalFleetControl(3);
    for (let n = 1; n <= 2; n++) control.audit(entry(n));
    expect(control.entries.map((e) => e.messageId)).toEqual(['m-1', 'm-2']);
    for (let n = 3; n <= 7; n++) control.audit(entry(n));
    expect(control.entries.map((e) => e.messageId)).toEqual(['m-5', 'm-6', 'm-7']);
    expect((await control.readAudit({ limit: 10 })).map((e) => e.messageId)).toEqual(['m-7', 'm-6', 'm-5']);
    expect((await control.readAudit({ limit: 1 })).map((e) => e.messageId)).toEqual(['m-7']);
    expect((await control.readAudit({ limit: 10, host: 'h1' })).map((e) => e.messageId)).toEqual(['m-7', 'm-5']);
    expect((await control.readAudit({ limit: 10, since: 1006 })).map((e) => e.messageId)).toEqual(['m-7', 'm-6']);
  });

  it('is bounded by the memory storage maxSettled, like the settled records', () => {
    const control = openMemoryStorage({ maxSettled: 2 }).control();
    for (let n = 1; n <= 5; n++) control.audit(entry(n));
    expect(control.entries.map((e) => e.messageId)).toEqual(['m-4', 'm-5']);
  });
});
