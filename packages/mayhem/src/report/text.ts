/** Small text helpers the renderers share. */
import type { ReportModel } from './model.js';

export function iso(at: number | undefined): string {
  return at === undefined
    ? '—'
    : new Date(at)
        .toISOString()
        .replace('T', ' ')
        .replace(/\.\d+Z$/, 'Z');
}

export function ms(v: number): string {
  return v < 10 ? `${v.toFixed(1)} ms` : `${Math.round(v)} ms`;
}

export const VERDICT_TEXT: Record<ReportModel['verdict']['summary'], string> = {
  held: 'Held: the steady state held before and after, and no stop condition fired.',
  violated: 'Violated: a stop condition fired or the steady state did not hold after the run.',
  'not started': 'Not started: the steady state did not hold before the first restart; nothing was restarted.',
  running: 'Running: the steady state held so far.',
  'no probes': 'No probes: no steady state was checked (run with --probe to have one).',
};

export function steadyText(holds: boolean | undefined): string {
  return holds === undefined ? 'not checked' : holds ? 'held' : 'did not hold';
}
