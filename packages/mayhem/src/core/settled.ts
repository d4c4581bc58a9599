/**
 * Shared already-settled promises for synchronous adapters (memory broker and storage, zero-latency
 * mock). Returning one constant instead of a fresh `Promise.resolve()` per call allocates nothing and
 * fires no promise hook, which matters at 100k messages/s and under loopwatch's debug mode.
 */
export const DONE: Promise<void> = Promise.resolve();
export const TRUE: Promise<boolean> = Promise.resolve(true);
export const FALSE: Promise<boolean> = Promise.resolve(false);
