import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { openMemoryStorage } from '../../src/storage/memory/storage.js';
import { withSaveFailures } from '../../src/storage/faulty.js';
import { openStorage } from '../../src/storage/open.js';
import { request, seeded } from '../storage-contract.js';

// How the wrapper fails saves is in the storage contract (run over every adapter); here, its edges.
describe('save failures as a storage wrapper', () => {
  it('rejects a rate outside [0, 1], also before openStorage opens anything', async () => {
    expect(() => withSaveFailures(openMemoryStorage(), { rate: 2 })).toThrow(/from 0 to 1/);
    await expect(
      openStorage({
        url: 'memory:',
        logger: pino({ level: 'silent' }),
        saveFailureRate: -1,
        random: Math.random,
        maxInFlight: 1,
      }),
    ).rejects.toThrow(/from 0 to 1/);
  });

  it('is the storage itself at rate 0, and keeps the optional parts the adapter has', async () => {
    const inner = openMemoryStorage();
    expect(withSaveFailures(inner, { rate: 0 })).toBe(inner);
    const faulty = withSaveFailures(inner, { rate: 1, random: seeded(1) });
    expect(faulty.control?.()).toBe(inner.control());
    expect('hostGuard' in faulty).toBe(false);
    await expect(faulty.saveMessage(request(1), 1)).rejects.toThrow('Could not save m-1');
    await faulty.markFailed('m-1', 'boom', 1);
    expect(inner.records.get('m-1')).toMatchObject({ saved: false, lastError: 'boom' });
    await faulty.close();
  });

  it('openStorage applies --save-failure-rate to the adapter it opens', async () => {
    const s = await openStorage({
      url: 'memory:',
      logger: pino({ level: 'silent' }),
      saveFailureRate: 1,
      random: seeded(3),
      maxInFlight: 1,
    });
    await expect(s.saveMessage(request(2), 1)).rejects.toThrow('Could not save m-2');
    await s.close();
  });
});
