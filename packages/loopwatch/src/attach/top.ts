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
import { at, busyLine, duration, shortLoc, whereView } from './views.js';
import { errorText } from '../model/error-text.js';

// ink renders only the final frame when it believes it runs in CI (is-in-ci reads CI at import). An
// interactive `top` on a terminal is not CI output, whatever the environment says.
if (process.stdout.isTTY) {
  delete process.env['CI'];
  delete process.env['CONTINUOUS_INTEGRATION'];
}
const { Box, Text, render, useApp, useInput, useStdout } = await import('ink');

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
      `loop lag p50 ${i.lag.p50Ms.toFixed(1)} ms  p99 ${i.lag.p99Ms.toFixed(1)} ms  max ${i.lag.maxMs.toFixed(1)} ms   utilisation ${(top.utilization * 100).toFixed(0)}%   tasks ${i.tasks}`,
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

function Tasks({ top, selected, rows }: { top: TopData; selected: number; rows: number }): ReactElement {
  const head = `${'ID'.padEnd(7)} ${'NAME'.padEnd(22)} ${'BUSY ms'.padStart(9)} ${'IDLE'.padStart(8)} ${'AGE'.padStart(8)}  WAITING AT`;
  const start = Math.max(0, Math.min(selected - Math.floor(rows / 2), top.tasks.length - rows));
  const shown = top.tasks.slice(start, start + rows);
  return h(
    Box,
    { flexDirection: 'column', marginTop: 1 },
    h(Text, { bold: true }, head),
    ...shown.map((t, k) =>
      h(
        Text,
        { key: t.id, inverse: start + k === selected, wrap: 'truncate-end' },
        `${String(t.id).padEnd(7)} ${t.name.slice(0, 22).padEnd(22)} ${t.busyMs.toFixed(1).padStart(9)} ${duration(Math.max(0, t.ageMs - t.busyMs)).padStart(8)} ${duration(t.ageMs).padStart(8)}  ${at(t.waitingAt[0])}`,
      ),
    ),
  );
}

function Top({ address }: { address: Address }): ReactElement {
  const { exit } = useApp();
  const { stdout } = useStdout();
  const state = usePoll(address);
  // The selection follows the task (rows re-sort by busy time every refresh).
  const [selectedId, setSelectedId] = useState<number | undefined>();
  const [detail, setDetail] = useState<string | undefined>();
  const tasks = state.top?.tasks ?? [];
  const selected = Math.max(
    0,
    tasks.findIndex((t) => t.id === selectedId),
  );
  const setSelected = (f: (i: number) => number): void => setSelectedId(tasks[f(selected)]?.id);
  useInput((input, key) => {
    if (input === 'q' || (key.ctrl && input === 'c')) return exit();
    if (detail !== undefined) {
      if (key.escape || key.return) setDetail(undefined);
      return;
    }
    if (key.upArrow) setSelected((s) => Math.max(0, s - 1));
    if (key.downArrow) setSelected((s) => Math.min(tasks.length - 1, s + 1));
    const task = tasks[selected];
    if (key.return && task) {
      void ask(address, { cmd: 'where', task: task.id }, 3_000)
        .then((a) => setDetail(a.busy ? busyLine(a.busy, a.stale?.ageMs) : whereView(a.data as WhereData, task.id)))
        .catch((e: unknown) => setDetail(errorText(e)));
    }
  });
  const rows = Math.max(3, (stdout.rows || 24) - 14);
  const footer = h(
    Text,
    { dimColor: true },
    detail === undefined ? 'q quit  ↑/↓ select  Enter task detail' : 'Esc/Enter back  q quit',
  );
  if (!state.top)
    return h(
      Box,
      { flexDirection: 'column' },
      h(Text, null, state.error ?? (state.busy ? busyLine(state.busy, state.staleAgeMs) : 'attaching…')),
      footer,
    );
  return h(
    Box,
    { flexDirection: 'column' },
    h(Header, { top: state.top }),
    state.busy ? h(Text, { color: 'red' }, busyLine(state.busy, state.staleAgeMs).trimEnd()) : null,
    state.error ? h(Text, { color: 'red' }, state.error) : null,
    detail !== undefined
      ? h(Box, { marginTop: 1 }, h(Text, null, detail))
      : h(Box, { flexDirection: 'column' }, h(Slow, { top: state.top }), h(Tasks, { top: state.top, selected, rows })),
    footer,
  );
}

export async function runTop(address: Address): Promise<void> {
  const app = render(h(Top, { address }));
  await app.waitUntilExit();
}
