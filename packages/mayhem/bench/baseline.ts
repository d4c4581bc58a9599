/**
 * The yardstick: a plain hand-written Node version of the article's pipeline — an async queue, a
 * task per message, extend and cleanup tasks, `Promise.allSettled` over save and restart, zero
 * latency. No flow control, no storage, no retries, no records: what our pipeline adds is the
 * difference between the two rows.
 */

interface Msg {
  readonly id: number;
  readonly hostname: string;
  restarted: boolean;
  saved: boolean;
  acked: boolean;
  extended: number;
}

/** asyncio.Event's twin. */
class Event {
  #set = false;
  #waiters: Array<() => void> = [];
  set(): void {
    this.#set = true;
    for (const w of this.#waiters) w();
    this.#waiters = [];
  }
  isSet(): boolean {
    return this.#set;
  }
  wait(): Promise<void> {
    return this.#set ? Promise.resolve() : new Promise((r) => this.#waiters.push(r));
  }
}

/** asyncio.Queue's twin (unbounded). */
class Queue<T> {
  #items: T[] = [];
  #head = 0;
  #getters: Array<(v: T) => void> = [];
  put(item: T): void {
    const g = this.#getters.shift();
    if (g) g(item);
    else this.#items.push(item);
  }
  get(): Promise<T> {
    if (this.#head < this.#items.length) return Promise.resolve(this.#items[this.#head++] as T);
    return new Promise((r) => this.#getters.push(r));
  }
}

export async function runBaseline(n: number): Promise<Record<string, number>> {
  const queue = new Queue<Msg>();
  for (let i = 0; i < n; i++)
    queue.put({
      id: i,
      hostname: `cattle-${i}.example.net`,
      restarted: false,
      saved: false,
      acked: false,
      extended: 0,
    });
  let acked = 0;
  let finished!: () => void;
  const allDone = new Promise<void>((r) => (finished = r));

  // The article's coroutines with their sleeps at zero: async functions that complete at once.
  // eslint-disable-next-line @typescript-eslint/require-await
  const restartHost = async (m: Msg): Promise<void> => {
    m.restarted = true;
  };
  // eslint-disable-next-line @typescript-eslint/require-await
  const save = async (m: Msg): Promise<void> => {
    m.saved = true;
  };
  const extend = async (m: Msg, e: Event): Promise<void> => {
    while (!e.isSet()) {
      m.extended += 1;
      await new Promise<void>((r) => setTimeout(r, 2000).unref());
    }
  };
  const cleanup = async (m: Msg, e: Event): Promise<void> => {
    await e.wait();
    m.acked = true;
    if (++acked === n) finished();
  };
  const handle = async (m: Msg): Promise<void> => {
    const e = new Event();
    void extend(m, e);
    void cleanup(m, e);
    await Promise.allSettled([save(m), restartHost(m)]);
    e.set();
  };
  const consume = async (): Promise<void> => {
    for (;;) {
      const m = await queue.get();
      void handle(m);
    }
  };

  const t0 = performance.now();
  void consume();
  await allDone;
  const ms = performance.now() - t0;
  return { msgPerSec: Math.round((n * 1000) / ms), ms: Math.round(ms) };
}
