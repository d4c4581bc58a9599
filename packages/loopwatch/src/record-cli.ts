/** `loopwatch replay <file>` and `loopwatch export <file> --format chrome-trace [--out f]`. */
import fs from 'node:fs';
import { readRecording, RecordingError } from './record/reader.js';
import { toChromeTrace } from './record/chrome-trace.js';
import { Timeline } from './record/timeline.js';

export async function recordingCommand(
  cmd: 'replay' | 'export',
  file: string | undefined,
  flags: ReadonlyMap<string, string | true>,
): Promise<void> {
  if (!file) throw new RecordingError(`loopwatch ${cmd}: which recording? (the file LOOPWATCH_RECORD named)`);
  if (cmd === 'export') {
    const format = flags.get('format');
    if (format !== 'chrome-trace')
      throw new RecordingError('loopwatch export: --format chrome-trace is the format there is (Trace Event JSON)');
    const json = JSON.stringify(toChromeTrace(readRecording(file)));
    const outFile = flags.get('out');
    if (typeof outFile === 'string' && outFile !== '-') fs.writeFileSync(outFile, json);
    else process.stdout.write(`${json}\n`);
    return;
  }
  if (!process.stdout.isTTY || !process.stdin.isTTY) {
    process.stderr.write('loopwatch replay: needs a terminal (use `loopwatch export` for a file)\n');
    process.exitCode = 2;
    return;
  }
  const timeline = new Timeline(readRecording(file));
  const { runReplay } = await import('./attach/top.js');
  await runReplay(timeline, file);
}
