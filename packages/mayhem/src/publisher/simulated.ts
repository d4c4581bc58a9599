/**
 * The article's `publish`: invents restart requests (`cattle-xxxx`) at a steady rate. At rate 0 it
 * publishes as fast as the loop allows, one chunk per turn, so the consumer and timers keep their turns.
 */
import { randomUUID } from 'node:crypto';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { encodeRestartRequest } from '../core/message.js';
import { sleep } from '../core/timing.js';

export interface SimulatedPublisherOptions {
  /** Messages per second; 0 = as fast as possible. */
  readonly rate: number;
  /** Stop after this many; undefined = until aborted. */
  readonly count: number | undefined;
  readonly random: () => number;
  /** Messages per loop turn at rate 0. */
  readonly chunk?: number;
  /**
   * Backpressure: a promise to wait on while the sink is full, undefined when it has room for one
   * more. Asked before every message, so the sink's bound holds exactly.
   */
  readonly waitForRoom?: (signal: AbortSignal) => Promise<unknown> | undefined;
  /** Fault injection: every Nth message is malformed (see {@link malformedPayload}); undefined = never. */
  readonly malformedEvery?: number | undefined;
  /** Pick instance names from this list instead of inventing `cattle-xxxx`. */
  readonly instances?: readonly string[] | undefined;
  /** How: each in turn (default), or uniformly at random. */
  readonly pick?: 'round-robin' | 'random';
}

const CHOICES = 'abcdefghijklmnopqrstuvwxyz0123456789';

export function randomInstanceName(random: () => number): string {
  let id = '';
  for (let i = 0; i < 4; i++) id += CHOICES[Math.floor(random() * CHOICES.length)];
  return `cattle-${id}`;
}

/**
 * The k-th malformed payload (k ≥ 1), cycling through the ways a message can be malformed:
 * not JSON, a required field missing, a field of the wrong shape.
 */
export function malformedPayload(k: number, messageId: string): string {
  switch (k % 3) {
    case 1:
      return `not json: restart ${messageId}`;
    case 2:
      return JSON.stringify({ messageId, publishedAt: new Date().toISOString() });
    default:
      return JSON.stringify({ messageId, instanceName: 'not a hostname!', publishedAt: new Date().toISOString() });
  }
}

/** Publish until `count` or `signal`; resolves with how many were published. */
export async function runSimulatedPublisher(
  publish: (payload: string, messageId: string) => void,
  o: SimulatedPublisherOptions,
  signal: AbortSignal,
): Promise<number> {
  const limit = o.count ?? Infinity;
  let published = 0;
  // Wait until the sink has room for one more (asked before every message: its bound holds exactly).
  const room = async (wait: Promise<unknown> | undefined): Promise<void> => {
    while (wait !== undefined && !signal.aborted) {
      await wait;
      wait = o.waitForRoom?.(signal);
    }
  };
  const malformedEvery = o.malformedEvery ?? 0;
  const names = o.instances !== undefined && o.instances.length > 0 ? o.instances : undefined;
  let turn = 0;
  const pick = (): string => {
    if (names === undefined) return randomInstanceName(o.random);
    if (o.pick === 'random') return names[Math.floor(o.random() * names.length)]!;
    return names[turn++ % names.length]!;
  };
  const one = (): void => {
    const messageId = randomUUID();
    published += 1;
    if (malformedEvery > 0 && published % malformedEvery === 0)
      publish(malformedPayload(published / malformedEvery, messageId), messageId);
    else publish(encodeRestartRequest({ messageId, instanceName: pick(), publishedAt: Date.now() }), messageId);
  };
  try {
    if (o.rate === 0) {
      const chunk = o.chunk ?? 50;
      while (published < limit && !signal.aborted) {
        for (let i = 0; i < chunk && published < limit && !signal.aborted; i++) {
          const wait = o.waitForRoom?.(signal);
          if (wait !== undefined) await room(wait);
          if (!signal.aborted) one();
        }
        await nextTurn();
      }
    } else {
      const start = performance.now();
      while (published < limit && !signal.aborted) {
        // Publish what is due by now, then sleep until the next one is due (a steady token bucket).
        const due = Math.min(limit, Math.floor(((performance.now() - start) * o.rate) / 1000) + 1);
        while (published < due && !signal.aborted) {
          const wait = o.waitForRoom?.(signal);
          if (wait !== undefined) await room(wait);
          if (!signal.aborted) one();
        }
        const nextDueAt = start + (published * 1000) / o.rate;
        await sleep(Math.max(1, nextDueAt - performance.now()), signal);
      }
    }
  } catch (err) {
    if (!signal.aborted) throw err;
  }
  return published;
}
