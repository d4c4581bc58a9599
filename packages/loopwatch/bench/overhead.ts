/**
 * Overhead of loopwatch's modes on a promise-heavy workload, in one process: plain, production and
 * debug runs alternate (so machine noise hits all three alike) and the best of each is compared.
 * Usage: node packages/loopwatch/dist/bench/overhead.js [messages=20000] [rounds=5]
 */
import { setImmediate as tick } from 'node:timers/promises';
import { disable, enableDebug, enableProduction } from '../src/index.js';
import type { Report } from '../src/model/report.js';

const MESSAGES = Number(process.argv[2] ?? 20_000);
const ROUNDS = Number(process.argv[3] ?? 5);
let reports = 0;
const kinds = new Map<string, number>();
const sink = { write: (r: Report): void => void (reports++, kinds.set(r.kind, (kinds.get(r.kind) ?? 0) + 1)) };

interface Msg {
  id: number;
  host: string;
  saved: boolean;
  restarted: boolean;
}

/** A small queue with waiting consumers, like asyncio.Queue. */
class Queue<T> {
  readonly #items: T[] = [];
  readonly #waiters: ((v: T) => void)[] = [];
  put(v: T): void {
    const w = this.#waiters.shift();
    if (w) w(v);
    else this.#items.push(v);
  }
  async get(): Promise<T> {
    const v = this.#items.shift();
    if (v !== undefined) return v;
    return new Promise<T>((resolve) => this.#waiters.push(resolve));
  }
}

async function save(m: Msg): Promise<void> {
  await Promise.resolve();
  const row = JSON.parse(JSON.stringify(m)) as Msg;
  m.saved = row.id === m.id;
}

async function restartHost(m: Msg): Promise<void> {
  await Promise.resolve(null);
  m.restarted = m.host.length > 0;
}

async function handleMessage(m: Msg): Promise<void> {
  await Promise.all([save(m), restartHost(m)]);
}

async function publish(q: Queue<Msg | null>, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    q.put({ id: i, host: `cattle-${(i % 1000).toString(36)}.example.net`, saved: false, restarted: false });
    if (i % 64 === 0) await tick();
  }
  q.put(null);
}

async function consume(q: Queue<Msg | null>): Promise<number> {
  let done = 0;
  const inflight = new Set<Promise<void>>();
  for (;;) {
    const m = await q.get();
    if (m === null) break;
    const p = handleMessage(m).then(() => {
      done++;
      inflight.delete(p);
    });
    inflight.add(p);
  }
  await Promise.all(inflight);
  return done;
}

async function pipeline(n: number): Promise<number> {
  const q = new Queue<Msg | null>();
  const [, done] = await Promise.all([publish(q, n), consume(q)]);
  return done;
}

type Mode = 'plain' | 'production' | 'debug';
async function timed(mode: Mode): Promise<number> {
  if (mode === 'debug') enableDebug({ sink });
  if (mode === 'production') enableProduction({ sink });
  const t0 = performance.now();
  const done = await pipeline(MESSAGES);
  const ms = performance.now() - t0;
  await disable();
  if (done !== MESSAGES) throw new Error(`lost messages: ${done}/${MESSAGES}`);
  return (MESSAGES / ms) * 1000;
}

const runs: Record<Mode, number[]> = { plain: [], production: [], debug: [] };
await pipeline(2_000); // warm-up
for (let r = 0; r < ROUNDS; r++) {
  for (const mode of ['plain', 'production', 'debug'] as const) runs[mode].push(await timed(mode));
}
const best = (m: Mode): number => Math.max(...runs[m]);
const median = (m: Mode): number => {
  const v = [...runs[m]].sort((a, b) => a - b);
  const mid = Math.floor(v.length / 2);
  return v.length % 2 === 1 ? (v[mid] ?? 0) : ((v[mid - 1] ?? 0) + (v[mid] ?? 0)) / 2;
};
// Rounds alternate, so each round's ratio compares runs that saw the same machine load.
const roundRatio = (m: Mode): number => {
  const ratios = runs[m].map((v, i) => v / (runs.plain[i] ?? v)).sort((a, b) => a - b);
  const mid = Math.floor(ratios.length / 2);
  return ratios.length % 2 === 1 ? (ratios[mid] ?? 0) : ((ratios[mid - 1] ?? 0) + (ratios[mid] ?? 0)) / 2;
};
const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;
const line = (m: Mode, target: string): string =>
  `${m.padEnd(11)} best ${best(m).toFixed(0).padStart(7)}  median ${median(m).toFixed(0).padStart(7)}` +
  (m === 'plain'
    ? ''
    : `  keeps ${pct(best(m) / best('plain'))} (best/best), ${pct(roundRatio(m))} (median of per-round ratios) ${target}`);
console.log(`messages=${MESSAGES} rounds=${ROUNDS} (msgs/s)`);
console.log(line('plain', ''));
console.log(line('production', '(target ≥ 97%)'));
console.log(line('debug', '(target ≥ 20%, 40% better)'));
console.log(`reports during the bench: ${reports} ${JSON.stringify([...kinds])}`);
