import { describe, expect, it } from 'vitest';
import type { Storage } from '../src/core/contracts.js';
import { openMemoryStorage, type MemoryStorage } from '../src/storage/memory.js';
import { describeStorageContract, request } from './storage-contract.js';

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
