/**
 * The behaviour every Storage adapter shares, run against memory and SQLite alike so the two
 * cannot drift apart. Not a test file itself: the adapter tests call {@link describeStorageContract}.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { AckRecord, ClaimMode, DeadLetter, Storage } from '../src/core/contracts.js';
import type { RestartRequest } from '../src/core/message.js';
import type { AuditEntry, AuditOutcome } from '../src/core/rails.js';
import { claimWrites, emptyRecord, restartStateOf, type MessageRecord } from '../src/storage/record.js';
import {
  ackPatch,
  applyPatch,
  callsPatch,
  claimPatch,
  deadLetterPatch,
  failurePatch,
  foldDeadLetter,
  releasePatch,
  restartedPatch,
  savePatch,
  type MutableRecord,
} from '../src/storage/record-patch.js';
import { seededRandom } from '../src/core/timing.js';
import { withSaveFailures } from '../src/storage/faulty.js';

/** What the contract needs from an adapter under test. */
export interface StorageHarness {
  open(): Storage;
  /** Read a record back (after the writes resolved). */
  read(storage: Storage, messageId: string): MessageRecord | undefined;
  /** The dead letters stored, oldest first. */
  deadLetters(storage: Storage): { messageId: string | null; payload: string; reason: string; deliveries: number }[];
  /** Several records at once, where one read costs a round trip (default: {@link read} each). */
  readMany?(storage: Storage, messageIds: readonly string[]): (MessageRecord | undefined)[];
  /** Runs of the merge property (default 100; fewer where each read is a round trip). */
  propertyRuns?: number;
}

/** A small seeded PRNG so fault-injection tests are reproducible (the one `--seed` uses). */
export const seeded = seededRandom;

/** An audit row of `outcome` for a message, as the pipeline writes it with a record. */
export function auditRow(messageId: string, outcome: AuditOutcome, reason = ''): AuditEntry {
  return {
    at: 1_700_000_000_000,
    instance: 'contract',
    host: `${messageId}.example.net`,
    instanceName: messageId,
    messageId,
    executor: 'mock',
    outcome,
    reason,
  };
}

export function request(n: number): RestartRequest {
  return { messageId: `m-${n}`, instanceName: `cattle-${n % 97}`, publishedAt: 1_700_000_000_000 + n };
}

