/** Process helpers for executor tests: is a pid alive, and waiting for a file a child writes. */
import { existsSync, readFileSync, watch } from 'node:fs';
import { basename, dirname } from 'node:path';

/** Whether `pid` is a live process (a zombie counts as dead: it has exited, only not been reaped). */
export function alive(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false;
  }
  // "pid (comm) S ...": the state follows the last ')'.
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state !== 'Z' && state !== 'X';
}

/**
 * Resolves once none of `pids` is alive. A signalled process that is not our child has no event to
 * wait on, so this looks every 10 ms, and fails after `ms`.
 */
export async function allGone(pids: readonly number[], ms = 3000): Promise<void> {
  const deadline = performance.now() + ms;
  for (;;) {
    const living = pids.filter(alive);
    if (living.length === 0) return;
    if (performance.now() > deadline) throw new Error(`still alive after ${ms} ms: ${living.join(', ')}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Resolves with the file's text once it exists and ends with a newline (written by a child). */
export function fileWritten(path: string, ms = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const complete = (): string | undefined => {
      if (!existsSync(path)) return undefined;
      const text = readFileSync(path, 'utf8');
      return text.endsWith('\n') ? text : undefined;
    };
    const check = (): void => {
      const text = complete();
      if (text === undefined) return;
      clearTimeout(timer);
      watcher.close();
      resolve(text);
    };
    // Watch first, then look: a write between the two is not missed.
    const watcher = watch(dirname(path), (_event, name) => {
      if (name === null || name === basename(path)) check();
    });
    const timer = setTimeout(() => {
      watcher.close();
      reject(new Error(`${path} was not written within ${ms} ms`));
    }, ms);
    check();
  });
}
