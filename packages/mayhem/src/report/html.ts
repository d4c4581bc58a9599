/**
 * The report as one self-contained HTML file: inline CSS and inline SVG, no script, no font, no
 * image and no link to anything (the favicon is a data: URL, so a browser asks for nothing).
 */
import type { ReportModel } from './model.js';
import { escapeXml as e, latencyChart, outcomeChart, timelineChart } from './svg.js';
import { iso, ms, steadyText, VERDICT_TEXT } from './text.js';

const CSS = `body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:820px;color:#222}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;width:100%;font-size:13px}td,th{border-bottom:1px solid #eee;padding:3px 6px;text-align:left;vertical-align:top}
.verdict{padding:.6rem 1rem;border-radius:6px;font-weight:600}.held{background:#e8f5e9}.violated,.not-started{background:#ffebee}.running,.no-probes{background:#e3f2fd}
svg{display:block;margin:.5rem 0;max-width:100%;height:auto}svg text{font-size:11px;fill:#444}.axis{stroke:#999}.grid{stroke:#eee}
.line{fill:none;stroke:#1565c0;stroke-width:1.5}.point{fill:#1565c0}.point.failed{fill:#c62828}.ok{color:#2e7d32}.bad{color:#c62828}`;

export function renderHtml(m: ReportModel, o: { live?: boolean } = {}): string {
  const v = m.verdict;
  const span = { from: m.startedAt, to: m.endedAt ?? m.generatedAt };
  const checkRows = (checks: ReportModel['verdict']['before']['checks']): string =>
    checks
      .map(
        (c) =>
          `<tr><td>${e(c.probe)}</td><td class="${c.ok ? 'ok' : 'bad'}">${c.ok ? 'ok' : 'failed'}</td><td>${e(c.reason)}</td></tr>`,
      )
      .join('');
  const events = m.hosts
    .flatMap((h) =>
      h.events.map(
        (ev) =>
          `<tr><td>${e(h.host)}</td><td>${e(iso(ev.at))}</td><td>${e(ev.outcome)}</td><td>${e(ev.reason)}</td></tr>`,
      ),
    )
    .slice(0, 2000)
    .join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Experiment ${e(m.experiment)}</title><link rel="icon" href="data:,">
<style>${CSS}</style></head><body>
<h1>Experiment ${e(m.experiment)}</h1>
<p>${e(iso(m.startedAt))} → ${m.endedAt === undefined ? 'running' : e(iso(m.endedAt))}; ${m.runs.length} instance run(s) (${m.runs.map((r) => e(r.instance)).join(', ')}); report of ${e(iso(m.generatedAt))}${o.live === true ? ', live (reload for the latest)' : ''}.</p>
<h2>Verdict</h2>
<p class="verdict ${v.summary.replace(' ', '-')}" data-verdict="${v.summary}">${e(VERDICT_TEXT[v.summary])}</p>
<table><tr><th>steady state</th><th colspan="2">${e(steadyText(v.before.holds))} before, ${e(steadyText(v.after.holds))} after</th></tr>
${checkRows(v.before.checks)}${checkRows(v.after.checks)}</table>
<h3>Stop conditions fired: ${v.stopConditions.length}</h3>
<table>${v.stopConditions.map((s) => `<tr><td>${e(iso(s.at))}</td><td>${e(s.instance)}</td><td>${e(s.reason)}</td></tr>`).join('')}
${v.recoveries.map((s) => `<tr><td>${e(iso(s.at))}</td><td>${e(s.instance)}</td><td>${e(s.reason)}</td></tr>`).join('')}
${v.pauses.map((p) => `<tr><td>${e(iso(p.at))}</td><td>${e(p.by)}</td><td>${e(p.outcome)}${p.reason ? `: ${e(p.reason)}` : ''}</td></tr>`).join('')}</table>
<h2>Restarts by outcome</h2>
${outcomeChart(m.outcomes)}${m.truncated ? '<p>The newest decisions only: the experiment has more audit rows than a report reads.</p>' : ''}
<h2>Per host</h2>
${timelineChart(m.hosts, span)}
<details><summary>Every decision (${m.hosts.reduce((n, h) => n + h.events.length, 0)})</summary><table><tr><th>host</th><th>time</th><th>outcome</th><th>reason</th></tr>${events}</table></details>
<h2>Probes</h2>
<table><tr><th>probe</th><th>checks</th><th>failed</th><th>p50</th><th>p95</th><th>max</th></tr>
${m.probes.map((p) => `<tr><td>${e(p.name)}</td><td>${p.checks}</td><td>${p.failures}</td><td>${ms(p.latencyMs.p50)}</td><td>${ms(p.latencyMs.p95)}</td><td>${ms(p.latencyMs.max)}</td></tr>`).join('')}</table>
${m.probes.map((p) => `<h3>${e(p.name)}: latency and health</h3>${latencyChart(p, span)}`).join('\n')}
</body></html>
`;
}
