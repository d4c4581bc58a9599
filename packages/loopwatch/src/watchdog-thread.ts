/**
 * The stall watchdog's worker thread: the {@link WatchdogLoop} (instrument) wired to the main thread's
 * port and, for a stall that never ends, to the sinks' formatting (the main thread cannot print then).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { writeSync } from 'node:fs';
import { WatchdogLoop } from './instrument/watchdog-loop.js';
import type { WatchdogWorkerData } from './instrument/watchdog-protocol.js';
import { formatJson } from './sinks/json.js';
import { formatText } from './sinks/text.js';
import { ReportBus } from './reporting.js';

const data = workerData as WatchdogWorkerData;
const format = data.stillBlockedFormat === 'json' ? formatJson : formatText;
// The still-blocked report goes through a bus of its own with the main thread's policy and stamp: it
// honours LOOPWATCH_KINDS / _IGNORE / _SILENCE and carries pid and script like every other report.
const policy = data.stillBlockedPolicy;
const bus = new ReportBus(policy);
if (policy) bus.configure(policy);
bus.sink = {
  write: (r) => {
    try {
      writeSync(2, format(r));
    } catch {
      // stderr closed: nothing more to say.
    }
  },
};

new WatchdogLoop(
  data,
  (m) => parentPort?.postMessage(m),
  (r) => bus.emit(r),
).start();
