/**
 * The message machine (core/job-machine.ts) walked through every combination of what the world can
 * answer: restart ok / not restarted / in doubt / cancelled × save ok / failed × each rail × shutdown
 * (none, cancelled, cancelled with the database out) × the order in which concurrent steps finish.
 * A small world answers each effect as the adapters would and keeps what is durable; after the first
 * delivery ends, a redelivery (all going well) runs against what that one left. At every step the
 * invariants are checked:
 * - the broker hears of a message only after its records are durable (never ack before both);
 * - a host is restarted at most once per message, across deliveries;
 * - a host stays held while its fate is unrecorded, and is given back exactly once;
 * - the restart slot is given back exactly once; the job ends exactly once, and nothing follows.
 */
import { describe, expect, it } from 'vitest';
import {
  advance,
  Effect,
  effectNames,
  IllegalTransition,
  type Effects,
  type Failure,
  type JobEvent,
  type MachineJob,
} from '../../src/core/job-machine.js';

type RestartAnswer = 'ok' | 'failed' | 'in-doubt' | 'cancelled' | 'rejected';
type SaveAnswer = 'ok' | 'failed';
/** What the rails (or what stands in for one: the host lock, the leash) answer. */
type Rail =
  | 'none'
  | 'window'
  | 'pause'
  | 'interval'
  | 'interval-skip'
  | 'concurrency'
  | 'concurrency-busy'
  | 'blast-radius'
  | 'blast-radius-defer'
  | 'rails-down'
  | 'host-lock-failed'
  | 'leash';
type Shutdown = 'none' | 'cancelled' | 'cancelled, database out';
/** The save answers at once, or only after everything else (the restart's record then goes on its own). */
type Order = 'save-first' | 'save-last';

interface Scenario {
  readonly restart: RestartAnswer;
  readonly save: SaveAnswer;
  readonly rail: Rail;
  readonly shutdown: Shutdown;
  readonly order: Order;
}

/** What storage keeps across deliveries. */
interface Durable {
  claim: 'none' | 'intent' | 'done' | 'released';
  /** Times the executor may have restarted the host (ran and said so, or ended in doubt). */
  hostRestarts: number;
}

interface Walk {
  readonly outcome: MachineJob['outcome'];
  readonly effects: string[];
}

const RAIL_EVENT: Record<Rail, JobEvent | undefined> = {
  none: undefined,
  window: 'rail-deferred',
  pause: 'rail-deferred',
  interval: 'rail-deferred',
  'interval-skip': 'rail-skipped',
  concurrency: 'rails-go-slot',
  'concurrency-busy': 'rail-deferred',
  'blast-radius': 'rail-skipped',
  'blast-radius-defer': 'rail-deferred',
  'rails-down': 'rails-failed',
  'host-lock-failed': undefined,
  leash: 'rails-go',
};

function jobOf(s: Scenario, delivery: number, signal: AbortSignal): MachineJob {
  return {
    restart: 'waiting-host',
    save: 'saving',
    phase: 'new',
    slot: false,
    failure: undefined,
    outcome: undefined,
    signal,
    delivery: { deliveryCount: delivery },
    rules: { rails: s.rail !== 'none' && s.rail !== 'host-lock-failed', maxDeliveries: 5 },
  };
}

function fail(job: MachineJob, failure: Failure, overrides: boolean): void {
  if (overrides || job.failure === undefined) job.failure = failure;
}

