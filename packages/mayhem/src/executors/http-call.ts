/**
 * One HTTP request on an undici dispatcher (a keep-alive pool), told apart by what matters to a
 * restart: did the request certainly not reach the server, or may it have?
 *
 * undici calls a handler's `onRequestStart` synchronously just before it writes the request to a
 * connected socket; aborting inside it means nothing is written. So a request that is still queued
 * or connecting when its timeout or shutdown comes is marked abandoned and dropped there: it
 * certainly never went out (`not-sent`). After `onRequestStart` it may have (`sent`), unless a
 * status came back — a status is an answer, whatever happens to the rest of the body.
 */
import type { Dispatcher } from 'undici';

export interface HttpRequest {
  readonly method: 'GET' | 'POST';
  /** Path and query, e.g. `/containers/web-1/restart?t=10`. */
  readonly path: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string;
}

export interface HttpAnswer {
  readonly status: number;
  /** The start of the body as text (at most {@link BODY_KEPT} bytes): enough for a reason. */
  readonly body: string;
}

/** Why a request got no status: where it was (`not-sent` = certainly not received) and what stopped it. */
export class HttpCallError extends Error {
  override readonly name = 'HttpCallError';

  constructor(
    message: string,
    readonly stage: 'not-sent' | 'sent',
    readonly why: 'timeout' | 'abort' | 'error',
    /** The system error code, when there was one (ECONNREFUSED, EMFILE, …). */
    readonly code?: string,
  ) {
    super(message);
  }
}

const BODY_KEPT = 2048;

/**
 * Send `req` on `dispatcher`; resolves with the status and the start of the body, or rejects with
 * an {@link HttpCallError}. Once a status has come, the timeout or an abort resolves with it.
 */
export function httpCall(
  dispatcher: Dispatcher,
  req: HttpRequest,
  o: { readonly timeoutMs: number; readonly signal: AbortSignal },
): Promise<HttpAnswer> {
  const { signal } = o;
  if (signal.aborted) return Promise.reject(new HttpCallError('cancelled before it was sent', 'not-sent', 'abort'));
  return new Promise<HttpAnswer>((resolve, reject) => {
    let controller: Dispatcher.DispatchController | undefined;
    let abandoned: Error | undefined;
    let status: number | undefined;
    let chunks: Buffer[] = [];
    let kept = 0;
    let done = false;

    const answer = (): HttpAnswer => ({ status: status!, body: Buffer.concat(chunks).toString('utf8') });
    const finish = (settle: () => void): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      settle();
    };
    // The timeout or shutdown: an answer already started is still an answer; else where it was decides.
    const stop = (why: 'timeout' | 'abort'): void => {
      if (done) return;
      const text = why === 'timeout' ? `no answer within ${o.timeoutMs} ms` : 'cancelled';
      const err = new HttpCallError(text, controller === undefined ? 'not-sent' : 'sent', why);
      // Settled first: aborting calls onResponseError at once, which must find it done.
      if (status !== undefined) finish(() => resolve(answer()));
      else finish(() => reject(err));
      if (controller === undefined) abandoned = err;
      else controller.abort(err);
    };
    const onAbort = (): void => stop('abort');
    const timer = setTimeout(() => stop('timeout'), o.timeoutMs);
    signal.addEventListener('abort', onAbort, { once: true });

    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(c) {
        // Called just before the request is written: dropped here, it never goes out.
        if (abandoned !== undefined) return c.abort(abandoned);
        controller = c;
      },
      onResponseStart(_c, statusCode) {
        if (statusCode < 200) return; // 1xx: informational, the real status follows
        // Known now, whatever happens to the body; it is still read to its end (bounded by the
        // timer), so the connection goes back to the pool before the next request wants one.
        status = statusCode;
      },
      onResponseData(_c, chunk) {
        if (done || kept >= BODY_KEPT) return;
        chunks.push(chunk.length + kept > BODY_KEPT ? chunk.subarray(0, BODY_KEPT - kept) : chunk);
        kept += chunk.length;
      },
      onResponseEnd() {
        finish(() => resolve(answer()));
        chunks = [];
      },
      onResponseError(_c, err) {
        if (status !== undefined) return finish(() => resolve(answer()));
        const code = (err as NodeJS.ErrnoException).code;
        const text =
          err.message && code && !err.message.includes(code) ? `${code}: ${err.message}` : err.message || String(code);
        finish(() => reject(new HttpCallError(text, controller === undefined ? 'not-sent' : 'sent', 'error', code)));
      },
    };
    try {
      dispatcher.dispatch({ method: req.method, path: req.path, headers: req.headers, body: req.body }, handler);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      finish(() => reject(new HttpCallError((err as Error).message, 'not-sent', 'error', code)));
    }
  });
}

/** The first line of a body, one line of printable text, at most `max` characters (for reasons). */
export function bodyLine(body: string, max = 200): string {
  // eslint-disable-next-line no-control-regex
  const line = (body.split(/\r?\n/).find((l) => l.trim() !== '') ?? '').replace(/[\u0000-\u001f\u007f]/g, ' ').trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

/** Close a pool: let open requests finish, but destroy it after `ms` (shutdown must not hang on it). */
export async function closePool(pool: Dispatcher, ms = 2000): Promise<void> {
  const force = setTimeout(() => void pool.destroy().catch(() => undefined), ms);
  try {
    await pool.close();
  } catch {
    // destroyed meanwhile
  } finally {
    clearTimeout(force);
  }
}
