/**
 * Synchronous stderr writes, bound before loopwatch wraps `fs.*Sync`, so our own output neither trips
 * the thread-affinity check nor is lost when the process exits right after a report.
 *
 * Reports start on a fresh line: when stdout and stderr are the same terminal or file, a test
 * reporter's dots (`....`) leave the cursor mid-line, so the last character written to either stream
 * through `write()` is remembered and a newline is put first when needed.
 */
import fs from 'node:fs';

const writeSync = fs.writeSync.bind(fs);
const fstat = fs.fstatSync.bind(fs);

let midLine = false;
let tracking: (() => void) | undefined;

/**
 * `bigint: true` on purpose: node's sync stats share one result buffer, and `fs.realpathSync` (which
 * the ESM resolver uses) reads that buffer's file type for path components it has cached. After an
 * `fstat` of a piped stderr the buffer says FIFO, realpath stops early, and the next `import
 * 'loopwatch'` through a symlinked workspace package loaded a second copy of loopwatch (node 20).
 * BigInt stats land in a separate buffer.
 */
function sameTarget(a: number, b: number): boolean {
  try {
    const x = fstat(a, { bigint: true });
    const y = fstat(b, { bigint: true });
    return x.dev === y.dev && x.ino === y.ino && x.rdev === y.rdev;
  } catch {
    return false;
  }
}

function lastCharOf(chunk: unknown): string | undefined {
  if (typeof chunk === 'string') return chunk.length > 0 ? chunk[chunk.length - 1] : undefined;
  if (chunk instanceof Uint8Array) return chunk.length > 0 ? String.fromCharCode(chunk[chunk.length - 1]!) : undefined;
  return undefined;
}

/** Remembers whether the last write to stderr (and stdout, when it shares stderr's target) ended a line. */
export function trackLineStarts(): void {
  if (tracking) return;
  const streams: NodeJS.WriteStream[] = [process.stderr];
  if (sameTarget(1, 2)) streams.push(process.stdout);
  const undo: (() => void)[] = [];
  for (const stream of streams) {
    // eslint-disable-next-line @typescript-eslint/unbound-method
    const original = stream.write;
    const wrapped = function (this: NodeJS.WriteStream, chunk: unknown, ...rest: unknown[]): boolean {
      const c = lastCharOf(chunk);
      if (c !== undefined) midLine = c !== '\n';
      return (original as (this: NodeJS.WriteStream, ...a: unknown[]) => boolean).call(this, chunk, ...rest);
    };
    stream.write = wrapped;
    undo.push(() => {
      if (stream.write === (wrapped as typeof stream.write)) stream.write = original;
    });
  }
  tracking = () => {
    for (const u of undo) u();
  };
}

export function untrackLineStarts(): void {
  tracking?.();
  tracking = undefined;
  midLine = false;
}

export function writeStderr(text: string): void {
  const out = midLine ? `\n${text}` : text;
  midLine = false;
  try {
    writeSync(2, out);
  } catch {
    // EAGAIN on a non-blocking pipe: fall back to the stream.
    process.stderr.write(out);
  }
}
