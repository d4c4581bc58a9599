/**
 * `mayhem pause`, `mayhem resume` and `mayhem audit`: the kill switch and the audit trail, from any
 * terminal, against the database the service (or the fleet) runs on. The instances read the switch
 * every half second; these commands only open the database, write or read, and exit.
 */
import { hostname, userInfo } from 'node:os';
import { pino } from 'pino';
import { redactUrl } from '../core/redact.js';
import type { AuditEntry, FleetControl } from '../core/rails.js';
import { openPostgresStorage } from '../storage/postgres/storage.js';
import { openSqliteControl } from '../storage/sqlite/control.js';
import { ConfigError, type Config } from '../config/config.js';
import type { ExperimentStore } from '../core/experiment.js';
import { readReport, UnknownExperiment } from '../report/read.js';
import { renderReport } from '../report/render.js';
import { writeFileSync } from 'node:fs';

export interface OpenedControl {
  readonly control: FleetControl;
  readonly experiments: ExperimentStore;
  close(): Promise<void>;
}

export async function openControl(db: string): Promise<OpenedControl> {
  if (db.startsWith('sqlite:')) {
    // Beside the running service: its one-process lock is for services, not for these commands.
    const opened = openSqliteControl(db.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, ''));
    return opened;
  }
  const storage = await openPostgresStorage({ url: db, logger: pino({ level: 'silent' }), poolSize: 2 });
  return { control: storage.control(), experiments: storage.experiments(), close: () => storage.close() };
}

export function who(config: Config): string {
  if (config.instanceName !== undefined) return config.instanceName;
  let user = 'someone';
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry (a container): the host alone says enough
  }
  return `${user}@${hostname()}`;
}

/** Record a fleet-wide decision (pause, resume) in the audit trail, as the pipeline records its own. */
function auditSwitch(control: FleetControl, by: string, outcome: 'paused' | 'resumed', reason: string): void {
  control.audit({ at: Date.now(), instance: by, host: '*', messageId: '', executor: '', outcome, reason });
}

export async function runPause(config: Config): Promise<string> {
  const opened = await openControl(config.db);
  try {
    const by = who(config);
    const reason = config.reason ?? '';
    await opened.control.setPause({ by, at: Date.now(), reason });
    auditSwitch(opened.control, by, 'paused', reason);
    return `Restarts paused on ${redactUrl(config.db)} by ${by}${reason ? ` (${reason})` : ''}: every instance stops starting restarts within a second; \`mayhem resume\` lets them run again.\n`;
  } finally {
    await opened.close();
  }
}

export async function runResume(config: Config): Promise<string> {
  const opened = await openControl(config.db);
  try {
    const by = who(config);
    await opened.control.setPause(undefined);
    auditSwitch(opened.control, by, 'resumed', '');
    return `Restarts resumed on ${redactUrl(config.db)} by ${by}.\n`;
  } finally {
    await opened.close();
  }
}

export async function runAudit(config: Config): Promise<string> {
  const opened = await openControl(config.db);
  try {
    const entries = await opened.control.readAudit({
      since: Date.now() - config.since,
      host: config.host,
      limit: config.limit,
    });
    if (config.json)
      return (
        entries.map((e) => JSON.stringify({ ...e, at: new Date(e.at).toISOString() })).join('\n') +
        (entries.length > 0 ? '\n' : '')
      );
    return auditTable(entries, config);
  } finally {
    await opened.close();
  }
}

/** `mayhem report --experiment NAME`: the report as md, html or json, to stdout or --out. */
export async function runReport(config: Config): Promise<string> {
  const opened = await openControl(config.db);
  let text: string;
  try {
    const model = await readReport(config.experiment!, opened);
    text = renderReport(model, config.format);
  } catch (err) {
    if (err instanceof UnknownExperiment) throw new ConfigError(err.message);
    throw err;
  } finally {
    await opened.close();
  }
  if (config.out === undefined) return text;
  try {
    writeFileSync(config.out, text);
  } catch (err) {
    throw new ConfigError(`cannot write --out ${config.out}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  return `Wrote the ${config.format} report of experiment ${config.experiment!} to ${config.out} (${Buffer.byteLength(text)} bytes).\n`;
}

const COLUMNS = ['time', 'instance', 'host', 'message', 'executor', 'outcome', 'reason'] as const;

/** Newest first, one line each; long reasons are kept whole (the last column). */
export function auditTable(entries: readonly AuditEntry[], config: Pick<Config, 'since' | 'host'>): string {
  if (entries.length === 0)
    return `No audit entries${config.host !== undefined ? ` for ${config.host}` : ''} in the last ${Math.round(config.since / 60_000)} minutes.\n`;
  const rows = entries.map((e) => [
    new Date(e.at).toISOString().replace('T', ' ').replace('Z', ''),
    e.instance,
    e.host,
    e.messageId || '-',
    e.executor || '-',
    e.outcome,
    oneLine(e.reason),
  ]);
  const widths = COLUMNS.map((c, i) =>
    i === COLUMNS.length - 1 ? 0 : Math.max(c.length, ...rows.map((r) => r[i]!.length)),
  );
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(COLUMNS), ...rows.map(line)].join('\n') + '\n';
}

// Reasons hold errors from executors and messages: one line, no control characters (a terminal).
function oneLine(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f\u2028\u2029]+/g, ' ');
}
