/** The report model as JSON (times as ISO-8601 beside the milliseconds). */
import type { ReportModel } from './model.js';

export function renderJson(m: ReportModel): string {
  return (
    JSON.stringify(
      {
        ...m,
        startedAtIso: new Date(m.startedAt).toISOString(),
        endedAtIso: m.endedAt && new Date(m.endedAt).toISOString(),
      },
      null,
      2,
    ) + '\n'
  );
}
