/**
 * Steady state and stop conditions. The probes are checked once before the first restart (the
 * steady state must hold to begin: `steadyState('before')`), then every `everyMs`; a probe that
 * fails `tolerance` checks in a row fires its stop condition: the whole fleet is paused through the
 * kill switch (`mayhem pause`'s), with the probe's reason in the audit trail (`probe-failed`) and
 * the log. When it holds again (`probe-recovered`) the fleet resumes only with `resume`
 * (`--probe-resume`), and only from the pause this runner set (not a person's, not another's).
 * Every check is recorded with the experiment, when there is one.
 */
import type { Logger } from 'pino';
import { errorText } from '../core/errors.js';
import type { CheckPhase, ExperimentStore } from '../core/experiment.js';
import type { AuditOutcome, FleetControl, PauseState } from '../core/rails.js';
import type { Probe, ProbeResult } from './probe.js';
import type { ProbeSettings } from './spec.js';

export interface ProbeRunnerDeps {
  readonly control: FleetControl;
  readonly logger: Logger;
  /** This instance's name (audit trail, the pause's `by`). */
  readonly instance: string;
  /** Where checks are recorded, with the experiment's name. */
  readonly journal?: { readonly store: ExperimentStore; readonly experiment: string } | undefined;
  readonly now?: () => number;
}

/** The last check of each probe, for /metrics. */
export interface ProbeStatus {
  readonly name: string;
  readonly ok: boolean;
  readonly latencyMs: number;
}

interface State {
  failures: number;
  tripped: boolean;
  last: ProbeResult | undefined;
}

export class ProbeRunner {
  readonly #probes: readonly Probe[];
  readonly #s: ProbeSettings;
  readonly #d: ProbeRunnerDeps;
  readonly #state = new Map<string, State>();
  readonly #stop = new AbortController();
  #timer: NodeJS.Timeout | undefined;
  #round: Promise<void> | undefined;
  /** The pause this runner set, so it resumes that one and no other. */
  #paused: PauseState | undefined;

  constructor(probes: readonly Probe[], settings: ProbeSettings, deps: ProbeRunnerDeps) {
    this.#probes = probes;
    this.#s = settings;
    this.#d = deps;
    for (const p of probes) this.#state.set(p.spec.name, { failures: 0, tripped: false, last: undefined });
  }

  get status(): ProbeStatus[] {
    const out: ProbeStatus[] = [];
    for (const [name, s] of this.#state)
      if (s.last !== undefined) out.push({ name, ok: s.last.ok, latencyMs: s.last.latencyMs });
    return out;
  }

  /** Check every probe once (recorded in `phase`); the results in probe order. */
  async steadyState(phase: CheckPhase): Promise<{ name: string; result: ProbeResult }[]> {
    // Not cut short by stop(): the last check runs after it.
    const signal = new AbortController().signal;
    return Promise.all(
      this.#probes.map(async (p) => ({ name: p.spec.name, result: await this.#check(p, phase, signal) })),
    );
  }

  /** Check every `everyMs` from now on. */
  start(): void {
    const tick = (): void => {
      this.#round = this.#checkAll().finally(() => {
        this.#round = undefined;
        if (!this.#stop.signal.aborted) this.#timer = setTimeout(tick, this.#s.everyMs);
      });
    };
    this.#timer = setTimeout(tick, this.#s.everyMs);
  }

