/**
 * Blast radius as a share of an inventory (`--max-restart-percent P --blast-window W`): at most
 * `cap(P, N)` distinct hosts restarted per window, fleet-wide. The rule is stated here once; each
 * storage adapter keeps the fleet's restart times and applies {@link blastTake} atomically (under
 * its own lock), and the preview applies the same function to its simulated times.
 *
 *   N = the inventory's hosts (a file or URL), or, without one, the distinct hosts the fleet decided
 *       on in the window (the audit trail) plus the host being decided
 *   cap = floor(P × N / 100), at least 1
 *
 * Floor, because the percentage is a ceiling not to cross; at least 1, because a cap of 0 would
 * make the rail refuse everything, which is --deny-hosts' job. A host already restarted in the
 * window may be restarted again without counting twice (the share is of hosts, not restarts).
 */

/** The rail's settings. */
export interface BlastRadius {
  /** 0 < percent ≤ 100. */
  readonly percent: number;
  readonly windowMs: number;
  /** The inventory's hosts; undefined: the hosts seen in the window. */
  readonly inventory?: readonly string[] | undefined;
  /** Where the inventory came from (a file or URL), for messages. */
  readonly inventorySource?: string | undefined;
}

/** What a take found. */
export interface BlastTake {
  /** The host may be restarted (and its restart time is stamped now). */
  readonly ok: boolean;
  /** When each other host restarted in the window was last restarted (ms), oldest first. */
  readonly others: readonly number[];
}

/** The most distinct hosts a window may see restarted. */
export function blastCap(percent: number, inventorySize: number): number {
  // The epsilon keeps 50 % of 6 at 3 where 0.5 × 6 is 2.9999… in floating point.
  return Math.max(1, Math.floor((percent * inventorySize) / 100 + 1e-9));
}

/**
 * The rule, on the fleet's restart times in the window (`host → ms`): `host` may go when it was
 * restarted in the window already, or fewer than `cap` other hosts were.
 */
export function blastTake(restarted: ReadonlyMap<string, number>, host: string, cap: number): BlastTake {
  const others: number[] = [];
  for (const [h, at] of restarted) if (h !== host) others.push(at);
  others.sort((a, b) => a - b);
  return { ok: restarted.has(host) || others.length < cap, others };
}

/** When a refused take's window has room again: once enough of the oldest have left it. */
export function blastReopensAt(take: BlastTake, cap: number, windowMs: number): number {
  return (take.others[Math.max(0, take.others.length - cap)] ?? 0) + windowMs;
}