export function describeStorageContract(name: string, h: StorageHarness): void {
  describe(`${name}: Storage contract`, () => {
    it('records a full message life', async () => {
      const s = h.open();
      const r = request(1);
      expect(await s.claimRestart(r, 1, 'claim')).toBe('free');
      await Promise.all([
        s.saveMessage(r, 1),
        s.markRestarted(r.messageId, 2, undefined, [auditRow(r.messageId, 'restarted')]),
      ]);
      expect(await s.claimRestart(r, 2, 'claim')).toBe('done');
      await s.markAcked({ messageId: r.messageId, extensions: 3, attempts: 2 });
      const rec = h.read(s, r.messageId);
      expect(rec).toMatchObject({
        messageId: 'm-1',
        instanceName: 'cattle-1',
        hostname: 'cattle-1.example.net',
        publishedAt: r.publishedAt,
        saved: true,
        restarted: true,
        restartClaimed: 1,
        restartReleased: 0,
        restartInDoubt: false,
        restartAttempts: 2,
        acked: true,
        extensions: 3,
        deliveries: 1,
        deadLettered: false,
        lastError: null,
      });
      expect(rec?.restartedAt).toEqual(expect.any(Number));
      expect(rec?.ackedAt).toEqual(expect.any(Number));
      await s.close();
    });

    it('an ack record that carries the restart records the restart too (and restartedAt)', async () => {
      const s = h.open();
      const r = request(1006); // ids of their own: some harnesses share one database between tests
      await s.saveMessage(r, 1);
      expect(await s.claimRestart(r, 1, 'claim')).toBe('free');
      await s.markAcked({
        messageId: r.messageId,
        extensions: 0,
        attempts: 2,
        restartDone: true,
        audit: [auditRow(r.messageId, 'restarted')],
      });
      expect(await s.claimRestart(r, 2, 'claim')).toBe('done');
      const rec = h.read(s, r.messageId);
      expect(rec).toMatchObject({ saved: true, restarted: true, restartAttempts: 2, acked: true });
      expect(rec?.restartedAt).toEqual(expect.any(Number));
      // Without the flag an ack record leaves the restart alone.
      const other = request(1007);
      await s.saveMessage(other, 1);
      await s.markAcked({ messageId: other.messageId, extensions: 0, attempts: 0 });
      expect(h.read(s, other.messageId)).toMatchObject({ restarted: false, acked: true });
      await s.close();
    });

    it('markRestarted before saveMessage still leaves one complete row', async () => {
      const s = h.open();
      const r = request(2);
      await s.markRestarted(r.messageId, 1);
      expect(h.read(s, r.messageId)).toMatchObject({ restarted: true, saved: false, instanceName: null });
      await s.saveMessage(r, 1);
      expect(h.read(s, r.messageId)).toMatchObject({ restarted: true, saved: true, instanceName: 'cattle-2' });
      await s.close();
    });

    it('upserts are idempotent: repeating writes changes nothing but updatedAt', async () => {
      const s = h.open();
      const r = request(3);
      for (let i = 0; i < 3; i++) {
        await s.saveMessage(r, 2);
        await s.markRestarted(r.messageId, 2);
        await s.markAcked({ messageId: r.messageId, extensions: 1, attempts: 2 });
      }
      const first = { ...h.read(s, r.messageId) }; // a copy: the memory adapter's records are live
      await s.saveMessage(r, 2);
      await s.markRestarted(r.messageId, 2);
      await s.markAcked({ messageId: r.messageId, extensions: 1, attempts: 2 });
      const again = h.read(s, r.messageId);
      expect({ ...again, updatedAt: 0 }).toEqual({ ...first, updatedAt: 0 });
      await s.close();
    });

    it('keeps the highest deliveries and attempts; ack with attempts 0 (restart skipped) keeps the count', async () => {
      const s = h.open();
      const r = request(4);
      await s.saveMessage(r, 1);
      await s.markFailed(r.messageId, 'RestartFailed: boom', 3);
      expect(h.read(s, r.messageId)).toMatchObject({
        lastError: 'RestartFailed: boom',
        restartAttempts: 3,
        acked: false,
      });
      await s.saveMessage(r, 2);
      await s.saveMessage(r, 1); // a late retry of the first delivery's save
      await s.markRestarted(r.messageId, 1);
      await s.markAcked({ messageId: r.messageId, extensions: 0, attempts: 0 });
      expect(h.read(s, r.messageId)).toMatchObject({ deliveries: 2, restartAttempts: 3, restarted: true, acked: true });
      await s.close();
    });

    it('keeps the webhook calls of a message across deliveries: read back, the highest of each count stays', async () => {
      const s = h.open();
      const r = request(1010);
      expect(await s.readCalls(r.messageId)).toEqual({ calls: 0, failed: 0 });
      await s.recordCalls(r.messageId, { calls: 1, failed: 0 }); // before the first call: no row yet
      await s.saveMessage(r, 1);
      expect(await s.readCalls(r.messageId)).toEqual({ calls: 1, failed: 0 });
      await s.recordCalls(r.messageId, { calls: 1, failed: 1 }); // it was answered 503
      await s.recordCalls(r.messageId, { calls: 2, failed: 1 }); // the next delivery's call
      await s.recordCalls(r.messageId, { calls: 1, failed: 0 }); // a late retry of an earlier write
      expect(await s.readCalls(r.messageId)).toEqual({ calls: 2, failed: 1 });
      await s.recordCalls(r.messageId, { calls: 3, failed: 1 });
      expect(h.read(s, r.messageId)).toMatchObject({ httpCalls: 3, httpCallsFailed: 1, saved: true });
      await s.close();
    });

    it('stores dead letters, parsed and malformed, and marks the parsed record', async () => {
      const s = h.open();
      const r = request(5);
      await s.saveMessage(r, 4);
      await s.deadLetter({ request: r, payload: JSON.stringify(r), reason: 'restart failed 5 times', deliveries: 5 });
      await s.deadLetter({ request: r, payload: JSON.stringify(r), reason: 'restart failed 5 times', deliveries: 5 });
      await s.deadLetter({ payload: 'not json', reason: 'payload is not JSON', deliveries: 1 });
      expect(h.read(s, r.messageId)).toMatchObject({
        deadLettered: true,
        lastError: 'restart failed 5 times',
        deliveries: 5,
        acked: false,
      });
      expect(h.deadLetters(s)).toEqual([
        { messageId: 'm-5', payload: JSON.stringify(r), reason: 'restart failed 5 times', deliveries: 5 },
        { messageId: null, payload: 'not json', reason: 'payload is not JSON', deliveries: 1 },
      ]);
      await s.close();
    });

    it('--save-failure-rate (a wrapper) fails saves with the given probability, before writing', async () => {
      const inner = h.open();
      const s = withSaveFailures(inner, { rate: 0.25, random: seeded(42) });
      const results = await Promise.allSettled(
        Array.from({ length: 400 }, (_, i) => s.saveMessage(request(100 + i), 1)),
      );
      const failed = results.flatMap((res, i) =>
        res.status === 'rejected' ? [{ i, reason: res.reason as Error }] : [],
      );
      expect(failed.length).toBeGreaterThan(60);
      expect(failed.length).toBeLessThan(140);
      for (const f of failed) {
        expect(f.reason.message).toBe(`Could not save m-${100 + f.i}`);
        expect(h.read(inner, `m-${100 + f.i}`)).toBeUndefined();
      }
      // Same seed, same failures: reproducible runs.
      const s2 = withSaveFailures(h.open(), { rate: 0.25, random: seeded(42) });
      const again = await Promise.allSettled(
        Array.from({ length: 400 }, (_, i) => s2.saveMessage(request(1000 + i), 1)),
      );
      expect(again.map((x) => x.status)).toEqual(results.map((x) => x.status));
      await s.close();
      await s2.close();
    });

    it('a claim records the intent; a redelivery finds it in doubt until it is released or done', async () => {
      const s = h.open();
      const r = request(2001);
      expect(await s.claimRestart(r, 1, 'claim')).toBe('free');
      expect(h.read(s, r.messageId)).toMatchObject({
        restartClaimed: 1,
        restartReleased: 0,
        restarted: false,
        instanceName: r.instanceName,
      });
      // The process died mid-restart: the next delivery finds the intent and nothing else.
      expect(await s.claimRestart(r, 2, 'claim')).toBe('in-doubt');
      expect(await s.claimRestart(r, 2, 'look')).toBe('in-doubt');
      expect(h.read(s, r.messageId)).toMatchObject({ restartClaimed: 1 }); // in doubt: nothing written
      // At least once: claimed again by delivery 2, released when that restart fails for sure.
      expect(await s.claimRestart(r, 2, 'claim-in-doubt')).toBe('in-doubt');
      expect(h.read(s, r.messageId)).toMatchObject({ restartClaimed: 2 });
      await s.releaseRestart(r.messageId, 2, 3);
      expect(h.read(s, r.messageId)).toMatchObject({ restartClaimed: 2, restartReleased: 2, restartAttempts: 3 });
      expect(await s.claimRestart(r, 3, 'claim')).toBe('free');
      await s.markRestarted(r.messageId, 1, undefined, [auditRow(r.messageId, 'restarted')]);
      expect(await s.claimRestart(r, 4, 'claim-in-doubt')).toBe('done');
      // A release that arrives late (a retried write) never undoes the later claim's record.
      await s.releaseRestart(r.messageId, 2, 1);
      expect(h.read(s, r.messageId)).toMatchObject({ restartClaimed: 3, restartReleased: 2, restarted: true });
      await s.close();
    });

    it('a restart recorded without its audit row is found done-unaudited until a record carries the row; an in-doubt row is found written', async () => {
      const s = h.open();
      const r = request(2903);
      expect(await s.claimRestart(r, 1, 'claim')).toBe('free');
      // Recorded as done by a writer that kept its audit row apart (an older mayhem): the row may be lost.
      await s.markRestarted(r.messageId, 1);
      expect(await s.claimRestart(r, 2, 'claim')).toBe('done-unaudited');
      expect(h.read(s, r.messageId)).toMatchObject({ restarted: true, restartAudited: false });
      // The redelivery's ack record carries the recovered row: from then on the restart is audited.
      await s.markAcked({
        messageId: r.messageId,
        extensions: 0,
        attempts: 0,
        audit: [auditRow(r.messageId, 'restarted', 'recovered')],
      });
      expect(await s.claimRestart(r, 3, 'claim')).toBe('done');
      expect(h.read(s, r.messageId)).toMatchObject({ restarted: true, restartAudited: true, acked: true });

      // In doubt: the failure record carries its one in-doubt row; a later delivery finds it written.
      const d = request(2904);
      expect(await s.claimRestart(d, 1, 'claim')).toBe('free');
      await s.markFailed(d.messageId, 'killed by the timeout', 1, [auditRow(d.messageId, 'in-doubt')]);
      expect(await s.claimRestart(d, 2, 'claim')).toBe('in-doubt-audited');
      expect(await s.claimRestart(d, 2, 'look')).toBe('in-doubt-audited');
      expect(h.read(s, d.messageId)).toMatchObject({ inDoubtAudited: true, restartClaimed: 1 });
      // --in-doubt restart claims it again all the same.
      expect(await s.claimRestart(d, 2, 'claim-in-doubt')).toBe('in-doubt-audited');
      expect(h.read(s, d.messageId)).toMatchObject({ restartClaimed: 2 });
      await s.close();
    });

    it('a look records nothing; an ack record can mark the restart in doubt', async () => {
      const s = h.open();
      const r = request(2002);
      expect(await s.claimRestart(r, 1, 'look')).toBe('free');
      expect(h.read(s, r.messageId)).toBeUndefined();
      await s.claimRestart(r, 1, 'claim');
      await s.saveMessage(r, 2);
      await s.markAcked({ messageId: r.messageId, extensions: 0, attempts: 0, restartInDoubt: true });
      expect(h.read(s, r.messageId)).toMatchObject({ restartInDoubt: true, restarted: false, acked: true });
      await s.close();
    });

    it('an ack record can say why a rail skipped the restart; the first reason recorded stays', async () => {
      const s = h.open();
      const r = request(2005);
      await s.saveMessage(r, 1);
      await s.markAcked({
        messageId: r.messageId,
        extensions: 0,
        attempts: 0,
        skipReason: 'denied by policy: x matches --deny-hosts x*',
      });
      await s.markAcked({
        messageId: r.messageId,
        extensions: 0,
        attempts: 0,
        skipReason: 'a later, different reason',
      });
      expect(h.read(s, r.messageId)).toMatchObject({
        acked: true,
        restarted: false,
        skipReason: 'denied by policy: x matches --deny-hosts x*',
      });
      await s.close();
    });

    it('a messageId reused for another instance is a conflict and never rewrites whose record it is', async () => {
      const s = h.open();
      const first = request(2003);
      const reused = { ...first, instanceName: 'someone-else', publishedAt: first.publishedAt + 1 };
      await s.saveMessage(first, 1);
      expect(await s.claimRestart(reused, 1, 'claim')).toBe('conflict');
      expect(await s.claimRestart(reused, 1, 'look')).toBe('conflict');
      await s.saveMessage(reused, 1);
      await s.markAcked({ messageId: first.messageId, extensions: 0, attempts: 1, restartDone: true });
      expect(await s.claimRestart(reused, 2, 'claim-in-doubt')).toBe('conflict'); // conflict wins over done
      expect(h.read(s, first.messageId)).toMatchObject({
        instanceName: first.instanceName,
        hostname: `${first.instanceName}.example.net`,
        publishedAt: first.publishedAt,
        restartClaimed: 0,
      });
      // The claim of a new id takes the instance first: a save for another instance finds it taken.
      const fresh = request(2004);
      expect(await s.claimRestart(fresh, 1, 'claim')).toBe('free');
      await s.saveMessage({ ...fresh, instanceName: 'late-comer' }, 1);
      expect(h.read(s, fresh.messageId)).toMatchObject({ instanceName: fresh.instanceName });
      await s.close();
    });

    it('rejects with the signal reason when aborted before the write', async () => {
      const s = h.open();
      const ac = new AbortController();
      const reason = new Error('shutting down');
      ac.abort(reason);
      await expect(s.saveMessage(request(6), 1, ac.signal)).rejects.toBe(reason);
      await expect(s.markRestarted('m-6', 1, ac.signal)).rejects.toBe(reason);
      await expect(s.claimRestart(request(6), 1, 'claim', ac.signal)).rejects.toBe(reason);
      expect(h.read(s, 'm-6')).toBeUndefined();
      await s.close();
    });

    it('rejects writes after close', async () => {
      const s = h.open();
      await s.close();
      await expect(s.saveMessage(request(7), 1)).rejects.toThrow(/closed/);
    });

    // Last: it leaves records and dead letters behind in harnesses that share one database.
    it('merges any writes, in any grouping, into the records record-patch.ts folds (property)', async () => {
      const s = h.open();
      try {
        await fc.assert(
          fc.asyncProperty(groupsArb, async (groups) => {
            // Ids of this run's own: the storage (and, for some harnesses, the database) is shared.
            const prefix = `prop-${process.pid}-${++propertyRun}-`;
            const model = new PatchModel(prefix);
            for (const group of groups) {
              // One group's writes are in flight together (as a flush or a batch carries them); the
              // groups one after another. A claim goes alone: its answer depends on what is stored.
              const claims = await Promise.all(group.map((w) => issue(s, prefix, w)));
              group.forEach((w, k) => {
                const expected = model.apply(w);
                if (expected !== undefined) expect(claims[k], `claim ${JSON.stringify(w)}`).toBe(expected);
              });
            }
            const ids = Array.from({ length: IDS }, (_, id) => prefix + String(id));
            const got = h.readMany?.(s, ids) ?? ids.map((id) => h.read(s, id));
            for (let id = 0; id < IDS; id++) {
              expect(comparable(got[id]), `record ${id}`).toEqual(comparable(model.records.get(id)));
            }
            const letters = new Map<string, unknown>();
            for (const d of h.deadLetters(s)) {
              if (d.messageId?.startsWith(prefix))
                letters.set(d.messageId, { payload: d.payload, reason: d.reason, deliveries: d.deliveries });
            }
            expect(letters).toEqual(model.deadLetters);
          }),
          { numRuns: h.propertyRuns ?? 100 },
        );
      } finally {
        await s.close();
      }
    }, 120_000);
  });
}

