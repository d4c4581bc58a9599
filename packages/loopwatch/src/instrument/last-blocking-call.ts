/**
 * The last blocking call that returned, for slow-callback attribution. Apart from `blocking.ts` so the
 * slow-callback watcher (production mode too) does not load the blocking-call wrappers.
 */
export interface BlockingCall {
  readonly api: string;
  readonly sites: NodeJS.CallSite[];
  readonly startMs: number;
  readonly endMs: number;
}

let last: BlockingCall | undefined;

export function noteBlockingCall(call: BlockingCall | undefined): void {
  last = call;
}

export function lastBlockingCall(): BlockingCall | undefined {
  return last;
}
