/**
 * `mayhem plan`: what `mayhem run` would do with the requests pending on the NATS stream (read by
 * sequence: nothing taken, no consumer joined) or with a file of requests — each rail applied on
 * simulated time by the run's own rails, on a shadow of the fleet's state — and what each restart
 * would act on (argv, URL and headers without secrets, container). With the fleet's settings; flags
 * given here replace them for this plan only (a what-if). Acks nothing unless `--ack`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { errorText } from '../core/errors.js';
import { redactUrl } from '../core/redact.js';
import { parseHostTemplate } from '../core/hostname.js';
import { parseRestartRequest } from '../core/message.js';
import { Rails, type FleetControl } from '../core/rails.js';
import { ShadowControl } from '../core/shadow-control.js';
import { readInventory } from '../fleet/inventory.js';
import { FLEET_KEYS } from '../fleet/keys.js';
import { describeStored, withFleet } from '../fleet/values.js';
import { restartTargets } from '../executors/target.js';
import type { StreamBrowser, StreamMessage } from '../brokers/nats/index.js';
import { parseNatsUrls } from '../brokers/nats/url.js';
import { simulate, type PlanEntry, type PlanInput } from '../plan/simulate.js';
import { renderPlanJson, renderPlanText, type PlanReport } from '../plan/render.js';
import { LocalFleetControl } from '../storage/memory/control.js';
import { ConfigError, isGiven, isLeashed, railsSettings, type Config } from '../config/config.js';
import { openControl, who } from './control.js';
import { SETTINGS } from '../config/settings.js';
import { pino } from 'pino';

const HORIZON_MS = 7 * 86_400_000;
// Requests read from the stream at most (a plan is for reading).
const MAX_FROM_STREAM = 10_000;

interface Source {
  readonly text: string;
  /** Payloads with where each came from. */
  readonly payloads: { readonly where: string; readonly data: string | Uint8Array; readonly seq?: number }[];
  readonly browser?: StreamBrowser | undefined;
}

export async function runPlan(config: Config): Promise<string> {
  const fromStream = config.fromStream || (config.requests === undefined && config.broker.startsWith('nats://'));
  if (config.requests !== undefined && config.fromStream)
    throw new ConfigError('plan: give --requests FILE or --from-stream, not both');
  if (!fromStream && config.requests === undefined)
    throw new ConfigError('plan needs --requests FILE, or --from-stream with --broker nats://host:port');
  if (config.ack && !fromStream)
    throw new ConfigError('plan --ack consumes requests from the stream: it needs --from-stream');
  const targetOf = restartTargets(config);
  const hostTemplate = parseHostTemplate(config.hostTemplate);
  const fleet = await openFleet(config.db);
  let source: Source | undefined;
  try {
    source = fromStream ? await fromNats(config) : fromFile(config.requests!);
    await fleet.control.refresh();
    const stored = fleet.control.settingsState();
    // The fleet's settings, with what was given here in their place (a what-if for this plan only).
    const given = FLEET_KEYS.filter((k) => isGiven(config, k));
    const effective = stored === undefined ? config : { ...withFleet(config, stored, false), ...pick(config, given) };
    const inventory =
      config.inventory !== undefined && given.includes('inventory')
        ? await readInventory(config.inventory)
        : stored?.inventory?.hosts;
    const leashed = isLeashed(effective.leashed, effective.dryRun, config.executor);
    const start = Date.now();
    let now = start;
    const shadow = new ShadowControl(fleet.control, {
      restartMs: config.previewRestartTime,
      now: () => now,
      forwardAudit: false,
    });
    // The restarts are simulated as they would run unleashed; the leash is said above the table.
    const settings = { ...railsSettings(effective, inventory), leashed: false };
    const rails = new Rails(settings, shadow, () => 0.5);
    const inputs: PlanInput[] = [];
    const malformed: PlanReport['malformed'][number][] = [];
    for (const p of source.payloads) {
      const parsed = parseRestartRequest(p.data, hostTemplate, config.maxMessageBytes);
      if (!parsed.ok) malformed.push({ where: p.where, error: parsed.error });
      else inputs.push({ request: parsed.request, host: parsed.request.host!, seq: p.seq });
    }
    const entries = await simulate(inputs, rails, shadow, (t) => (now = t), {
      start,
      restartMs: config.previewRestartTime,
      horizonMs: HORIZON_MS,
    });
    const report: PlanReport = {
      source: source.text,
      settings:
        (stored === undefined ? `this command's (no fleet settings on ${fleet.where})` : describeStored(stored)) +
        (stored !== undefined && given.length > 0
          ? `; given here instead: ${given.map((k) => `--${SETTINGS[k].flag}`).join(', ')}`
          : ''),
      start,
      restartMs: config.previewRestartTime,
      leashed,
      entries,
      targets: inputs.map((i) =>
        targetOf({ host: i.host, instanceName: i.request.instanceName, messageId: i.request.messageId }),
      ),
      malformed,
    };
    let text = config.json ? renderPlanJson(report) : renderPlanText(report);
    if (config.ack && source.browser !== undefined)
      text += await consume(source, entries, fleet.control, who(config), config.json);
    return text;
  } finally {
    await source?.browser?.close().catch(() => undefined);
    await fleet.close();
  }
}

