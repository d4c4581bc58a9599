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

const data = workerData as WatchdogWorkerData;
const format = data.stillBlockedFormat === 'json' ? formatJson : formatText;

new WatchdogLoop(
  data,
  (m) => parentPort?.postMessage(m),
  (r) => {
    try {
      writeSync(2, format(r));
    } catch {
      // stderr closed: nothing more to say.
    }
  },
).start();
