/**
 * loopwatch's state belongs to one event loop (the main thread's). JS objects cannot cross threads,
 * but loopwatch can be imported in a worker too: refuse there, loudly, instead of watching the wrong loop.
 */
import { isMainThread, threadId } from 'node:worker_threads';

export class ThreadAffinityError extends Error {
  override readonly name = 'ThreadAffinityError';
}

export function assertOwnThread(owner: number, what: string): void {
  if (threadId !== owner) {
    throw new ThreadAffinityError(
      `loopwatch: ${what} belongs to the event loop of thread ${owner} and was used from thread ${threadId}`,
    );
  }
}

export function assertMainThread(what: string): void {
  if (!isMainThread) {
    throw new ThreadAffinityError(
      `loopwatch: ${what} watches the main thread's event loop; call it on the main thread, not in worker ${threadId}`,
    );
  }
}