/** The fleet's state: the database's, or (memory:, or no such file yet) nothing stored. */
async function openFleet(db: string): Promise<{ control: FleetControl; where: string; close(): Promise<void> }> {
  const path = db.startsWith('sqlite:') ? db.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '') : undefined;
  if (db === 'memory:' || (path !== undefined && !existsSync(path)))
    return { control: new LocalFleetControl(), where: redactUrl(db), close: () => Promise.resolve() };
  const opened = await openControl(db);
  return { control: opened.control, where: redactUrl(db), close: () => opened.close() };
}

async function fromNats(config: Config): Promise<Source> {
  const { StreamBrowser } = await import('../brokers/nats/index.js');
  const browser = await StreamBrowser.open({
    servers: parseNatsUrls(config.broker) ?? [],
    stream: config.stream,
    subject: config.subject,
    logger: pino({ level: 'silent' }),
    auth: { credsFile: config.natsCreds, nkeyFile: config.natsNkey, tokenFile: config.natsTokenFile },
  });
  let messages: StreamMessage[];
  try {
    messages = await browser.next(1, MAX_FROM_STREAM);
  } catch (err) {
    await browser.close();
    throw new Error(`cannot read NATS stream ${config.stream}: ${errorText(err)}`);
  }
  return {
    text: `pending on NATS stream ${config.stream} (read, nothing taken${config.ack ? '; --ack consumes them below' : ''})`,
    payloads: messages.map((m) => ({ where: `stream sequence ${m.seq}`, data: m.data, seq: m.seq })),
    browser,
  };
}

function fromFile(path: string): Source {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read --requests ${path}: ${(err as NodeJS.ErrnoException).code ?? errorText(err)}`);
  }
  const trimmed = text.trim();
  if (trimmed.startsWith('[')) {
    let list: unknown;
    try {
      list = JSON.parse(trimmed);
    } catch (err) {
      throw new ConfigError(`--requests ${path} is not a valid JSON list: ${errorText(err)}`);
    }
    if (!Array.isArray(list)) throw new ConfigError(`--requests ${path}: expected a JSON list of requests`);
    return {
      text: `from ${path}`,
      payloads: list.map((r, i) => ({ where: `${path} item ${i + 1}`, data: JSON.stringify(r) })),
    };
  }
  const payloads: Source['payloads'][number][] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() !== '') payloads.push({ where: `${path} line ${i + 1}`, data: line });
  });
  return { text: `from ${path}`, payloads };
}

/** `--ack`: the planned requests leave the stream, each recorded as leashed with what the plan said. */
async function consume(
  source: Source,
  entries: readonly PlanEntry[],
  control: FleetControl,
  by: string,
  json: boolean,
): Promise<string> {
  let removed = 0;
  for (const p of source.payloads) if (p.seq !== undefined && (await source.browser!.remove(p.seq))) removed += 1;
  for (const e of entries)
    control.audit({
      at: Date.now(),
      instance: by,
      host: e.input.host,
      instanceName: e.input.request.instanceName,
      messageId: e.input.request.messageId,
      executor: '',
      outcome: 'leashed',
      reason: `consumed by mayhem plan --ack; the plan: ${e.end?.kind === 'skip' ? `${e.end.outcome}` : (e.end?.kind ?? 'waiting')}`,
    });
  const line = `Consumed ${removed} request(s) from NATS stream ${source.browser!.stream} (--ack); each is in the audit trail as leashed.`;
  return json ? '' : `${line}\n`;
}

function pick(config: Config, keys: readonly (keyof Config)[]): Partial<Config> {
  const out: Partial<Config> = {};
  for (const k of keys) (out as Record<string, unknown>)[k] = config[k];
  return out;
}