// ---- the merge property -------------------------------------------------------------------------
// Arbitrary writes to a few message ids (a reused id for a second instance among them), in arbitrary
// groups; the expected records are folded with record-patch.ts, the one statement of the rules.

const IDS = 3;
let propertyRun = 0;

type PropWrite =
  | { op: 'claim'; id: number; instance: number; delivery: number; mode: ClaimMode }
  | { op: 'save'; id: number; instance: number; deliveries: number }
  | { op: 'restarted'; id: number; attempts: number; audited: boolean }
  | { op: 'release'; id: number; delivery: number; attempts: number }
  | {
      op: 'ack';
      id: number;
      extensions: number;
      attempts: number;
      restartDone: boolean;
      inDoubt: boolean;
      skipReason: string | undefined;
    }
  | { op: 'fail'; id: number; error: string; attempts: number; inDoubtRow: boolean }
  | { op: 'calls'; id: number; calls: number; failed: number }
  | { op: 'deadLetter'; id: number; instance: number; reason: string; deliveries: number };

const idArb = fc.integer({ min: 0, max: IDS - 1 });
const instanceArb = fc.integer({ min: 0, max: 1 });
const countArb = fc.integer({ min: 0, max: 5 });
const claimArb = fc.record({
  op: fc.constant('claim' as const),
  id: idArb,
  instance: instanceArb,
  delivery: fc.integer({ min: 1, max: 5 }),
  mode: fc.constantFrom<ClaimMode>('look', 'claim', 'claim-in-doubt'),
});
const writeArb: fc.Arbitrary<PropWrite> = fc.oneof(
  fc.record({
    op: fc.constant('save' as const),
    id: idArb,
    instance: instanceArb,
    deliveries: fc.integer({ min: 1, max: 5 }),
  }),
  fc.record({ op: fc.constant('restarted' as const), id: idArb, attempts: countArb, audited: fc.boolean() }),
  fc.record({
    op: fc.constant('release' as const),
    id: idArb,
    delivery: fc.integer({ min: 1, max: 5 }),
    attempts: countArb,
  }),
  fc.record({
    op: fc.constant('ack' as const),
    id: idArb,
    extensions: countArb,
    attempts: countArb,
    restartDone: fc.boolean(),
    inDoubt: fc.boolean(),
    skipReason: fc.constantFrom(undefined, 'denied by policy', 'too soon'),
  }),
  fc.record({
    op: fc.constant('fail' as const),
    id: idArb,
    error: fc.constantFrom('RestartFailed: boom', 'timeout'),
    attempts: countArb,
    inDoubtRow: fc.boolean(),
  }),
  fc.record({ op: fc.constant('calls' as const), id: idArb, calls: countArb, failed: countArb }),
  fc.record({
    op: fc.constant('deadLetter' as const),
    id: idArb,
    instance: instanceArb,
    reason: fc.constantFrom('too many deliveries', 'rejected'),
    deliveries: fc.integer({ min: 1, max: 5 }),
  }),
);
const groupsArb = fc.array(
  fc.oneof(
    claimArb.map((c): PropWrite[] => [c]),
    fc.array(writeArb, { minLength: 1, maxLength: 5 }),
  ),
  {
    minLength: 1,
    maxLength: 12,
  },
);

