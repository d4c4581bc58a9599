/**
 * A GET for probes (http and prometheus): the status and the start of the body, within a timeout;
 * redirects are not followed (a health check that redirects is not the one that was asked for).
 * Rejects with a one-line reason when there is no answer.
 */
import { request } from 'undici';
import { errorText } from '../core/errors.js';

const BODY_KEPT = 256 * 1024;

export interface Answer {
  readonly status: number;
  readonly body: string;
}

export async function httpGet(url: string, timeoutMs: number, signal: AbortSignal): Promise<Answer> {
  const stop = AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]);
  try {
    const res = await request(url, { method: 'GET', signal: stop, headers: { 'user-agent': 'mayhem-mandrill probe' } });
    const chunks: Buffer[] = [];
    let kept = 0;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      if (kept < BODY_KEPT) chunks.push(chunk);
      kept += chunk.length;
      if (kept >= BODY_KEPT) {
        res.body.destroy();
        break;
      }
    }
    return { status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') };
  } catch (err) {
    if (stop.aborted && !signal.aborted) throw new Error(`no answer within ${timeoutMs} ms`);
    const code = (err as NodeJS.ErrnoException).code;
    const cause = (err as { cause?: NodeJS.ErrnoException }).cause?.code;
    throw new Error(cause ?? code ?? errorText(err));
  }
}

/** The URL as shown: no credentials, no query (it may hold a token). */
export function shownUrl(url: string): string {
  const u = new URL(url);
  return `${u.origin}${u.pathname}`;
}