/** One delivery walked to its end; throws when an invariant breaks. */
function walk(s: Scenario, delivery: number, durable: Durable): Walk {
  const stop = new AbortController();
  const job = jobOf(s, delivery, stop.signal);
  const seen: string[] = [];
  const pending: Effects[] = [];
  const down = s.shutdown === 'cancelled, database out';
  let hostHeld = false;
  let hostGrants = 0;
  let hostFrees = 0;
  let slotTaken = 0;
  let slotFrees = 0;
  let restartsIssued = 0;
  let restartRan = false;
  let restartDurable = false;
  let restartGivenUp = false;
  let saveDurable = false;
  let recordWritten = false;
  let ends = 0;
  let ackRecordCarriesRestart = false;

  const check = (ok: boolean, what: string): void => {
    if (!ok) throw new Error(`${what} (after ${seen.join(' → ')})`);
  };

  const drive = (event: JobEvent): void => {
    check(ends === 0, `an event after the end: ${event}`);
    if (event === 'record-written' && job.phase === 'recording-ack' && job.restart === 'restarted')
      ackRecordCarriesRestart = true;
    const effects = advance(job, event);
    seen.push(`${event}${effects === 0 ? '' : ` [${effectNames(effects).join(', ')}]`}`);
    if ((effects & Effect.FreeSlot) !== 0) slotFrees += 1;
    if ((effects & Effect.FreeHost) !== 0) {
      check(hostHeld, 'a host given back that is not held');
      // A host stays held while its fate is unrecorded (or until shutdown gave its record up).
      check(!restartRan || restartDurable || restartGivenUp, 'the host went back before its restart was recorded');
      hostHeld = false;
      hostFrees += 1;
    }
    if ((effects & Effect.Restart) !== 0) {
      check(hostHeld, 'a restart without the host');
      restartsIssued += 1;
    }
    const told = Effect.Ack | Effect.Nack | Effect.NackDeferred | Effect.NackCancelled | Effect.DeadLetter;
    if ((effects & told) !== 0) {
      check(!restartRan || restartDurable, 'the broker told before the restart was recorded');
      if ((effects & (Effect.Ack | Effect.Nack | Effect.DeadLetter)) !== 0)
        check(recordWritten, 'the broker told before the message record was written');
    }
    if ((effects & Effect.Ack) !== 0) check(saveDurable, 'acked before the save was durable');
    if ((effects & Effect.End) !== 0) {
      ends += 1;
      return;
    }
    if (effects !== 0) pending.push(effects);
  };

  /** What the world answers to each effect of a batch. */
  let saveHeld = false;
  let saveReleased = false;
  const answer = (effects: Effects): void => {
    if ((effects & Effect.Save) !== 0 && s.order === 'save-last' && !saveReleased) {
      saveHeld = true;
      effects &= ~Effect.Save;
    }
    if ((effects & Effect.AcquireHost) !== 0) {
      if (s.rail === 'host-lock-failed') {
        fail(job, { error: new Error('lock connection lost'), kind: 'failed' }, true);
        drive('host-failed');
      } else {
        hostHeld = true;
        hostGrants += 1;
        drive('host-granted');
      }
    }
    if ((effects & Effect.Save) !== 0) {
      // The database goes out when shutdown comes (while the restart runs), not before.
      if (s.save === 'ok' && !(down && stop.signal.aborted)) {
        saveDurable = true;
        drive('saved');
      } else {
        fail(job, { error: new Error('disk I/O error'), kind: stop.signal.aborted ? 'cancelled' : 'failed' }, false);
        drive('save-failed');
      }
    }
    if ((effects & Effect.CheckRails) !== 0) {
      const event = RAIL_EVENT[s.rail] ?? 'rails-go';
      if (event === 'rail-deferred')
        fail(job, { error: new Error('outside the window'), kind: 'deferred', verdict: deferred }, true);
      if (event === 'rails-failed') fail(job, { error: new Error('rails unreachable'), kind: 'failed' }, true);
      if (event === 'rails-go-slot') slotTaken += 1;
      drive(event);
    }
    if ((effects & Effect.Claim) !== 0) claim();
    if ((effects & Effect.Restart) !== 0) restart();
    if ((effects & Effect.RecordRestart) !== 0) {
      if (down) {
        restartGivenUp = true;
        fail(job, { error: new Error('database out'), kind: 'unrecorded' }, true);
        drive('restart-unrecorded');
      } else {
        restartDurable = true;
        durable.claim = 'done';
        drive('restart-recorded');
      }
    }
    if ((effects & Effect.ReleaseClaim) !== 0) {
      if (down) drive('release-given-up');
      else {
        durable.claim = 'released';
        drive('claim-released');
      }
    }
    if ((effects & (Effect.RecordAck | Effect.RecordFailure | Effect.RecordDeadLetter)) !== 0) {
      // Shutdown comes while the tail's record is written, if it has not yet.
      if (s.shutdown !== 'none') stop.abort(new Error('shutdown'));
      if (down) {
        if (job.restart === 'restarted') restartGivenUp = true;
        drive('record-given-up');
      } else {
        recordWritten = true;
        if (job.restart === 'restarted') {
          restartDurable = true;
          durable.claim = 'done';
        }
        drive('record-written');
      }
    }
    const told = Effect.Ack | Effect.Nack | Effect.NackDeferred | Effect.NackCancelled | Effect.DeadLetter;
    if ((effects & told) !== 0) drive('broker-done');
  };

  const claim = (): void => {
    if (durable.claim === 'done') return drive('claim-done');
    if (durable.claim === 'intent') return drive('claim-in-doubt');
    if (s.rail === 'leash') return drive('claim-leashed');
    durable.claim = 'intent';
    drive('claim-free');
  };

  const restart = (): void => {
    // Shutdown comes while the restart runs.
    if (s.shutdown !== 'none') stop.abort(new Error('shutdown'));
    switch (delivery > 1 ? 'ok' : s.restart) {
      case 'ok':
        restartRan = true;
        durable.hostRestarts += 1;
        return drive('restarted');
      case 'in-doubt':
        durable.hostRestarts += 1;
        fail(job, { error: new Error('timed out'), kind: 'failed' }, true);
        return drive('restart-unknown');
      case 'cancelled':
        fail(job, { error: new Error('aborted before it started'), kind: 'cancelled' }, true);
        return drive('not-restarted');
      case 'rejected':
        fail(job, { error: new Error('404 no such container'), kind: 'rejected' }, true);
        return drive('not-restarted');
      case 'failed':
        fail(job, { error: new Error('exit 1'), kind: 'failed' }, true);
        return drive('not-restarted');
    }
  };

  drive('pulled');
  for (let turns = 0; pending.length > 0 || saveHeld; turns++) {
    check(turns < 100, 'the walk does not end');
    if (pending.length > 0) answer(pending.shift()!);
    else {
      saveHeld = false;
      saveReleased = true;
      answer(Effect.Save);
    }
  }
  check(ends === 1, 'the job never ended');
  check(!hostHeld, 'the host is still held at the end');
  check(hostFrees === hostGrants, 'the host given back once per grant');
  check(slotFrees === slotTaken, 'the restart slot given back once');
  check(restartsIssued <= 1, 'the restart issued twice in one delivery');
  if (ackRecordCarriesRestart) check(restartDurable, 'the ack record carried the restart');
  return { outcome: job.outcome, effects: seen };
}

