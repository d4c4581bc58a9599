/**
 * `--executor http`: restarts a host by POSTing to a webhook (`--restart-url`), over a keep-alive
 * pool (undici) to the URL's origin.
 *
 * The request: `POST <url with {host}/{instance} URL-encoded into its path or query>`, a JSON body
 * `{"messageId","instanceName","host","attempt","deliveryCount"}`, `Idempotency-Key: <messageId>`,
 * and the headers of `--restart-headers` (values never logged).
 *
 * The webhook's contract, and what the pipeline is told (the outcome it resolves with,
 * core/restart-outcome.ts):
 * - 2xx: `restarted`.
 * - 5xx, 408, 429: not restarted, try again → `not-restarted` (retried with backoff).
 * - any other 4xx (and 3xx, which is not followed): refused for good → `rejected`
 *   (dead-lettered at once with the status and the start of the body as the reason).
 * - no connection (refused, DNS, connect timeout), or still queued when the timeout or shutdown
 *   came: it never went out → `not-restarted` (with its `resource` when the machine was short of
 *   descriptors or memory) / `cancelled`.
 * - sent and no answer within `--restart-timeout`, or the connection dropped before the status:
 *   the webhook may have acted. Retried as `not-restarted` all the same (as 5xx are), which is safe
 *   only because every attempt of a message carries the same `Idempotency-Key`: **the webhook must
 *   treat a key it has seen as the same restart** (answer as before, restart nothing).
 * - sent, then shutdown: `unknown` → the restart stays in doubt (never repeated).
 *
 * Bounded: at most `maxCalls` (`--http-max-calls`) requests per message across its attempts and
 * deliveries. Each is counted with the message's record before it goes out (so a crash cannot lose
 * one), and counted again as "failed" once it is known to have done nothing (never sent, or
 * answered not-restarted). Past the cap nothing more is sent: if every request is known to have done
 * nothing, the restart failed for good (`rejected`, dead-lettered); if any may have arrived
 * unanswered, its outcome is `unknown` (left in doubt, never retried).
 */
import { Pool } from 'undici';
import type { Logger } from 'pino';
import type { CallCount, CallLedger, RestartContext, RestartExecutor } from '../core/contracts.js';
import { errorText } from '../core/errors.js';
import {
  cancelled,
  notRestarted,
  outcomeUnknown,
  rejected,
  RESTARTED,
  type RestartOutcome,
} from '../core/restart-outcome.js';
import { fillFields, splitFields, type Field, type FieldText } from './argv-template.js';
import { describeResourceFault, resourceFaultOf } from '../core/resource-fault.js';
import { bodyLine, closePool, httpCall, HttpCallError } from './http-call.js';
import { idempotencyKey } from './headers.js';
import { instanceOf, seconds } from './outcome.js';

/** A webhook URL with `{host}`/`{instance}` in its path or query. */
export interface UrlTemplate {
  /** `https://ops.example:8443`: fixed (a message never chooses the server). */
  readonly origin: string;
  /** The path and query, split around the fields. */
  readonly parts: FieldText;
  /** For logs: origin and path, without the query (it may hold a token). */
  readonly display: string;
}

