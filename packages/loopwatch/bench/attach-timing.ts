/**
 * How long `loopwatch attach <pid>` takes to answer, as a user waits for it (the whole command, node's
 * start-up included), on an idle process (its next timer a minute away) and on a busy one (its loop
 * blocked in a 3 s spin), and whether the inspector port is closed after it returned (for the busy one, once
 * its loop runs again). The target is 2 s.
 *
 *   node packages/loopwatch/dist/bench/attach-timing.js [rounds] [--before <another build's dist/src/cli.js>]
 *
 * With --before the two builds alternate round by round (the order flips every round), so a loaded
 * machine weighs on both alike. A command still running after 25 s is stopped and counted as 25 s.
 * Targets use node's default inspector port (older builds know no other): 127.0.0.1:9229 must be free.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { answers } from '../src/attach/cdp.js';

const TIMEOUT_MS = 25_000;
const TARGET_MS = 2_000;
const FIXTURE = fileURLToPath(new URL('../test/fixtures/attach-target.js', import.meta.url));
const AFTER = fileURLToPath(new URL('../src/cli.js', import.meta.url));

const args = process.argv.slice(2);
const beforeAt = args.indexOf('--before');
const before = beforeAt >= 0 ? args.splice(beforeAt, 2)[1] : undefined;
const rounds = Number(args[0] ?? 5);
const builds: [string, string][] = [['after', AFTER], ...(before ? [['before', before] as [string, string]] : [])];

const accepts = (port: number): Promise<boolean> => answers({ host: '127.0.0.1', port });

async function once(cli: string, kind: 'idle' | 'busy'): Promise<{ ms: number; closed: boolean; code: number | null }> {
  const target = spawn(process.execPath, [FIXTURE, kind], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  target.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  await new Promise((resolve) => target.stdout.once('data', resolve));
  await new Promise((r) => setTimeout(r, 200));
  const t0 = performance.now();
  const client = spawn(process.execPath, [cli, 'attach', String(target.pid)], { stdio: 'ignore' });
  const timer = setTimeout(() => client.kill('SIGINT'), TIMEOUT_MS);
  const code = await new Promise<number | null>((resolve) => client.on('exit', resolve));
  const ms = Math.min(performance.now() - t0, TIMEOUT_MS);
  clearTimeout(timer);
  // Closed for good: checked once the busy target's loop runs again (a pending start may reopen it).
  if (kind === 'busy' && !out.includes('crunched')) await new Promise((resolve) => target.stdout.once('data', resolve));
  await new Promise((r) => setTimeout(r, 300));
  const closed = !(await accepts(9229));
  target.kill('SIGKILL');
  await new Promise((resolve) => target.on('exit', resolve));
  // A door left open (an interrupted older build) dies with its target; wait for that before the next round.
  for (let i = 0; i < 50 && (await accepts(9229)); i++) await new Promise((r) => setTimeout(r, 100));
  return { ms, closed, code };
}

if (await accepts(9229)) {
  console.error('attach-timing: 127.0.0.1:9229 is taken; run it when no inspector listens there');
  process.exit(1);
}
const results = new Map<string, { ms: number[]; open: number; failed: number }>();
for (let r = 0; r < rounds; r++) {
  const order = r % 2 === 0 ? builds : [...builds].reverse();
  for (const [name, cli] of order) {
    for (const kind of ['idle', 'busy'] as const) {
      const x = await once(cli, kind);
      const key = `${name.padEnd(6)} ${kind}`;
      const acc = results.get(key) ?? { ms: [], open: 0, failed: 0 };
      acc.ms.push(x.ms);
      if (!x.closed) acc.open++;
      if (x.code !== 0) acc.failed++;
      results.set(key, acc);
    }
  }
}

console.log(`loopwatch attach, ${rounds} rounds, whole command wall time in ms (target ≤ ${TARGET_MS}):`);
for (const [key, { ms, open, failed }] of [...results].sort(([a], [b]) => a.localeCompare(b))) {
  const sorted = [...ms].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)]!;
  const fmt = (n: number): string => (n >= TIMEOUT_MS ? `≥${TIMEOUT_MS}` : String(Math.round(n))).padStart(6);
  console.log(
    `${key}  median ${fmt(median)}  min ${fmt(sorted[0]!)}  max ${fmt(sorted.at(-1)!)}  non-zero exit ${failed}/${ms.length}  port left open ${open}/${ms.length}`,
  );
}
