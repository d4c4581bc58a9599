/** The report as Markdown: the verdict first, then restarts, hosts and probes, as tables. */
import type { ReportModel } from './model.js';
import { iso, ms, steadyText, VERDICT_TEXT } from './text.js';

const cell = (s: string): string => s.replace(/\|/g, '\\|').replace(/\s+/g, ' ');

export function renderMarkdown(m: ReportModel): string {
  const out: string[] = [];
  const v = m.verdict;
  out.push(`# Experiment ${m.experiment}`, '');
  out.push(
    `${iso(m.startedAt)} → ${m.endedAt === undefined ? 'running' : iso(m.endedAt)}, ${m.runs.length} instance run(s); report of ${iso(m.generatedAt)}.`,
    '',
  );
  out.push('## Verdict', '', `**${VERDICT_TEXT[v.summary]}**`, '');
  out.push(`- Steady state before: ${steadyText(v.before.holds)}`);
  for (const c of v.before.checks) out.push(`  - ${c.probe}: ${c.ok ? 'ok' : 'FAILED'} — ${c.reason}`);
  out.push(`- Steady state after: ${steadyText(v.after.holds)}`);
  for (const c of v.after.checks) out.push(`  - ${c.probe}: ${c.ok ? 'ok' : 'FAILED'} — ${c.reason}`);
  out.push(`- Stop conditions fired: ${v.stopConditions.length}`);
  for (const s of v.stopConditions) out.push(`  - ${iso(s.at)} (${s.instance}): ${s.reason}`);
  for (const s of v.recoveries) out.push(`  - recovered ${iso(s.at)} (${s.instance}): ${s.reason}`);
  if (v.pauses.length > 0) {
    out.push('- Kill switch:');
    for (const p of v.pauses) out.push(`  - ${iso(p.at)} ${p.outcome} by ${p.by}${p.reason ? `: ${p.reason}` : ''}`);
  }
  out.push('', '## Restarts by outcome', '', '| outcome | count |', '| --- | ---: |');
  for (const o of m.outcomes) out.push(`| ${o.outcome} | ${o.count} |`);
  if (m.outcomes.length === 0) out.push('| (none) | 0 |');
  if (m.truncated) out.push('', '_The newest decisions only: the experiment has more audit rows than a report reads._');
  out.push('', '## Per host', '', '| host | instance | time | outcome | reason |', '| --- | --- | --- | --- | --- |');
  for (const h of m.hosts)
    for (const e of h.events)
      out.push(`| ${h.host} | ${h.instanceName} | ${iso(e.at)} | ${e.outcome} | ${cell(e.reason)} |`);
  out.push(
    '',
    '## Probes',
    '',
    '| probe | checks | failed | latency p50 | p95 | max |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
  );
  for (const p of m.probes)
    out.push(
      `| ${p.name} | ${p.checks} | ${p.failures} | ${ms(p.latencyMs.p50)} | ${ms(p.latencyMs.p95)} | ${ms(p.latencyMs.max)} |`,
    );
  for (const p of m.probes) {
    // A sparkline per probe: one character per check (at most the last 80): ▁ fast … █ slow, ✗ failed.
    const tail = p.series.slice(-80);
    const max = Math.max(...tail.map((s) => s.latencyMs), 0.001);
    const bars = '▁▂▃▄▅▆▇█';
    const line = tail.map((s) => (s.ok ? bars[Math.min(7, Math.floor((s.latencyMs / max) * 8))] : '✗')).join('');
    out.push('', `\`${p.name}\` over time (latency, ✗ = failed): \`${line}\``);
  }
  return out.join('\n') + '\n';
}