function propRequest(prefix: string, id: number, instance: number): RestartRequest {
  return {
    messageId: prefix + String(id),
    instanceName: `prop-host-${instance}`,
    publishedAt: 1_700_000_000_000 + instance,
  };
}

function propAck(prefix: string, w: Extract<PropWrite, { op: 'ack' }>): AckRecord {
  return {
    messageId: prefix + String(w.id),
    extensions: w.extensions,
    attempts: w.attempts,
    restartDone: w.restartDone,
    restartInDoubt: w.inDoubt,
    skipReason: w.skipReason,
  };
}

function propDeadLetter(prefix: string, w: Extract<PropWrite, { op: 'deadLetter' }>): DeadLetter {
  const request = propRequest(prefix, w.id, w.instance);
  return { request, payload: JSON.stringify(request), reason: w.reason, deliveries: w.deliveries };
}

function propRows(messageId: string, with_: boolean, outcome: AuditOutcome): AuditEntry[] | undefined {
  return with_ ? [auditRow(messageId, outcome)] : undefined;
}

function issue(s: Storage, prefix: string, w: PropWrite): Promise<unknown> {
  const messageId = prefix + String(w.id);
  switch (w.op) {
    case 'claim':
      return s.claimRestart(propRequest(prefix, w.id, w.instance), w.delivery, w.mode);
    case 'save':
      return s.saveMessage(propRequest(prefix, w.id, w.instance), w.deliveries);
    case 'restarted':
      return s.markRestarted(messageId, w.attempts, undefined, propRows(messageId, w.audited, 'restarted'));
    case 'release':
      return s.releaseRestart(messageId, w.delivery, w.attempts);
    case 'ack':
      return s.markAcked(propAck(prefix, w));
    case 'fail':
      return s.markFailed(messageId, w.error, w.attempts, propRows(messageId, w.inDoubtRow, 'in-doubt'));
    case 'calls':
      return s.recordCalls(messageId, { calls: w.calls, failed: w.failed });
    case 'deadLetter':
      return s.deadLetter(propDeadLetter(prefix, w));
  }
}

