/** Opens the recording a {@link Loopwatch} was asked for (`record`), fed from its instruments. */
import type { Loopwatch } from './loopwatch.js';
import { Recorder } from './record/recorder.js';
import { commandLine } from './model/paths.js';
import { errorText } from './model/error-text.js';
import { writeStderr } from './sinks/stderr.js';

export function openRecording(
  lw: Loopwatch,
  file: string,
  maxBytes: number | undefined,
  mode: 'debug' | 'production',
): Recorder | undefined {
  const watchdog = lw.watchdog;
  try {
    return new Recorder({
      file,
      ...(maxBytes === undefined ? {} : { maxBytes }),
      clock: lw.clock,
      meta: { pid: process.pid, command: commandLine(), node: process.version, mode },
      liveTasks: () => (lw.tasks.tracking ? lw.tasks.pending() : []),
      liveWork: () => lw.work.live(),
      ...(watchdog ? { lag: (windowMs: number) => watchdog.lag(windowMs) } : {}),
    });
  } catch (e) {
    // A recording that cannot be opened costs the recording, never the program.
    writeStderr(`loopwatch: cannot record to ${file}: ${errorText(e)}\n`);
    return undefined;
  }
}
