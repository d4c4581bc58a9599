/**
 * Fault injection as a wrapper: `--save-failure-rate` makes `saveMessage` of any Storage reject now
 * and then, before it writes anything. The adapters know nothing of it.
 */
import type { Storage } from '../core/contracts.js';

/** The error `saveMessage` rejects with under `--save-failure-rate` (the article's wording). */
export function saveFailure(messageId: string): Error {
  return new Error(`Could not save ${messageId}`);
}

/** Validate a fault-injection rate once, at open, so a bad value fails loudly instead of silently. */
export function checkFailureRate(rate: number | undefined): number {
  const value = rate ?? 0;
  if (!Number.isFinite(value) || value < 0 || value > 1) {
    throw new Error(`saveFailureRate must be a number from 0 to 1, got ${String(rate)}`);
  }
  return value;
}

/** Options for {@link withSaveFailures}. */
export interface SaveFailureOptions {
  /** Probability in [0, 1] that `saveMessage` rejects with "Could not save <id>". */
  readonly rate: number;
  /** Source of randomness; pass a seeded one for reproducible runs. */
  readonly random?: () => number;
}

/**
 * `storage` whose `saveMessage` rejects with {@link saveFailure} with probability `rate`, without
 * writing. Every other operation goes straight through. At rate 0 it is `storage` itself, so the
 * default path pays nothing. Throws when `rate` is outside [0, 1].
 */
export function withSaveFailures(storage: Storage, o: SaveFailureOptions): Storage {
  const rate = checkFailureRate(o.rate);
  if (rate === 0) return storage;
  const random = o.random ?? Math.random;
  const faulty: Storage = {
    saveMessage: (request, deliveryCount, signal) =>
      random() < rate
        ? Promise.reject(saveFailure(request.messageId))
        : storage.saveMessage(request, deliveryCount, signal),
    claimRestart: (request, deliveryCount, mode, signal) => storage.claimRestart(request, deliveryCount, mode, signal),
    markRestarted: (messageId, attempts, signal, audit) => storage.markRestarted(messageId, attempts, signal, audit),
    releaseRestart: (messageId, deliveryCount, attempts) => storage.releaseRestart(messageId, deliveryCount, attempts),
    markAcked: (record) => storage.markAcked(record),
    markFailed: (messageId, error, attempts, audit) => storage.markFailed(messageId, error, attempts, audit),
    readCalls: (messageId) => storage.readCalls(messageId),
    recordCalls: (messageId, count) => storage.recordCalls(messageId, count),
    deadLetter: (entry) => storage.deadLetter(entry),
    close: () => storage.close(),
  };
  // The optional parts only where the adapter has them: callers test for their presence.
  if (storage.hostGuard) faulty.hostGuard = () => storage.hostGuard!();
  if (storage.unfinished) faulty.unfinished = () => storage.unfinished!();
  if (storage.control) faulty.control = () => storage.control!();
  if (storage.experiments) faulty.experiments = () => storage.experiments!();
  return faulty;
}
