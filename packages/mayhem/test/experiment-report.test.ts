/**
 * An experiment from probe to report, on the whole service (SQLite): a health endpoint served here
 * holds, then fails mid-run (the stop condition pauses the fleet, /readyz and /metrics say so),
 * then holds again (--probe-resume); `mayhem report` writes md, json and html, and the html is
 * opened in a real headless Chromium (Debian's): it renders, its charts carry the data points,
 * and it makes no network request. The live page at `--http /` is the same report. Also: the
 * steady state must hold to begin (exit 2, nothing restarted), and an unknown experiment is exit 2.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, MAIN } from './helpers/cli.js';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'mayhem-experiment-'));
const CHROMIUM = '/usr/bin/chromium';

let healthy = true;
let health: Server;
let healthUrl = '';
beforeAll(async () => {
  health = createServer((_req, res) => res.writeHead(healthy ? 200 : 503).end(healthy ? 'ok' : 'down'));
  await new Promise<void>((r) => health.listen(0, '127.0.0.1', r));
  healthUrl = `http://127.0.0.1:${(health.address() as AddressInfo).port}/health`;
});
afterAll(async () => {
  health.closeAllConnections();
  await new Promise((r) => health.close(r));
  rmSync(dir, { recursive: true, force: true });
});

async function mayhem(...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [MAIN, ...args]);
    return { stdout, stderr, code: 0 };
  } catch (err) {
    const e = err as { stdout: string; stderr: string; code: number };
    return { stdout: e.stdout, stderr: e.stderr, code: e.code };
  }
}

const get = async (url: string): Promise<{ status: number; text: string }> => {
  const res = await fetch(url);
  return { status: res.status, text: await res.text() };
};

describe('an experiment from probe to report', () => {
  const db = `sqlite:${join(dir, 'exp.db')}`;
  const html = join(dir, 'report.html');

  it('a failing probe pauses the run, its recovery resumes it; the report says so in md, json and html', async () => {
    healthy = true;
    const c = cli([
      'run',
      '--db',
      db,
      '--experiment',
      'exp-a',
      '--instance-name',
      'svc-1',
      '--probe',
      `http:${healthUrl} name=api`,
      '--probe-every',
      '150ms',
      '--probe-tolerance',
      '2',
      '--probe-resume',
      '--instances',
      'web-1,web-2,web-3',
      '--count',
      '30',
      '--publish-rate',
      '15',
      '--restart-latency',
      '10ms',
      '--restart-failure-rate',
      '0',
      '--http',
      '127.0.0.1:0',
      '--log-format',
      'json',
      '--status-every',
      '0',
    ]);
    await c.waitFor((ls) => ls.filter((l) => l.msg.startsWith('Restarted ')).length >= 5);
    const url = c.lines.find((l) => typeof l.http === 'string')!.http as string;
    healthy = false;
    await c.waitFor((ls) => ls.some((l) => l.msg.startsWith('Stop condition: probe api failed 2 checks in a row')));
    expect(await get(`${url}/readyz`)).toEqual({
      status: 200,
      text:
        'paused: restarts paused by probe api on svc-1 (probe api failed 2 checks in a row: HTTP 503 from ' +
        `${healthUrl} (expected 200): down)\n`,
    });
    const metrics = (await get(`${url}/metrics`)).text;
    expect(metrics).toMatch(/^mayhem_paused 1$/m);
    expect(metrics).toMatch(/^mayhem_in_window 1$/m);
    expect(metrics).toMatch(/^mayhem_probe_ok\{probe="api"\} 0$/m);
    expect(metrics).toMatch(/^mayhem_probe_latency_seconds\{probe="api"\} [0-9.e-]+$/m);
    const live = await get(`${url}/`);
    expect(live.status).toBe(200);
    expect(live.text).toContain('<h1>Experiment exp-a</h1>');
    expect(live.text).toContain('data-verdict="violated"');
    healthy = true;
    await c.waitFor((ls) => ls.some((l) => l.msg.startsWith('Probe recovered: probe api holds again')));
    expect((await c.exited).code).toBe(0);
    expect(c.lines.filter((l) => l.msg.startsWith('Restarted '))).toHaveLength(30);
    expect(c.lines.some((l) => l.msg.startsWith('Steady state after the run: probe api holds'))).toBe(true);

    const json = await mayhem('report', '--db', db, '--experiment', 'exp-a', '--format', 'json');
    expect(json.code).toBe(0);
    const model = JSON.parse(json.stdout) as {
      verdict: { summary: string; before: { holds: boolean }; after: { holds: boolean }; stopConditions: unknown[] };
      outcomes: { outcome: string; count: number }[];
      hosts: { host: string; events: unknown[] }[];
      probes: { name: string; checks: number; failures: number }[];
      runs: { instance: string; endReason: string }[];
    };
    expect(model.verdict).toMatchObject({ summary: 'violated', before: { holds: true }, after: { holds: true } });
    expect(model.verdict.stopConditions).toHaveLength(1);
    expect(model.outcomes.find((o) => o.outcome === 'restarted')?.count).toBe(30);
    expect(model.outcomes.find((o) => o.outcome === 'deferred-paused')?.count ?? 0).toBeGreaterThanOrEqual(0);
    expect(model.hosts.map((h) => h.host)).toEqual(['web-1.example.net', 'web-2.example.net', 'web-3.example.net']);
    expect(model.probes[0]).toMatchObject({ name: 'api' });
    expect(model.probes[0]!.failures).toBeGreaterThanOrEqual(2);
    expect(model.runs).toEqual([expect.objectContaining({ instance: 'svc-1', endReason: 'all 30 messages settled' })]);

    const md = await mayhem('report', '--db', db, '--experiment', 'exp-a');
    expect(md.stdout).toContain('# Experiment exp-a');
    expect(md.stdout).toContain('**Violated: a stop condition fired');
    expect(md.stdout).toMatch(/\| restarted \| 30 \|/);

    const wrote = await mayhem('report', '--db', db, '--experiment', 'exp-a', '--format', 'html', '--out', html);
    expect(wrote.stdout).toMatch(/^Wrote the html report of experiment exp-a to .*report\.html \(\d+ bytes\)\.\n$/);
  });

  it('the html report renders in headless Chromium, with its charts and no network request', async () => {
    expect(existsSync(CHROMIUM), `${CHROMIUM} (apt-get install -y chromium)`).toBe(true);
    const page = readFileSync(html, 'utf8');
    expect(page).not.toMatch(/<script|<link rel="stylesheet"|@import|url\(|src="http/);
    const profile = mkdtempSync(join(dir, 'chromium-'));
    const browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    });
    try {
      const tab = await browser.newPage();
      const requests: string[] = [];
      tab.on('request', (r) => requests.push(r.url()));
      const fileUrl = pathToFileURL(html).href;
      await tab.goto(fileUrl, { waitUntil: 'load' });
      expect(await tab.title()).toBe('Experiment exp-a');
      expect(await tab.locator('[data-verdict]').getAttribute('data-verdict')).toBe('violated');
      const model = JSON.parse(
        (await mayhem('report', '--db', db, '--experiment', 'exp-a', '--format', 'json')).stdout,
      ) as {
        probes: { checks: number }[];
        hosts: { events: unknown[] }[];
      };
      // The charts, with their data points: one circle per check, one mark per decision, one bar per outcome.
      expect(await tab.locator('svg.latency circle.point').count()).toBe(model.probes[0]!.checks);
      expect(await tab.locator('svg.latency circle.point.failed').count()).toBeGreaterThanOrEqual(2);
      expect(await tab.locator('svg.timeline rect.event').count()).toBe(
        model.hosts.reduce((n, h) => n + h.events.length, 0),
      );
      expect(await tab.locator('svg.outcomes g.bar[data-outcome="restarted"]').getAttribute('data-count')).toBe('30');
      const box = await tab.locator('svg.latency').boundingBox();
      expect(box?.width).toBeGreaterThan(100);
      expect(requests).toEqual([fileUrl]);
    } finally {
      await browser.close();
    }
  }, 60_000);

  it('a report of an unknown experiment is one line, exit 2', async () => {
    const r = await mayhem('report', '--db', db, '--experiment', 'nope');
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('mayhem: no experiment named "nope" on record (the latest: exp-a)\n');
  });
});

describe('the steady state must hold to begin', () => {
  it('a probe that cannot be reached at start: one line, exit 2, nothing restarted', async () => {
    const db = `sqlite:${join(dir, 'gate.db')}`;
    const free = createServer();
    await new Promise<void>((r) => free.listen(0, '127.0.0.1', r));
    const port = (free.address() as AddressInfo).port;
    await new Promise((r) => free.close(r));
    const r = await mayhem(
      'run',
      '--db',
      db,
      '--experiment',
      'gate',
      '--probe',
      `http:http://127.0.0.1:${port}/health`,
      '--count',
      '3',
      '--log-level',
      'silent',
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      `mayhem: the steady state cannot be checked before the first restart, so nothing was restarted: probe 127.0.0.1:${port}/health: cannot reach http://127.0.0.1:${port}/health: ECONNREFUSED\n`,
    );
    expect((await mayhem('audit', '--db', db, '--json')).stdout).toBe('');
    const report = JSON.parse(
      (await mayhem('report', '--db', db, '--experiment', 'gate', '--format', 'json')).stdout,
    ) as {
      verdict: { summary: string };
    };
    expect(report.verdict.summary).toBe('not started');
  });

  it('a malformed probe is one line, exit 2', async () => {
    const r = await mayhem('run', '--db', 'memory:', '--probe', 'prometheus:http://prom:9090 query=up threshold=5');
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      'mayhem: invalid --probe ["prometheus:http://prom:9090 query=up threshold=5"]: prometheus probe needs threshold= as an operator and a number, e.g. threshold=<0.05 (got "5")\n',
    );
  });
});