  /** No more checks; a round under way is cut short (its probes aborted). */
  async stop(): Promise<void> {
    this.#stop.abort();
    clearTimeout(this.#timer);
    await this.#round;
  }

  async close(): Promise<void> {
    await this.stop();
    await Promise.all(this.#probes.map((p) => p.close()));
  }

  async #checkAll(): Promise<void> {
    const signal = this.#stop.signal;
    const results = await Promise.all(
      this.#probes.map(async (p) => [p, await this.#check(p, 'during', signal)] as const),
    );
    if (this.#stop.signal.aborted) return;
    for (const [p, r] of results) await this.#judge(p, r);
  }

  async #check(p: Probe, phase: CheckPhase, signal: AbortSignal): Promise<ProbeResult> {
    const timeout = p.spec.timeoutMs ?? this.#s.timeoutMs;
    let r: ProbeResult;
    try {
      r = await p.check(timeout, signal);
    } catch (err) {
      r = { ok: false, reason: `the probe failed: ${errorText(err)}`, latencyMs: 0 };
    }
    const state = this.#state.get(p.spec.name)!;
    state.last = r;
    const j = this.#d.journal;
    j?.store.recordCheck({
      experiment: j.experiment,
      instance: this.#d.instance,
      at: this.#now(),
      probe: p.spec.name,
      phase,
      ok: r.ok,
      latencyMs: Math.round(r.latencyMs * 1000) / 1000,
      value: r.value,
      reason: r.reason,
    });
    return r;
  }

  async #judge(p: Probe, r: ProbeResult): Promise<void> {
    const name = p.spec.name;
    const state = this.#state.get(name)!;
    const log = this.#d.logger;
    if (!r.ok) {
      state.failures += 1;
      log.warn(
        { probe: name, failures: state.failures, tolerance: this.#s.tolerance, reason: r.reason },
        `Probe ${name} failed (${state.failures} of ${this.#s.tolerance} in a row): ${r.reason}`,
      );
      if (state.failures === this.#s.tolerance && !state.tripped) {
        state.tripped = true;
        await this.#stopCondition(name, r);
      }
      return;
    }
    state.failures = 0;
    if (!state.tripped) return;
    state.tripped = false;
    await this.#recovered(name, r);
  }

  async #stopCondition(name: string, r: ProbeResult): Promise<void> {
    const { control, logger } = this.#d;
    const why = `probe ${name} failed ${this.#s.tolerance} checks in a row: ${r.reason}`;
    const current = control.pauseState();
    let reason: string;
    if (current === undefined) {
      const pause: PauseState = { by: `probe ${name} on ${this.#d.instance}`, at: this.#now(), reason: why };
      try {
        await control.setPause(pause);
        this.#paused = pause;
        reason = `${why}; restarts paused on every instance`;
      } catch (err) {
        reason = `${why}; could not pause the fleet: ${errorText(err)}`;
      }
    } else {
      reason = `${why}; restarts already paused by ${current.by}`;
    }
    this.#audit('probe-failed', reason);
    logger.error({ probe: name, reason: r.reason }, `Stop condition: ${reason}`);
  }

  async #recovered(name: string, r: ProbeResult): Promise<void> {
    const { control, logger } = this.#d;
    const healthy = [...this.#state.values()].every((s) => !s.tripped);
    const ours = this.#paused !== undefined && samePause(control.pauseState(), this.#paused);
    let reason = `probe ${name} holds again: ${r.reason}`;
    if (!ours) reason += this.#paused === undefined ? '' : '; restarts were resumed meanwhile';
    else if (!this.#s.resume)
      reason += '; restarts stay paused (`mayhem resume`, or --probe-resume to resume by itself)';
    else if (!healthy) reason += '; restarts stay paused while another probe fails';
    else {
      try {
        await control.setPause(undefined);
        this.#paused = undefined;
        reason += '; restarts resumed (--probe-resume)';
      } catch (err) {
        reason += `; could not resume: ${errorText(err)}`;
      }
    }
    this.#audit('probe-recovered', reason);
    logger.warn({ probe: name }, `Probe recovered: ${reason}`);
  }

  #audit(outcome: AuditOutcome, reason: string): void {
    this.#d.control.audit({
      at: this.#now(),
      instance: this.#d.instance,
      host: '*',
      messageId: '',
      executor: '',
      outcome,
      reason,
    });
  }

  #now(): number {
    return (this.#d.now ?? Date.now)();
  }
}

function samePause(a: PauseState | undefined, b: PauseState): boolean {
  return a !== undefined && a.by === b.by && a.at === b.at;
}