const deferred = {
  action: 'defer',
  outcome: 'deferred-outside-window',
  reason: 'outside the window',
  delayMs: 60_000,
} as const;

const RESTARTS: RestartAnswer[] = ['ok', 'failed', 'in-doubt', 'cancelled', 'rejected'];
const SAVES: SaveAnswer[] = ['ok', 'failed'];
const RAILS = Object.keys(RAIL_EVENT) as Rail[];
const SHUTDOWNS: Shutdown[] = ['none', 'cancelled', 'cancelled, database out'];
const ORDERS: Order[] = ['save-first', 'save-last'];

const scenarios: Scenario[] = [];
for (const restart of RESTARTS)
  for (const save of SAVES)
    for (const rail of RAILS)
      for (const shutdown of SHUTDOWNS)
        for (const order of ORDERS) scenarios.push({ restart, save, rail, shutdown, order });

/** Delivery 1 as the scenario says, then (when the broker would bring it back) a redelivery where all goes well. */
function life(s: Scenario): { first: Walk; second: Walk | undefined; durable: Durable } {
  const durable: Durable = { claim: 'none', hostRestarts: 0 };
  const first = walk(s, 1, durable);
  const back = first.outcome !== 'acked' && first.outcome !== 'dead-lettered';
  const again: Scenario = { ...s, save: 'ok', shutdown: 'none', rail: s.rail === 'leash' ? 'leash' : 'none' };
  const second = back ? walk(again, 2, durable) : undefined;
  return { first, second, durable };
}

