/**
 * `loopwatch top <pid>`: a live view refreshing every second — loop lag and utilisation, the slow
 * callbacks of the last minute with their culprit, tasks by busy time (Busy / Idle / Age / waiting
 * at). `q` quits, ↑/↓ select, Enter shows the selected task (Esc or Enter goes back).
 *
 * Built on ink (React for terminals): maintained, declarative (the view is a function of the last
 * answer), and it owns raw mode, resizing and redraws, which hand-written escape codes would not.
 */
import { createElement as h, useEffect, useState, type ReactElement } from 'react';
import type { Address, AttachAnswer, BusyInfo, TopData, WhereData } from './protocol.js';
import { ask } from './client.js';
import { at, busyLine, duration, shortKey, shortLoc, whereView, workRef } from './views.js';
import { errorText } from '../model/error-text.js';
import type { Timeline } from '../record/timeline.js';

// ink renders only the final frame when it believes it runs in CI (is-in-ci reads CI at import). An
// interactive `top` on a terminal is not CI output, whatever the environment says.
if (process.stdout.isTTY) {
  delete process.env['CI'];
  delete process.env['CONTINUOUS_INTEGRATION'];
}
const { Box, Text, render, useApp, useInput, useStdout } = await import('ink');
type InputKey = Parameters<Parameters<typeof useInput>[0]>[1];

const REFRESH_MS = 1000;

interface State {
  readonly top?: TopData;
  readonly busy?: BusyInfo;
  readonly staleAgeMs?: number;
  readonly error?: string;
}

function usePoll(address: Address): State {
  const [state, setState] = useState<State>({});
  useEffect(() => {
    let live = true;
    const poll = async (): Promise<void> => {
      try {
        const a: AttachAnswer = await ask(address, { cmd: 'top' }, 3_000);
        if (!live) return;
        if (!a.ok) setState((s) => ({ ...s, error: a.error ?? 'refused' }));
        else if (a.busy)
          setState((s) => ({
            top: (a.stale?.data as TopData | undefined) ?? s.top,
            busy: a.busy,
            ...(a.stale ? { staleAgeMs: a.stale.ageMs } : {}),
          }));
        else setState({ top: a.data as TopData });
      } catch (e) {
        if (live) setState((s) => ({ ...s, error: errorText(e) }));
      }
    };
    void poll();
    const timer = setInterval(() => void poll(), REFRESH_MS);
    return () => {
      live = false;
      clearInterval(timer);
    };
  }, [address]);
  return state;
}

function Header({ top }: { top: TopData }): ReactElement {
  const i = top.info;
  return h(
    Box,
    { flexDirection: 'column' },
    h(Text, { bold: true }, `loopwatch top  pid ${i.pid}  ${i.mode}  up ${duration(i.uptimeMs)}  ${i.command}`),
    h(
      Text,
      null,
      `loop lag p50 ${i.lag.p50Ms.toFixed(1)} ms  p99 ${i.lag.p99Ms.toFixed(1)} ms  max ${i.lag.maxMs.toFixed(1)} ms   utilisation ${(top.utilization * 100).toFixed(0)}%   tasks ${i.tasks}${i.work ? `   work ${i.work}` : ''}`,
    ),
  );
}

function Slow({ top }: { top: TopData }): ReactElement {
  // The longest first; one without a culprit (the analysis runs once a second) still says how long.
  const shown = [...top.slow].sort((a, b) => b.durationMs - a.durationMs).slice(0, 4);
  return h(
    Box,
    { flexDirection: 'column', marginTop: 1 },
    h(Text, { bold: true }, `slow callbacks, last minute: ${top.slow.length}`),
    ...shown.map((s, k) =>
      h(
        Text,
        { key: k },
        `  ${String(s.durationMs).padStart(6)} ms  ${duration(s.agoMs).padStart(6)} ago  ${s.functionName !== undefined ? `${s.functionName} (${s.location ? shortLoc(s.location) : '?'})` : '(not analysed: one turn a second is)'}${s.task ? `  task ${s.task}` : ''}`,
      ),
    ),
  );
}

