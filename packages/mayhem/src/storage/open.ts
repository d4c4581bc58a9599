/**
 * `--db` URL → a Storage adapter. The one place that knows every storage adapter.
 */
import type { Logger } from 'pino';
import type { Storage } from '../core/contracts.js';
import { redactSecrets } from '../core/redact.js';
import { openMemoryStorage } from './memory/storage.js';
import { checkFailureRate, withSaveFailures } from './faulty.js';
import { openSqliteWorkerStorage } from './sqlite/worker-storage.js';

export interface OpenStorageOptions {
  readonly url: string;
  readonly logger: Logger;
  readonly saveFailureRate: number;
  readonly random: () => number;
  /** Messages in flight at once. Not read: no adapter sizes anything from it (issue 22: goes with the storage move). */
  readonly maxInFlight: number;
  /** Retention of acked records and of dead letters, ms (0 keeps them; defaults 7 and 30 days). */
  readonly retentionMs?: number;
  readonly deadLetterRetentionMs?: number;
}

/** Open the adapter `o.url` names, with `--save-failure-rate` applied as a wrapper (see faulty.ts). */
export async function openStorage(o: OpenStorageOptions): Promise<Storage> {
  checkFailureRate(o.saveFailureRate); // before anything opens
  return withSaveFailures(await openAdapter(o), { rate: o.saveFailureRate, random: o.random });
}

async function openAdapter(o: OpenStorageOptions): Promise<Storage> {
  const scheme = o.url.slice(0, o.url.indexOf(':') + 1);
  switch (scheme) {
    case 'memory:':
      // Records of settled messages beyond the newest 10,000 are dropped, so a long run stays flat:
      // with the memory broker nothing redelivers a settled message, so none is needed for long.
      return openMemoryStorage({ maxSettled: 10_000 });
    case 'sqlite:':
      // On its own thread: the event loop never runs a statement (see sqlite/worker-storage.ts).
      return openSqliteWorkerStorage({
        path: o.url.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, ''),
        logger: o.logger,
        retentionMs: o.retentionMs,
        deadLetterRetentionMs: o.deadLetterRetentionMs,
      });
    case 'postgres:':
    case 'postgresql:': {
      const { openPostgresStorage } = await import('./postgres/storage.js');
      return openPostgresStorage({
        url: o.url,
        logger: o.logger,
        retentionMs: o.retentionMs,
        deadLetterRetentionMs: o.deadLetterRetentionMs,
      });
    }
    default:
      throw new Error(
        `unsupported --db ${redactSecrets(JSON.stringify(o.url))}: expected sqlite:<path>, postgres://... or memory:`,
      );
  }
}
