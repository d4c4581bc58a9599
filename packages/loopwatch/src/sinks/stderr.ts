/**
 * Synchronous stderr writes, bound before loopwatch wraps `fs.*Sync`, so our own output neither trips
 * the thread-affinity check nor is lost when the process exits right after a report.
 */
import fs from 'node:fs';

const writeSync = fs.writeSync.bind(fs);

export function writeStderr(text: string): void {
  try {
    writeSync(2, text);
  } catch {
    // EAGAIN on a non-blocking pipe: fall back to the stream.
    process.stderr.write(text);
  }
}
