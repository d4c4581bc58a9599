/**
 * The storage of a leashed instance previewing beside a fleet on a shared broker: the requests it
 * looks at are the fleet's, so their records stay in this process (the fleet's rows are never
 * written: a record saying "acked" for a request the fleet has not handled would mislead it). The
 * fleet's state (the kill switch, settings, audit trail, experiments) is the real storage's; there
 * is no host lock to take (restarting nothing, it must never hold a host the fleet wants).
 */
import type { Storage } from '../core/contracts.js';
import { openMemoryStorage } from './memory/storage.js';

export function previewStorage(fleet: Storage): Storage {
  const records = openMemoryStorage({ maxSettled: 10_000 });
  return {
    claimRestart: (request, deliveryCount, mode, signal) => records.claimRestart(request, deliveryCount, mode, signal),
    saveMessage: (request, deliveryCount, signal) => records.saveMessage(request, deliveryCount, signal),
    markRestarted: (messageId, attempts, signal) => records.markRestarted(messageId, attempts, signal),
    releaseRestart: (messageId, deliveryCount, attempts) => records.releaseRestart(messageId, deliveryCount, attempts),
    markAcked: (record) => records.markAcked(record),
    readCalls: (messageId) => records.readCalls(messageId),
    recordCalls: (messageId, count) => records.recordCalls(messageId, count),
    markFailed: (messageId, error, attempts) => records.markFailed(messageId, error, attempts),
    deadLetter: (entry) => records.deadLetter(entry),
    ...(fleet.control ? { control: () => fleet.control!() } : {}),
    ...(fleet.experiments ? { experiments: () => fleet.experiments!() } : {}),
    async close() {
      await records.close();
      await fleet.close();
    },
  };
}