/** One line of the table: a task, or a work unit (`trackWork`). */
interface Row {
  readonly key: string;
  readonly ref: { readonly task?: number; readonly work?: number };
  readonly text: string;
}

function rowsOf(top: TopData): Row[] {
  const tasks = top.tasks.map((t) => ({
    key: `t${t.id}`,
    ref: { task: t.id },
    text: `${String(t.id).padEnd(7)} ${t.name.slice(0, 22).padEnd(22)} ${t.busyMs.toFixed(1).padStart(9)} ${duration(Math.max(0, t.ageMs - t.busyMs)).padStart(8)} ${duration(t.ageMs).padStart(8)}  ${at(t.waitingAt[0])}`,
  }));
  // Work units: no busy time of their own; the phase and how long it has lasted stand in WAITING AT.
  const work = (top.work ?? []).map((w) => ({
    key: `w${w.id}`,
    ref: { work: w.id },
    text: `${workRef(w.id).padEnd(7)} ${`${w.kind} ${shortKey(w.key)}`.slice(0, 22).padEnd(22)} ${'-'.padStart(9)} ${duration(w.phaseMs).padStart(8)} ${duration(w.ageMs).padStart(8)}  ${w.phase || '(no phase)'}${w.waitingAt[0] ? `  ${at(w.waitingAt[0])}` : ''}`,
  }));
  return [...tasks, ...work];
}

function Tasks({ rows, selected, height }: { rows: readonly Row[]; selected: number; height: number }): ReactElement {
  const head = `${'ID'.padEnd(7)} ${'NAME'.padEnd(22)} ${'BUSY ms'.padStart(9)} ${'IDLE'.padStart(8)} ${'AGE'.padStart(8)}  WAITING AT`;
  const start = Math.max(0, Math.min(selected - Math.floor(height / 2), rows.length - height));
  const shown = rows.slice(start, start + height);
  return h(
    Box,
    { flexDirection: 'column', marginTop: 1 },
    h(Text, { bold: true }, head),
    ...shown.map((r, k) => h(Text, { key: r.key, inverse: start + k === selected, wrap: 'truncate-end' }, r.text)),
  );
}

interface ScreenProps {
  readonly state: State;
  /** The selected row's detail (`where`). */
  readonly where: (ref: Row['ref']) => Promise<string>;
  /** Keys of the screen's own (the replay's cursor); true when handled. */
  readonly onKey?: (input: string, key: InputKey) => boolean;
  readonly hint: string;
  readonly banner?: string;
}

function Screen({ state, where, onKey, hint, banner }: ScreenProps): ReactElement {
  const { exit } = useApp();
  const { stdout } = useStdout();
  // The selection follows the row (rows re-sort by busy time every refresh).
  const [selectedKey, setSelectedKey] = useState<string | undefined>();
  const [detail, setDetail] = useState<string | undefined>();
  const rows = state.top ? rowsOf(state.top) : [];
  const selected = Math.max(
    0,
    rows.findIndex((r) => r.key === selectedKey),
  );
  const setSelected = (f: (i: number) => number): void => setSelectedKey(rows[f(selected)]?.key);
  useInput((input, key) => {
    if (input === 'q' || (key.ctrl && input === 'c')) return exit();
    if (detail !== undefined) {
      if (key.escape || key.return) setDetail(undefined);
      return;
    }
    if (onKey?.(input, key)) return;
    if (key.upArrow) setSelected((s) => Math.max(0, s - 1));
    if (key.downArrow) setSelected((s) => Math.min(rows.length - 1, s + 1));
    const row = rows[selected];
    if (key.return && row) {
      where(row.ref)
        .then(setDetail)
        .catch((e: unknown) => setDetail(errorText(e)));
    }
  });
  const height = Math.max(3, (stdout.rows || 24) - 14 - (banner === undefined ? 0 : 1));
  const footer = h(Text, { dimColor: true }, detail === undefined ? hint : 'Esc/Enter back  q quit');
  const head = banner === undefined ? null : h(Text, { color: 'cyan' }, banner);
  if (!state.top)
    return h(
      Box,
      { flexDirection: 'column' },
      head,
      h(Text, null, state.error ?? (state.busy ? busyLine(state.busy, state.staleAgeMs) : 'attaching…')),
      footer,
    );
  return h(
    Box,
    { flexDirection: 'column' },
    head,
    h(Header, { top: state.top }),
    state.busy ? h(Text, { color: 'red' }, busyLine(state.busy, state.staleAgeMs).trimEnd()) : null,
    state.error ? h(Text, { color: 'red' }, state.error) : null,
    detail !== undefined
      ? h(Box, { marginTop: 1 }, h(Text, null, detail))
      : h(Box, { flexDirection: 'column' }, h(Slow, { top: state.top }), h(Tasks, { rows, selected, height })),
    footer,
  );
}

