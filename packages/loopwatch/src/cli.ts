#!/usr/bin/env node
/**
 * `loopwatch`: ask a running process what it is doing (its attach endpoint, opened by
 * `loopwatch/register` or `enableDebug({ attach: true })`).
 *
 *   loopwatch list                 attachable processes
 *   loopwatch ps <pid>             tasks (--json, --name RE, --older-than 5s, --all, --ended)
 *   loopwatch pstree <pid>         who awaits whom, await cycles
 *   loopwatch where <pid> <task>   one task: where it waits, where it was created, who started it
 *   loopwatch top <pid>            live view (q quits, ↑/↓ select, Enter shows a task)
 *   loopwatch dump <pid>           the task dump `kill -USR2` prints, on this terminal
 *   loopwatch attach <pid>         a process started without loopwatch: its main thread now (--enable
 *                                  debug|production loads loopwatch into it)
 *   loopwatch replay <file>        a recording (LOOPWATCH_RECORD) in top, with a time cursor
 *   loopwatch export <file> --format chrome-trace [--out trace.json]   for Perfetto / chrome://tracing / DevTools
 */
import { AttachError, addressOf, ask, endpoints } from './attach/client.js';
import type {
  AttachAnswer,
  AttachCommand,
  EndedRow,
  ProcessInfo,
  TaskRow,
  WhereData,
  WorkRow,
} from './attach/protocol.js';
import {
  dataOf,
  endedView,
  endedWorkView,
  listView,
  psView,
  pstreeView,
  whereView,
  type PsFilter,
} from './attach/views.js';
import { formatText } from './sinks/text.js';
import type { Report } from './model/report.js';
import { errorText } from './model/error-text.js';

const USAGE = `usage: loopwatch list | ps <pid> [--json] [--name RE] [--older-than 5s] [--all] [--ended] | pstree <pid> | where <pid> <task> [--json] | top <pid> | dump <pid> | attach <pid> [--enable debug|production]
       loopwatch replay <recording> | export <recording> --format chrome-trace [--out trace.json]
  <pid> may be tcp:HOST:PORT (with --token T or LOOPWATCH_TOKEN) for an endpoint opened with LOOPWATCH_ATTACH=tcp:…\n`;

interface Args {
  readonly cmd: string;
  readonly positional: string[];
  readonly flags: Map<string, string | true>;
}

function parse(argv: readonly string[]): Args {
  const positional: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) positional.push(a);
    else if (['--name', '--older-than', '--token', '--format', '--out', '--enable'].includes(a))
      flags.set(a.slice(2), argv[++i] ?? '');
    else flags.set(a.slice(2), true);
  }
  return { cmd: positional.shift() ?? 'help', positional, flags };
}

function msOf(s: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(s.trim());
  if (!m) throw new AttachError(`loopwatch: ${JSON.stringify(s)} is not a duration (like 500ms, 5s, 2m)`);
  return Number(m[1]) * (m[2] === 'm' ? 60_000 : m[2] === 's' || m[2] === undefined ? 1000 : 1);
}

async function one(
  args: Args,
  cmd: AttachCommand,
  extra: { task?: number; work?: number } = {},
): Promise<AttachAnswer> {
  const target = args.positional[0];
  if (!target) throw new AttachError(`loopwatch ${cmd}: which process? (a pid; \`loopwatch list\` shows them)`);
  const token = args.flags.get('token');
  const a = await ask(addressOf(target, typeof token === 'string' ? token : undefined), { cmd, ...extra });
  if (!a.ok) throw new AttachError(`loopwatch: ${a.error ?? 'the endpoint refused'}`);
  return a;
}

