/** An experiment's report read from storage (the running instance's, or `mayhem report --db`'s). */
import type { ExperimentStore } from '../core/experiment.js';
import type { FleetControl } from '../core/rails.js';
import { buildReport, type ReportModel } from './model.js';

/** Audit rows and checks read at most (a report of a bigger experiment covers the newest). */
export const MAX_AUDIT_ROWS = 200_000;
export const MAX_CHECKS = 50_000;

/** No experiment of that name on record: one line, exit 2. */
export class UnknownExperiment extends Error {
  override readonly name = 'UnknownExperiment';
}

export async function readReport(
  experiment: string,
  from: { control: FleetControl; experiments: ExperimentStore },
  now = Date.now(),
): Promise<ReportModel> {
  const runs = await from.experiments.runs(experiment);
  if (runs.length === 0) {
    const known = await from.experiments.names(5);
    throw new UnknownExperiment(
      `no experiment named ${JSON.stringify(experiment)} on record${known.length > 0 ? ` (the latest: ${known.join(', ')})` : ' (none is: run mayhem run --experiment NAME first)'}`,
    );
  }
  const since = Math.min(...runs.map((r) => r.startedAt));
  const [audit, fleet, checks] = await Promise.all([
    from.control.readAudit({ experiment, limit: MAX_AUDIT_ROWS }),
    from.control.readAudit({ since, host: '*', limit: 10_000 }),
    from.experiments.checks(experiment, MAX_CHECKS),
  ]);
  return buildReport({
    experiment,
    runs,
    audit,
    fleet,
    checks,
    truncated: audit.length >= MAX_AUDIT_ROWS,
    now,
  });
}