function Top({ address }: { address: Address }): ReactElement {
  const state = usePoll(address);
  const where = async (ref: Row['ref']): Promise<string> => {
    const a = await ask(address, { cmd: 'where', ...ref }, 3_000);
    const id = ref.work !== undefined ? workRef(ref.work) : (ref.task ?? -1);
    return a.busy ? busyLine(a.busy, a.stale?.ageMs) : whereView(a.data as WhereData, id);
  };
  return h(Screen, { state, where, hint: 'q quit  ↑/↓ select  Enter task detail' });
}

/** Cursor steps, ms. */
const STEPS: Record<string, number> = { ',': -100, '.': 100, '[': -10_000, ']': 10_000 };

function Replay({ timeline, file }: { timeline: Timeline; file: string }): ReactElement {
  const [t, setT] = useState(timeline.endMs);
  const clamp = (x: number): number => Math.min(timeline.endMs, Math.max(timeline.startMs, x));
  const turns = timeline.slowTurns();
  const onKey = (input: string, key: InputKey): boolean => {
    if (key.leftArrow || key.rightArrow) setT((x) => clamp(x + (key.leftArrow ? -1000 : 1000)));
    else if (STEPS[input] !== undefined) setT((x) => clamp(x + STEPS[input]!));
    else if (input === 'g') setT(timeline.startMs);
    else if (input === 'G') setT(timeline.endMs);
    // The next / previous slow turn: the cursor lands on its start.
    else if (input === 'n') setT((x) => clamp(turns.find((s) => s > x + 1) ?? x));
    else if (input === 'p') setT((x) => clamp([...turns].reverse().find((s) => s < x - 1) ?? x));
    else return false;
    return true;
  };
  const top = timeline.top(t);
  const span = timeline.endMs - timeline.startMs;
  const wall = new Date(timeline.rec.timeOrigin + t).toISOString().slice(11, 23);
  const banner = `replay ${file}  ${wall}  +${duration(t - timeline.startMs)} of ${duration(span)}  (recording ${timeline.rec.meta.mode} mode, pid ${timeline.rec.meta.pid})`;
  const where = (ref: Row['ref']): Promise<string> =>
    Promise.resolve(whereView(timeline.where(t, ref), ref.work !== undefined ? workRef(ref.work) : (ref.task ?? -1)));
  return h(Screen, {
    state: { top },
    where,
    onKey,
    banner,
    hint: 'q quit  ←/→ 1 s  ,/. 100 ms  [/] 10 s  g/G start/end  n/p next/prev slow turn  ↑/↓ select  Enter detail',
  });
}

export async function runTop(address: Address): Promise<void> {
  const app = render(h(Top, { address }));
  await app.waitUntilExit();
}

/** `loopwatch replay <file>`: the same screen over a recording, with a time cursor. */
export async function runReplay(timeline: Timeline, file: string): Promise<void> {
  const app = render(h(Replay, { timeline, file }));
  await app.waitUntilExit();
}
