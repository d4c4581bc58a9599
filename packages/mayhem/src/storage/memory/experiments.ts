/** The experiments' journal in process (`memory:` storage, tests): runs, and a ring of checks. */
import type { ExperimentRun, ExperimentStore, ProbeCheck } from '../../core/experiment.js';
import { DONE } from '../../core/settled.js';

export class MemoryExperimentStore implements ExperimentStore {
  readonly #runs: ExperimentRun[] = [];
  #checks: ProbeCheck[] = [];
  readonly #maxChecks: number;

  /** @param maxChecks checks kept (the oldest go first). */
  constructor(maxChecks = 100_000) {
    this.#maxChecks = Math.max(1, maxChecks);
  }

  startRun(run: ExperimentRun): Promise<void> {
    this.#runs.push({ ...run, endedAt: undefined, endReason: undefined });
    return DONE;
  }

  endRun(experiment: string, instance: string, startedAt: number, endedAt: number, reason: string): Promise<void> {
    const i = this.#runs.findIndex(
      (r) => r.experiment === experiment && r.instance === instance && r.startedAt === startedAt,
    );
    if (i >= 0) this.#runs[i] = { ...this.#runs[i]!, endedAt, endReason: reason };
    return DONE;
  }

  recordCheck(check: ProbeCheck): void {
    this.#checks.push(check);
    // Trimmed in halves, so a check costs O(1) on average.
    if (this.#checks.length > this.#maxChecks * 2) this.#checks = this.#checks.slice(-this.#maxChecks);
  }

  runs(experiment: string): Promise<ExperimentRun[]> {
    return Promise.resolve(this.#runs.filter((r) => r.experiment === experiment));
  }

  checks(experiment: string, limit: number): Promise<ProbeCheck[]> {
    const all = this.#checks.filter((c) => c.experiment === experiment);
    return Promise.resolve(all.slice(Math.max(0, all.length - limit)));
  }

  names(limit: number): Promise<string[]> {
    const seen = [...new Set([...this.#runs].reverse().map((r) => r.experiment))];
    return Promise.resolve(seen.slice(0, limit));
  }

  flush(): Promise<void> {
    return DONE;
  }
}
