/**
 * `mayhem run`'s experiment and probes: the experiment's name on every audit row, its run recorded
 * (start, end, settings), the steady state checked before the first restart (a probe that fails or
 * cannot be asked stops the start: exit 2, nothing restarted), the probes checked while it runs,
 * and once more after the last message.
 */
import type { Logger } from 'pino';
import { ConfigError, type Config } from './config/config.js';
import { probeSettings } from './config/probe-config.js';
import type { Storage } from './core/contracts.js';
import { stampExperiment, type ExperimentStore } from './core/experiment.js';
import type { FleetControl } from './core/rails.js';
import { openProbe } from './probes/open.js';
import { ProbeRunner } from './probes/runner.js';
import { describeProbe } from './probes/spec.js';

export interface RunExperiment {
  /** The fleet control to use from now on (with the experiment's name on every audit row). */
  readonly control: FleetControl;
  /** The probes being checked now (replaced when the fleet's settings change). */
  readonly runner: ProbeRunner | undefined;
  /** Check these settings' probes from now on (the run is under way: no steady-state check first). */
  replaceProbes(config: Config): Promise<void>;
  /** The probes' last check (`after`), and the run's end recorded; the probes closed. */
  end(reason: string): Promise<void>;
}

/** The steady state did not hold at start: one line, exit 2, nothing restarted. */
export class SteadyStateError extends ConfigError {}

export async function beginExperiment(
  config: Config,
  deps: { control: FleetControl; storage: Storage; logger: Logger; instance: string },
): Promise<RunExperiment> {
  const { logger, instance } = deps;
  const name = config.experiment;
  const settings = probeSettings(config);
  const control = name === undefined ? deps.control : stampExperiment(deps.control, name);
  const store: ExperimentStore | undefined = name === undefined ? undefined : deps.storage.experiments?.();
  const journal = name !== undefined && store !== undefined ? { store, experiment: name } : undefined;
  const runnerOf = (s: ReturnType<typeof probeSettings>): ProbeRunner | undefined =>
    s === undefined
      ? undefined
      : new ProbeRunner(
          s.probes.map((p) => openProbe(p)),
          s,
          { control, logger, instance, journal },
        );
  let runner = runnerOf(settings);
  const startedAt = Date.now();
  const ended = async (reason: string): Promise<void> => {
    if (journal === undefined) return;
    await journal.store.endRun(journal.experiment, instance, startedAt, Date.now(), reason);
    await journal.store.flush();
  };
  if (journal !== undefined) {
    await journal.store.startRun({
      experiment: journal.experiment,
      instance,
      startedAt,
      settings: {
        executor: config.executor,
        probes: settings?.probes.map((p) => ({ name: p.name, kind: p.kind, what: describeProbe(p) })) ?? [],
        probeEvery: config.probeEvery,
        probeTolerance: config.probeTolerance,
        probeResume: config.probeResume,
        allowHosts: config.allowHosts ?? null,
        denyHosts: config.denyHosts ?? null,
        window: config.window ?? null,
        minIntervalPerHost: config.minIntervalPerHost,
        maxConcurrentRestarts: config.maxConcurrentRestarts,
        maxRestartPercent: config.maxRestartPercent,
        blastWindow: config.blastWindow,
        inventory: config.inventory ?? null,
        leashed: config.leashed,
      },
    });
    logger.info({ experiment: name }, `Experiment ${name} begins`);
  }
  if (runner !== undefined) {
    const before = await runner.steadyState('before');
    const failed = before.filter((b) => !b.result.ok);
    for (const b of before)
      logger.info(
        { probe: b.name, ok: b.result.ok, latencyMs: Math.round(b.result.latencyMs) },
        `Steady state before the first restart: probe ${b.name} ${b.result.ok ? 'holds' : 'fails'}: ${b.result.reason}`,
      );
    if (failed.length > 0) {
      const first = failed[0]!;
      const what = first.result.unreachable === true ? 'cannot be checked' : 'does not hold';
      const reason = `the steady state ${what} before the first restart, so nothing was restarted: probe ${first.name}: ${first.result.reason}${failed.length > 1 ? ` (and ${failed.length - 1} more)` : ''}`;
      await ended(reason).catch(() => undefined);
      await runner.close();
      throw new SteadyStateError(reason);
    }
  }
  return {
    control,
    get runner() {
      return runner;
    },
    async replaceProbes(next: Config): Promise<void> {
      const old = runner;
      runner = runnerOf(probeSettings(next));
      await old?.close();
      runner?.start();
    },
    async end(reason: string): Promise<void> {
      if (runner !== undefined) {
        await runner.stop();
        for (const b of await runner.steadyState('after'))
          logger.info(
            { probe: b.name, ok: b.result.ok },
            `Steady state after the run: probe ${b.name} ${b.result.ok ? 'holds' : 'fails'}: ${b.result.reason}`,
          );
        await runner.close();
      }
      await ended(reason);
      if (name !== undefined) logger.info({ experiment: name }, `Experiment ${name} ended: ${reason}`);
    },
  };
}