async function main(argv: readonly string[]): Promise<void> {
  const args = parse(argv);
  const out = (s: string): boolean => process.stdout.write(s);
  switch (args.cmd) {
    case 'list': {
      const rows = await Promise.all(
        endpoints().map(async (pid) => {
          try {
            const a = await ask(addressOf(String(pid)), { cmd: 'info' }, 2_000);
            const { data } = dataOf<ProcessInfo>(a);
            return { pid, ...(data ? { info: data } : { note: a.busy ? 'busy' : '' }) };
          } catch (e) {
            return { pid, note: errorText(e) };
          }
        }),
      );
      out(rows.length === 0 ? 'no attachable processes\n' : listView(rows));
      return;
    }
    case 'ps': {
      const a = await one(args, args.flags.has('ended') ? 'ended' : 'ps');
      if (args.flags.has('json')) return void out(`${JSON.stringify(a)}\n`);
      const { data, head } = dataOf<{ tasks: TaskRow[]; ended: EndedRow[]; work?: WorkRow[]; endedWork?: WorkRow[] }>(
        a,
      );
      out(head);
      if (!data) return;
      if (args.flags.has('ended'))
        return void out(endedView(data.ended) + (data.endedWork?.length ? `\n${endedWorkView(data.endedWork)}` : ''));
      const name = args.flags.get('name');
      const older = args.flags.get('older-than');
      const filter: PsFilter = {
        ...(typeof name === 'string' ? { name: new RegExp(name) } : {}),
        ...(typeof older === 'string' ? { olderThanMs: msOf(older) } : {}),
        all: args.flags.has('all'),
      };
      out(psView(data.tasks, filter, data.work));
      return;
    }
    case 'pstree': {
      const a = await one(args, 'pstree');
      const { data, head } = dataOf<{ tasks: TaskRow[] }>(a);
      out(head);
      if (data) out(pstreeView(data.tasks));
      return;
    }
    case 'where': {
      const ref = (args.positional[1] ?? '').replace(/^#/, '');
      // `w3`: a work unit (trackWork); a plain number: a task.
      const work = /^w\d+$/.test(ref);
      const id = Number(work ? ref.slice(1) : ref);
      if (ref === '' || !Number.isInteger(id))
        throw new AttachError('loopwatch where: which task? (its id, or w<id> for a work unit, from `loopwatch ps`)');
      const a = await one(args, 'where', work ? { work: id } : { task: id });
      if (args.flags.has('json')) return void out(`${JSON.stringify(a)}\n`);
      const { data, head } = dataOf<WhereData>(a);
      out(head);
      if (data) out(whereView(data, work ? ref : id));
      return;
    }
    case 'dump': {
      const a = await one(args, 'dump');
      const { data, head } = dataOf<Report>(a);
      out(head);
      if (data) out(formatText(data));
      return;
    }
    case 'top': {
      const target = args.positional[0];
      if (!target) throw new AttachError('loopwatch top: which process? (a pid; `loopwatch list` shows them)');
      // ink needs a terminal on both ends (raw-mode keys in, redraws out); without one it dies in React.
      if (!process.stdin.isTTY || !process.stdout.isTTY) {
        process.stderr.write(
          `loopwatch top: needs a terminal; without one use \`loopwatch ps ${target}\` (--json for scripts)\n`,
        );
        process.exitCode = 2;
        return;
      }
      const token = args.flags.get('token');
      const { runTop } = await import('./attach/top.js');
      await runTop(addressOf(target, typeof token === 'string' ? token : undefined));
      return;
    }
    case 'attach': {
      const pid = Number(args.positional[0]);
      if (!Number.isInteger(pid) || pid <= 0) throw new AttachError('loopwatch attach: which process? (a pid)');
      const enable = args.flags.get('enable');
      if (enable !== undefined && enable !== 'debug' && enable !== 'production')
        throw new AttachError('loopwatch attach: --enable takes debug or production');
      const { runAttach } = await import('./attach/attach-command.js');
      await runAttach(pid, enable, argv);
      return;
    }
    case 'replay':
    case 'export': {
      const { recordingCommand } = await import('./record-cli.js');
      await recordingCommand(args.cmd, args.positional[0], args.flags);
      return;
    }
    default:
      out(USAGE);
      if (args.cmd !== 'help' && args.cmd !== '--help') process.exitCode = 2;
  }
}

// `loopwatch ps 1234 | head`: the reader went away; that is not an error.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});

main(process.argv.slice(2)).catch((e: unknown) => {
  // A user's mistake or a process that went away is one line, not a stack trace.
  process.stderr.write(`${errorText(e)}\n`);
  process.exitCode = 1;
});
