/**
 * Inline SVG charts, written here (no library, nothing fetched): probe latency over time (a line and
 * one circle per check, red where it failed), restarts by outcome (bars), and a per-host timeline
 * (one row per host, one mark per decision). Each data point carries its values in data-* attributes.
 */
import type { HostTimeline, ProbeSummary, ReportModel } from './model.js';
import { iso, ms } from './text.js';

const W = 760;

export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const COLOURS: Record<string, string> = {
  restarted: '#2e7d32',
  failed: '#c62828',
  rejected: '#ad1457',
  'in-doubt': '#ef6c00',
  leashed: '#1565c0',
  'already-done': '#6a1b9a',
};
export const colourOf = (outcome: string): string =>
  COLOURS[outcome] ??
  (outcome.startsWith('deferred') ? '#9e9d24' : outcome.startsWith('skipped') ? '#757575' : '#455a64');

/** Probe latency over the experiment's span. */
export function latencyChart(p: ProbeSummary, span: { from: number; to: number }): string {
  const H = 160;
  const pad = { l: 56, r: 12, t: 12, b: 28 };
  const max = Math.max(...p.series.map((s) => s.latencyMs), 1);
  const x = (at: number): number => pad.l + ((at - span.from) / Math.max(1, span.to - span.from)) * (W - pad.l - pad.r);
  const y = (v: number): number => H - pad.b - (v / max) * (H - pad.t - pad.b);
  const points = p.series.map((s) => `${x(s.at).toFixed(1)},${y(s.latencyMs).toFixed(1)}`).join(' ');
  const dots = p.series
    .map(
      (s) =>
        `<circle class="point${s.ok ? '' : ' failed'}" cx="${x(s.at).toFixed(1)}" cy="${y(s.latencyMs).toFixed(1)}" r="3" data-at="${s.at}" data-ok="${s.ok}" data-latency-ms="${s.latencyMs}"${s.value === undefined ? '' : ` data-value="${s.value}"`}><title>${escapeXml(`${iso(s.at)} ${s.ok ? 'ok' : 'failed'} ${ms(s.latencyMs)}${s.value === undefined ? '' : ` value ${s.value}`}`)}</title></circle>`,
    )
    .join('');
  return `<svg class="chart latency" role="img" aria-label="${escapeXml(`latency of probe ${p.name}`)}" data-probe="${escapeXml(p.name)}" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}">
<line x1="${pad.l}" y1="${H - pad.b}" x2="${W - pad.r}" y2="${H - pad.b}" class="axis"/><line x1="${pad.l}" y1="${pad.t}" x2="${pad.l}" y2="${H - pad.b}" class="axis"/>
<text x="${pad.l - 6}" y="${pad.t + 4}" text-anchor="end">${escapeXml(ms(max))}</text><text x="${pad.l - 6}" y="${H - pad.b}" text-anchor="end">0</text>
<text x="${pad.l}" y="${H - 8}">${escapeXml(iso(span.from))}</text><text x="${W - pad.r}" y="${H - 8}" text-anchor="end">${escapeXml(iso(span.to))}</text>
<polyline class="line" points="${points}"/>${dots}</svg>`;
}

/** Restarts by outcome: one bar each. */
export function outcomeChart(outcomes: ReportModel['outcomes']): string {
  const row = 24;
  const H = Math.max(1, outcomes.length) * row + 8;
  const max = Math.max(...outcomes.map((o) => o.count), 1);
  const bars = outcomes
    .map((o, i) => {
      const w = (o.count / max) * (W - 260);
      return `<g class="bar" data-outcome="${escapeXml(o.outcome)}" data-count="${o.count}"><text x="170" y="${i * row + 17}" text-anchor="end">${escapeXml(o.outcome)}</text><rect x="180" y="${i * row + 4}" width="${w.toFixed(1)}" height="${row - 8}" fill="${colourOf(o.outcome)}"/><text x="${(186 + w).toFixed(1)}" y="${i * row + 17}">${o.count}</text></g>`;
    })
    .join('');
  return `<svg class="chart outcomes" role="img" aria-label="restarts by outcome" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}">${bars}</svg>`;
}

/** One row per host, a mark per decision, over the span (the first 60 hosts). */
export function timelineChart(hosts: readonly HostTimeline[], span: { from: number; to: number }): string {
  const shown = hosts.slice(0, 60);
  const row = 22;
  const left = 220;
  const H = Math.max(1, shown.length) * row + 30;
  const x = (at: number): number => left + ((at - span.from) / Math.max(1, span.to - span.from)) * (W - left - 12);
  const rows = shown
    .map((h, i) => {
      const marks = h.events
        .map(
          (e) =>
            `<rect class="event" x="${(x(e.at) - 3).toFixed(1)}" y="${i * row + 5}" width="6" height="${row - 10}" fill="${colourOf(e.outcome)}" data-at="${e.at}" data-outcome="${escapeXml(e.outcome)}"><title>${escapeXml(`${iso(e.at)} ${e.outcome}${e.reason ? `: ${e.reason}` : ''}`)}</title></rect>`,
        )
        .join('');
      return `<g class="host" data-host="${escapeXml(h.host)}"><text x="${left - 8}" y="${i * row + 15}" text-anchor="end">${escapeXml(h.host)}</text><line x1="${left}" y1="${i * row + row / 2}" x2="${W - 12}" y2="${i * row + row / 2}" class="grid"/>${marks}</g>`;
    })
    .join('');
  return `<svg class="chart timeline" role="img" aria-label="decisions per host over time" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}">${rows}<text x="${left}" y="${H - 6}">${escapeXml(iso(span.from))}</text><text x="${W - 12}" y="${H - 6}" text-anchor="end">${escapeXml(iso(span.to))}</text></svg>`;
}
