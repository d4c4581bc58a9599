/**
 * `loopwatch attach <pid>`: the main thread's stack of a process started *without* loopwatch, through
 * node's own inspector. `SIGUSR1` makes node open its inspector on 127.0.0.1:9229; one WebSocket
 * session pauses the main thread (V8 interrupts it, so a blocked loop answers too), reads the frames,
 * resumes, and closes the inspector again (`process._debugEnd()`).
 *
 * What it cannot do on node 20: load loopwatch into the process. `import()` from an inspector
 * evaluation fails there (ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING) and loopwatch is ESM, so tasks,
 * busy time and reports stay invisible; only the stack of this moment is. While the port is open
 * (a few hundred ms) any local user could connect to it: that is node's SIGUSR1 design, and the
 * reason loopwatch's own endpoint is a socket only the owner can reach.
 */
import { errorText } from '../model/error-text.js';
import type { Frame } from '../model/report.js';
import { resolvePosition } from '../source/source-map-file.js';
import { AttachError } from './client.js';

const PORT = 9229;

interface Target {
  readonly webSocketDebuggerUrl: string;
}
interface CdpFrame {
  readonly functionName: string;
  readonly url: string;
  readonly location: { readonly scriptId: string; readonly lineNumber: number; readonly columnNumber?: number };
}

async function targets(): Promise<Target[]> {
  try {
    const r = await fetch(`http://127.0.0.1:${PORT}/json/list`);
    return (await r.json()) as Target[];
  } catch {
    return [];
  }
}

/** One CDP session over the global WebSocket (node ≥ 22, or 20 with --experimental-websocket). */
class Cdp {
  #id = 0;
  readonly #waiting = new Map<number, (m: { result?: unknown; error?: { message: string } }) => void>();
  #onPaused: ((frames: CdpFrame[]) => void) | undefined;
  readonly scriptUrls = new Map<string, string>();

  constructor(readonly ws: WebSocket) {
    ws.addEventListener('message', (e: MessageEvent) => {
      const m = JSON.parse(String(e.data)) as {
        id?: number;
        method?: string;
        params?: { callFrames: CdpFrame[]; scriptId: string; url: string };
        result?: unknown;
        error?: { message: string };
      };
      if (m.id !== undefined) {
        this.#waiting.get(m.id)?.(m);
        this.#waiting.delete(m.id);
      } else if (m.method === 'Debugger.scriptParsed' && m.params) this.scriptUrls.set(m.params.scriptId, m.params.url);
      else if (m.method === 'Debugger.paused' && m.params) this.#onPaused?.(m.params.callFrames);
    });
  }

  /** Sends without waiting for an answer (one that closes the session never gets one). */
  send(method: string, params: object = {}): void {
    this.ws.send(JSON.stringify({ id: ++this.#id, method, params }));
  }

  call<T>(method: string, params: object = {}): Promise<T> {
    const id = ++this.#id;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new AttachError(`loopwatch: ${method} got no answer`)), 3_000);
      this.#waiting.set(id, (m) => {
        clearTimeout(timer);
        if (m.error) reject(new AttachError(`loopwatch: ${method}: ${m.error.message}`));
        else resolve(m.result as T);
      });
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  nextPause(): Promise<CdpFrame[]> {
    return new Promise((resolve) => (this.#onPaused = resolve));
  }
}

/** The main thread's stack right now, innermost first, through the inspector `SIGUSR1` opens. */
export async function stackThroughInspector(pid: number): Promise<Frame[]> {
  if ((await targets()).length > 0)
    throw new AttachError(`loopwatch: 127.0.0.1:${PORT} is already taken by an inspector; not attaching through it`);
  try {
    process.kill(pid, 'SIGUSR1');
  } catch (e) {
    throw new AttachError(`loopwatch: cannot signal ${pid}: ${(e as NodeJS.ErrnoException).code ?? errorText(e)}`);
  }
  let list: Target[] = [];
  for (let i = 0; i < 40 && list.length === 0; i++) {
    await new Promise((r) => setTimeout(r, 50));
    list = await targets();
  }
  const url = list[0]?.webSocketDebuggerUrl;
  if (!url)
    throw new AttachError(
      `loopwatch: process ${pid} opened no inspector (not node, started with --disable-sigusr1, or a policy forbids it)`,
    );
  const ws = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    ws.addEventListener('open', () => resolve());
    ws.addEventListener('error', () =>
      reject(new AttachError(`loopwatch: could not connect to the inspector of ${pid}`)),
    );
  });
  const cdp = new Cdp(ws);
  try {
    const { result } = await cdp.call<{ result: { value?: unknown } }>('Runtime.evaluate', {
      expression: 'process.pid',
    });
    if (result.value !== pid)
      throw new AttachError(
        `loopwatch: the inspector on ${PORT} belongs to process ${String(result.value)}, not ${pid}`,
      );
    const paused = cdp.nextPause();
    await cdp.call('Debugger.enable');
    await cdp.call('Debugger.pause');
    const frames = await paused;
    await cdp.call('Debugger.resume');
    await cdp.call('Debugger.disable');
    return frames
      .slice(0, 12)
      .map((f) =>
        resolvePosition(
          f.functionName,
          f.url || cdp.scriptUrls.get(f.location.scriptId) || '',
          f.location.lineNumber,
          f.location.columnNumber ?? 0,
        ),
      );
  } finally {
    // Close the port SIGUSR1 opened: nothing is left listening.
    cdp.send('Runtime.evaluate', { expression: 'process._debugEnd()' });
    await new Promise((r) => setTimeout(r, 100));
    ws.close();
  }
}