/** Parse `--restart-url` once; throws an Error with a one-line reason. */
export function parseUrlTemplate(text: string): UrlTemplate {
  const m = /^(https?):\/\/([^/?#]*)([^#]*)$/i.exec(text.trim());
  if (m === null)
    throw new Error(
      `--restart-url must be an http:// or https:// URL without a #fragment, got ${JSON.stringify(text)}`,
    );
  const [, scheme, authority, rest] = m as unknown as [string, string, string, string];
  if (authority.includes('{'))
    throw new Error(
      '--restart-url: placeholders may only be in the path or query, never in the server part (a message must not choose where the request goes)',
    );
  if (authority.includes('@'))
    throw new Error(
      '--restart-url must not hold credentials: put them in --restart-headers (e.g. Authorization: Basic …)',
    );
  let origin: string;
  try {
    origin = new URL(`${scheme}://${authority}/`).origin;
  } catch {
    throw new Error(`--restart-url has an invalid server part: ${JSON.stringify(authority)}`);
  }
  const pathAndQuery = rest === '' ? '/' : rest;
  if (/\s/.test(pathAndQuery)) throw new Error('--restart-url must not contain spaces (encode them as %20)');
  const parts = splitFields(pathAndQuery, '--restart-url');
  // The whole thing must be a URL once the fields are in.
  try {
    new URL(origin + renderPath({ origin, parts, display: '' }, { host: 'h', instance: 'i' }));
  } catch {
    throw new Error(`--restart-url is not a valid URL: ${JSON.stringify(text)}`);
  }
  const q = pathAndQuery.indexOf('?');
  return { origin, parts, display: origin + (q < 0 ? pathAndQuery : pathAndQuery.slice(0, q)) };
}

export function renderPath(t: UrlTemplate, values: Readonly<Record<Field, string>>): string {
  return fillFields(t.parts, values, encodeURIComponent);
}

export interface HttpExecutorOptions {
  readonly url: UrlTemplate;
  /** Extra headers (from `--restart-headers`); their values are secrets. */
  readonly headers: Readonly<Record<string, string>>;
  readonly timeoutMs: number;
  readonly logger: Logger;
  /** Connections kept to the webhook at most; default 64. Requests beyond wait in the pool's queue. */
  readonly connections?: number;
  /** Requests per message at most, across attempts and deliveries (`--http-max-calls`); default 3. */
  readonly maxCalls?: number;
}

/** Headers every webhook request carries besides the file's (and its Idempotency-Key). */
export const FIXED_HEADERS = { 'content-type': 'application/json', 'user-agent': 'mayhem-mandrill' } as const;

/**
 * One request's outcome, and whether it is known to have done nothing (never sent, or answered
 * not-restarted): a request sent and not answered is retried as `not-restarted`, but it may have arrived.
 */
interface Posted {
  readonly outcome: RestartOutcome;
  readonly didNothing: boolean;
}

export class HttpRestartExecutor implements RestartExecutor {
  readonly #o: HttpExecutorOptions;
  readonly #pool: Pool;
  readonly #headers: Record<string, string>;

  constructor(options: HttpExecutorOptions) {
    this.#o = options;
    // Our own timer bounds each request; undici's are a backstop behind it.
    const backstop = options.timeoutMs + 1000;
    this.#pool = new Pool(options.url.origin, {
      connections: options.connections ?? 64,
      keepAliveTimeout: 30_000,
      headersTimeout: backstop,
      bodyTimeout: backstop,
      connect: { timeout: Math.min(options.timeoutMs, 10_000) },
    });
    this.#headers = { ...options.headers, ...FIXED_HEADERS };
  }

  /** The sockets the pool has opened so far (keep-alive reuses them). */
  get stats(): { connected: number; size: number } {
    return { connected: this.#pool.stats.connected, size: this.#pool.stats.size };
  }

  async restart(hostname: string, signal: AbortSignal, context?: RestartContext): Promise<RestartOutcome> {
    if (signal.aborted) return cancelled(`Restart of ${hostname} cancelled before its request was sent`);
    const ledger = context?.calls;
    const messageId = context?.messageId ?? '';
    if (ledger === undefined || messageId === '') return (await this.#post(hostname, signal, context)).outcome;
    const count = await this.#beginCall(ledger, messageId, hostname);
    // Not called: the cap or the ledger said why.
    if (!('calls' in count)) return count;
    const { outcome, didNothing } = await this.#post(hostname, signal, context);
    // Known to have done nothing: the next delivery must not count it as a call that may have restarted.
    if (didNothing)
      await ledger.record(messageId, { calls: count.calls + 1, failed: count.failed + 1 }).catch(() => undefined);
    return outcome;
  }

  /** Read the message's calls; refuse past the cap (the outcome), else record this one before it goes out. */
  async #beginCall(ledger: CallLedger, messageId: string, hostname: string): Promise<CallCount | RestartOutcome> {
    const max = this.#o.maxCalls ?? 3;
    let count: CallCount;
    try {
      count = await ledger.read(messageId);
    } catch (err) {
      return notRestarted(`could not read how often the webhook was called for ${hostname}: ${errorText(err)}`);
    }
    if (count.calls >= max) {
      const made = `${count.calls} calls to the webhook ${this.#o.url.display} were made for this message (--http-max-calls ${max})`;
      if (count.failed >= count.calls)
        return rejected(`${made}, each known to have done nothing; not calling again for ${hostname}`);
      return outcomeUnknown(
        `${made} and ${count.calls - count.failed} got no answer; it may have restarted ${hostname}, so it is not called again`,
      );
    }
    try {
      await ledger.record(messageId, { calls: count.calls + 1, failed: count.failed });
    } catch (err) {
      return notRestarted(`could not record the webhook call for ${hostname} before making it: ${errorText(err)}`);
    }
    return count;
  }

  async #post(hostname: string, signal: AbortSignal, context: RestartContext | undefined): Promise<Posted> {
    const instance = instanceOf(hostname, context);
    const messageId = context?.messageId ?? '';
    const body = JSON.stringify({
      messageId,
      instanceName: instance,
      host: hostname,
      attempt: context?.attempt ?? 1,
      deliveryCount: context?.deliveryCount ?? 1,
    });
    const headers =
      messageId === '' ? this.#headers : { ...this.#headers, 'idempotency-key': idempotencyKey(messageId) };
    let status: number;
    let text: string;
    try {
      ({ status, body: text } = await httpCall(
        this.#pool,
        { method: 'POST', path: renderPath(this.#o.url, { host: hostname, instance }), headers, body },
        { timeoutMs: this.#o.timeoutMs, signal },
      ));
    } catch (err) {
      // Anything but the call's own failure is a bug: it goes to the central handler, not the table.
      if (!(err instanceof HttpCallError)) throw err;
      const to = `the webhook ${this.#o.url.display} for ${hostname}`;
      if (err.stage === 'not-sent') {
        // No connection for want of descriptors or memory: retried until there are (not a fault of the far end).
        const resource = resourceFaultOf(err);
        if (resource !== undefined)
          return nothing(
            notRestarted(
              `could not connect for the restart of ${hostname}: ${describeResourceFault(resource)}`,
              resource,
            ),
          );
        if (err.why === 'abort')
          return nothing(cancelled(`Restart of ${hostname} cancelled before its request was sent`));
        return nothing(
          notRestarted(
            err.why === 'timeout'
              ? `could not send to ${to} within ${seconds(this.#o.timeoutMs)}`
              : `could not reach ${to}: ${err.message}`,
          ),
        );
      }
      if (err.why === 'abort')
        return mayHaveArrived(
          outcomeUnknown(
            `the request to ${to} was sent and shutdown came before its answer; it may have restarted the host`,
            true,
          ),
        );
      // Sent, no answer: retried, safe by the Idempotency-Key (see the module comment).
      return mayHaveArrived(
        notRestarted(
          err.why === 'timeout'
            ? `no answer from ${to} within ${seconds(this.#o.timeoutMs)} (retried with the same Idempotency-Key)`
            : `the connection to ${to} failed before its answer: ${err.message} (retried with the same Idempotency-Key)`,
        ),
      );
    }
    if (status >= 200 && status < 300) return ANSWERED_RESTARTED;
    const said = bodyLine(text);
    const reason = `the webhook answered HTTP ${status} for ${hostname}${said ? `: ${said}` : ''}`;
    return nothing(status >= 500 || status === 408 || status === 429 ? notRestarted(reason) : rejected(reason));
  }

  /** Close the pool's connections (after the last restart); requests still open get 2 s. */
  close(): Promise<void> {
    return closePool(this.#pool);
  }
}

const ANSWERED_RESTARTED: Posted = { outcome: RESTARTED, didNothing: false };

function nothing(outcome: RestartOutcome): Posted {
  return { outcome, didNothing: true };
}

function mayHaveArrived(outcome: RestartOutcome): Posted {
  return { outcome, didNothing: false };
}
