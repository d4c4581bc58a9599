/**
 * Rotating rounds for the whole-server benches: every mode once per round, the order rotated so no
 * mode always runs first (or right after another); then medians and each mode's per-round ratio to
 * `plain` (the pairs hold when the machine's speed drifts between rounds).
 */

export const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** Run `measure` for every mode, `rounds` times, printing each round; the figures by mode. */
export async function rotateRounds(
  modes: readonly string[],
  rounds: number,
  measure: (mode: string) => Promise<number>,
  show: (x: number) => string,
  unit: string,
): Promise<Map<string, number[]>> {
  const results = new Map<string, number[]>(modes.map((m) => [m, []]));
  for (let round = 0; round < rounds; round++) {
    const order = modes.map((_, i) => modes[(i + round) % modes.length]!);
    const line: string[] = [];
    for (const mode of order) {
      const x = await measure(mode);
      results.get(mode)!.push(x);
      line.push(`${mode} ${show(x)}`);
    }
    process.stdout.write(`round ${round + 1}: ${line.join(', ')} ${unit}\n`);
  }
  return results;
}

/** One line per mode: median, min, max, and against `plain` the median ratio and the per-round ratios. */
export function printVsPlain(results: Map<string, number[]>, header: string, show: (x: number) => string): void {
  const plain = results.get('plain') ?? [];
  const width = Math.max(...[...results.keys()].map((m) => m.length)) + 1;
  const pct = (r: number): string => `${(r * 100).toFixed(1)}%`;
  process.stdout.write(`\n${header}\n`);
  for (const [mode, xs] of results) {
    const ratios = plain.length === xs.length ? xs.map((x, i) => x / plain[i]!) : [];
    const vs =
      mode === 'plain' || ratios.length === 0
        ? ''
        : `  median/median ${pct(median(xs) / median(plain))}, median of per-round ratios ${pct(median(ratios))} (min ${pct(Math.min(...ratios))}, max ${pct(Math.max(...ratios))})`;
    process.stdout.write(
      `${mode.padEnd(width)} median ${show(median(xs)).padStart(7)}  min ${show(Math.min(...xs))}  max ${show(Math.max(...xs))}${vs}\n`,
    );
  }
}
