/**
 * A long run of the real `mayhem run` on the embedded defaults at a steady rate: is the WAL bounded,
 * does retention hold the database at the size of its window, does memory stay flat? Samples the
 * files and the process every second and prints one line per minute.
 *
 *   node packages/mayhem/dist/bench/sustained.js [--minutes 10] [--rate 40000] [--retention 60s]
 *
 * A retention window of a minute stands in for days: at the bench rate a month cannot be run, but
 * the database reaching its window's size and staying there can be (rows per window × bytes per
 * row gives the figure for any window). The rate must stay below what the machine sustains, or
 * the in-memory broker's backlog grows instead.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    rate: { type: 'string', default: '40000' },
    retention: { type: 'string', default: '60s' },
  },
});
const minutes = Number(values.minutes);
const main = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'main.js');
const dir = mkdtempSync(join(tmpdir(), 'mayhem-bench-sustained-'));
const db = join(dir, 'mayhem.db');
const size = (f: string): number => {
  try {
    return statSync(f).size;
  } catch {
    return 0;
  }
};
const mb = (b: number): string => (b / 2 ** 20).toFixed(1);

const child = spawn(
  process.execPath,
  [
    main,
    'run',
    '--publish-rate',
    values.rate,
    '--restart-latency',
    '0',
    '--restart-failure-rate',
    '0',
    '--retention',
    values.retention,
    '--log-level',
    'warn',
    '--log-format',
    'json',
  ],
  { cwd: dir, stdio: ['ignore', 'inherit', 'inherit'] },
);
const rss = (): number => {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? NaN) * 1024;
  } catch {
    return NaN;
  }
};
let reader: Database.Database | undefined;
const rowsCreated = (): number => {
  try {
    reader ??= new Database(db, { readonly: true, fileMustExist: true });
    return reader.prepare('SELECT coalesce(max(id), 0) FROM message_rows').pluck().get() as number;
  } catch {
    return NaN;
  }
};

process.stdout.write(
  `sustained: mayhem run --publish-rate ${values.rate} --retention ${values.retention} for ${minutes} min (embedded defaults, UUID ids) in ${dir}\n`,
);
process.stdout.write('  min   msgs/s   WAL max MB   WAL now MB   db MB   live rows   RSS MB\n');
let walMax = 0;
let walMaxAll = 0;
let last = 0;
const started = Date.now();
for (let s = 1; s <= minutes * 60; s++) {
  await new Promise((r) => setTimeout(r, 1000));
  const wal = size(`${db}-wal`);
  walMax = Math.max(walMax, wal);
  walMaxAll = Math.max(walMaxAll, wal);
  if (s % 60 === 0) {
    const created = rowsCreated();
    const live = reader ? (reader.prepare('SELECT count(*) FROM message_rows').pluck().get() as number) : NaN;
    process.stdout.write(
      `  ${String(s / 60).padStart(3)}  ${String(Math.round((created - last) / 60)).padStart(7)}   ${mb(walMax).padStart(10)}   ${mb(wal).padStart(10)}  ${mb(size(db)).padStart(6)}  ${String(live).padStart(10)}  ${mb(rss()).padStart(7)}\n`,
    );
    last = created;
    walMax = 0;
  }
}
reader?.close();
child.kill('SIGTERM');
await new Promise((r) => child.once('exit', r));
process.stdout.write(
  `  largest WAL over ${((Date.now() - started) / 60_000).toFixed(1)} min: ${mb(walMaxAll)} MB (limit 64 MB); after shutdown: ${mb(size(`${db}-wal`))} MB WAL, ${mb(size(db))} MB database\n`,
);
rmSync(dir, { recursive: true, force: true });
