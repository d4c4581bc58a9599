import { afterAll, describe, expect, it } from 'vitest';
import { closeWorkerPool, runInWorker } from '../src/instrument/worker-pool.js';

describe('runInWorker', () => {
  afterAll(async () => {
    await closeWorkerPool();
  });
  it('runs a self-contained function on a worker thread', async () => {
    // The function runs in the worker's CommonJS eval scope, where require is the way in.
    const tid = await runInWorker(
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      () => (require('node:worker_threads') as typeof import('node:worker_threads')).threadId,
    );
    expect(tid).toBeGreaterThan(0);
    await expect(runInWorker((a: number, b: number) => a + b, [2, 3])).resolves.toBe(5);
  });
  it('rejects with the worker’s error', async () => {
    await expect(
      runInWorker(() => {
        throw new Error('nope');
      }),
    ).rejects.toThrow('nope');
  });
});