/** The records and dead letters the writes must leave, folded by record-patch.ts. */
class PatchModel {
  readonly records = new Map<number, MutableRecord>();
  readonly deadLetters = new Map<string, { payload: string; reason: string; deliveries: number }>();
  readonly #prefix: string;

  constructor(prefix: string) {
    this.#prefix = prefix;
  }

  /** Apply one write; for a claim, return the state it must report. */
  apply(w: PropWrite): string | undefined {
    const p = this.#prefix;
    switch (w.op) {
      case 'claim': {
        const request = propRequest(p, w.id, w.instance);
        const found = restartStateOf(this.records.get(w.id), request.instanceName);
        if (claimWrites(w.mode, found)) this.#fold(w.id, claimPatch(request, w.delivery));
        return found;
      }
      case 'save':
        return this.#fold(w.id, savePatch(propRequest(p, w.id, w.instance), w.deliveries));
      case 'restarted':
        return this.#fold(
          w.id,
          restartedPatch(p + String(w.id), w.attempts, propRows(p + String(w.id), w.audited, 'restarted')),
        );
      case 'release':
        return this.#fold(w.id, releasePatch(p + String(w.id), w.delivery, w.attempts));
      case 'ack':
        return this.#fold(w.id, ackPatch(propAck(p, w)));
      case 'fail':
        return this.#fold(
          w.id,
          failurePatch(p + String(w.id), w.error, w.attempts, propRows(p + String(w.id), w.inDoubtRow, 'in-doubt')),
        );
      case 'calls':
        return this.#fold(w.id, callsPatch(p + String(w.id), { calls: w.calls, failed: w.failed }));
      case 'deadLetter': {
        const entry = propDeadLetter(p, w);
        const letter = { payload: entry.payload, reason: entry.reason, deliveries: entry.deliveries };
        const before = this.deadLetters.get(p + String(w.id));
        this.deadLetters.set(p + String(w.id), before === undefined ? letter : foldDeadLetter(before, letter));
        return this.#fold(w.id, deadLetterPatch(entry.request!, entry));
      }
    }
  }

  #fold(id: number, patch: Parameters<typeof applyPatch>[1]): undefined {
    let record = this.records.get(id);
    if (record === undefined) this.records.set(id, (record = emptyRecord(patch.messageId, 0)));
    applyPatch(record, patch, 1);
    return undefined;
  }
}

/** A record without its clock readings: whether restartedAt / ackedAt are set is what is compared. */
function comparable(r: MessageRecord | undefined): object | undefined {
  if (r === undefined) return undefined;
  const { createdAt: _c, updatedAt: _u, restartedAt, ackedAt, ...rest } = r;
  return { ...rest, restartedAt: restartedAt !== null, ackedAt: ackedAt !== null };
}
