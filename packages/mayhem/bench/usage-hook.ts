/**
 * `node --import bench/usage-hook.js …`: when the process exits, write its CPU time (every thread)
 * and peak RSS to the file named by MAYHEM_BENCH_USAGE. Lets the whole-process bench measure the
 * real `mayhem` command without a line of bench code in it.
 */
import { writeFileSync } from 'node:fs';

const file = process.env.MAYHEM_BENCH_USAGE;
if (file !== undefined && file !== '') {
  process.on('exit', () => {
    const cpu = process.cpuUsage();
    writeFileSync(file, JSON.stringify({ cpuUs: cpu.user + cpu.system, maxRssKB: process.resourceUsage().maxRSS }));
  });
}