describe('the message machine', () => {
  it(`keeps its invariants on every walk (${scenarios.length} scenarios, each with its redelivery)`, () => {
    for (const s of scenarios) {
      const { first, second, durable } = (() => {
        try {
          return life(s);
        } catch (err) {
          throw new Error(`${JSON.stringify(s)}: ${(err as Error).message}`, { cause: err });
        }
      })();
      const where = `${JSON.stringify(s)}\n  ${first.effects.join('\n  ')}`;
      // Never a host restarted twice for one message, across deliveries (in doubt is not retried).
      expect(durable.hostRestarts, where).toBeLessThanOrEqual(1);
      // What the first delivery ends as, by the rules of the README's table.
      expect(first.outcome, where).toBe(expectedOutcome(s));
      // A redelivery after a restart that ran or may have run does not run it again, and ends acked.
      if (second !== undefined)
        expect(second.outcome, `${where}\nredelivery:\n  ${second.effects.join('\n  ')}`).toBe('acked');
    }
  });

  it('walks one message the short way: the ack record carries the restart, then the host goes', () => {
    const durable: Durable = { claim: 'none', hostRestarts: 0 };
    const w = walk({ restart: 'ok', save: 'ok', rail: 'none', shutdown: 'none', order: 'save-first' }, 1, durable);
    expect(w.effects).toEqual([
      'pulled [AcquireHost, Save]',
      'host-granted [Claim]',
      'saved',
      'claim-free [Restart]',
      'restarted [RecordAck]',
      'record-written [FreeHost, Ack]',
      'broker-done [End]',
    ]);
  });

  it('records the restart on its own when the save is still running, holding the host and slot until then', () => {
    const durable: Durable = { claim: 'none', hostRestarts: 0 };
    const w = walk(
      { restart: 'ok', save: 'ok', rail: 'concurrency', shutdown: 'none', order: 'save-last' },
      1,
      durable,
    );
    expect(w.effects).toEqual([
      'pulled [AcquireHost, Save]',
      'host-granted [CheckRails]',
      'rails-go-slot [Claim]',
      'claim-free [Restart]',
      'restarted [FreeSlot, RecordRestart]',
      'restart-recorded [FreeHost]',
      'saved [RecordAck]',
      'record-written [Ack]',
      'broker-done [End]',
    ]);
  });

  it('an event the state does not expect is a bug: IllegalTransition, for the central handler', () => {
    const job = jobOf(
      { restart: 'ok', save: 'ok', rail: 'none', shutdown: 'none', order: 'save-first' },
      1,
      new AbortController().signal,
    );
    expect(() => advance(job, 'host-granted')).toThrow(IllegalTransition);
    advance(job, 'pulled');
    expect(() => advance(job, 'restarted')).toThrow(/illegal transition: restarted with restart waiting-host/);
    expect(() => advance(job, 'pulled')).toThrow(IllegalTransition);
    expect(() => advance(job, 'broker-done')).toThrow(IllegalTransition);
    advance(job, 'saved');
    expect(() => advance(job, 'saved')).toThrow(IllegalTransition);
    // What escapes ends the job, with the host (held from here on) given back.
    advance(job, 'host-granted');
    expect(effectNames(advance(job, 'escaped'))).toEqual(['FreeHost', 'End']);
    expect(job.outcome).toBeUndefined();
    expect(advance(job, 'escaped')).toBe(0);
    expect(() => advance(job, 'claim-free')).toThrow(IllegalTransition);
  });
});

/** The first delivery's outcome, stated from the README's tables rather than from the machine. */
function expectedOutcome(s: Scenario): MachineJob['outcome'] {
  const down = s.shutdown === 'cancelled, database out';
  const cancelled = s.shutdown !== 'none';
  const railEvent = RAIL_EVENT[s.rail];
  const railStops =
    s.rail === 'host-lock-failed' ||
    railEvent === 'rail-deferred' ||
    railEvent === 'rail-skipped' ||
    railEvent === 'rails-failed' ||
    s.rail === 'leash';
  // Without a restart, shutdown comes while the tail's record is written: written, unless the
  // database is out (then given up and nacked back).
  if (railStops) {
    if (railEvent === 'rail-deferred') return 'deferred';
    if (down) return 'cancelled';
    if (s.save === 'failed' || s.rail === 'host-lock-failed' || railEvent === 'rails-failed') return 'nacked';
    return 'acked';
  }
  // With a restart, shutdown (and the database going out) comes while it runs: a save answered
  // after it fails.
  const saveOk = s.save === 'ok' && !(down && s.order === 'save-last');
  if (s.restart === 'ok') {
    // It ran: recorded (then acked, or nacked at shutdown), or left to its lease when it cannot be.
    if (down) return 'unsettled';
    if (cancelled) return saveOk ? 'acked' : 'cancelled';
    return saveOk ? 'acked' : 'nacked';
  }
  if (cancelled) return 'cancelled';
  if (s.restart === 'rejected') return 'dead-lettered';
  return 'nacked';
}
