/**
 * Real targets: a request's own host (FQDN) beside its instance name, `--host-template` for those
 * without one, names with dots, `audit --host` by instance or host, `--instances` in turn or at random.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import type { RestartContext, RestartExecutor } from '../src/core/contracts.js';
import { RESTARTED, type RestartOutcome } from '../src/core/restart-outcome.js';
import { parseHostTemplate } from '../src/core/hostname.js';
import { parseRestartRequest } from '../src/core/message.js';
import { seededRandom } from '../src/core/timing.js';
import { runSimulatedPublisher } from '../src/publisher/simulated.js';
import { cli, MAIN } from './helpers/cli.js';
import { executorPipeline } from './helpers/executor-pipeline.js';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'mayhem-targets-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function published(o: { instances: string[]; pick?: 'round-robin' | 'random'; count: number }) {
  const names: string[] = [];
  await runSimulatedPublisher(
    (payload) => {
      const r = parseRestartRequest(payload);
      if (r.ok) names.push(r.request.instanceName);
    },
    { rate: 0, count: o.count, random: seededRandom(7), instances: o.instances, pick: o.pick },
    new AbortController().signal,
  );
  return names;
}

describe('--instances', () => {
  it('round-robin (the default) gives each name its turn: six requests, two each', async () => {
    expect(await published({ instances: ['web-1', 'web-2', 'web-3'], count: 6 })).toEqual([
      'web-1',
      'web-2',
      'web-3',
      'web-1',
      'web-2',
      'web-3',
    ]);
  });

  it('random picks from the list (seeded)', async () => {
    const names = await published({ instances: ['web-1', 'web-2', 'web-3'], pick: 'random', count: 60 });
    expect(new Set(names)).toEqual(new Set(['web-1', 'web-2', 'web-3']));
    expect(names.slice(0, 6)).not.toEqual(['web-1', 'web-2', 'web-3', 'web-1', 'web-2', 'web-3']);
  });
});

class Recorder implements RestartExecutor {
  readonly calls: { host: string; instance: string }[] = [];
  restart(hostname: string, _signal: AbortSignal, context?: RestartContext): Promise<RestartOutcome> {
    this.calls.push({ host: hostname, instance: context?.instanceName ?? '' });
    return Promise.resolve(RESTARTED);
  }
}

describe('the host a request restarts', () => {
  it('is its own host when it carries one, else --host-template of its instance; both recorded and audited', async () => {
    const executor = new Recorder();
    const p = executorPipeline(executor, { hostTemplate: parseHostTemplate('{instance}.prod.example.com') });
    const storage = p.storage;
    p.publish('web-1.eu');
    p.broker.publishSync(
      JSON.stringify({ messageId: 'own', instanceName: 'db-1', host: 'db-1.dc2.example.org', publishedAt: 1 }),
      'own',
    );
    expect(await p.handleNext()).toBe('acked');
    expect(await p.handleNext()).toBe('acked');
    expect(executor.calls).toEqual([
      { host: 'web-1.eu.prod.example.com', instance: 'web-1.eu' },
      { host: 'db-1.dc2.example.org', instance: 'db-1' },
    ]);
    expect(storage.records.get('own')).toMatchObject({ instanceName: 'db-1', hostname: 'db-1.dc2.example.org' });
    const audit = await storage.control().readAudit({ limit: 10, host: 'db-1' });
    expect(audit).toEqual([
      expect.objectContaining({ host: 'db-1.dc2.example.org', instanceName: 'db-1', outcome: 'restarted' }),
    ]);
  });
});

describe('mayhem run --host-template, then mayhem audit --host (SQLite)', () => {
  it('finds a host by its instance name or its host name', async () => {
    const db = `sqlite:${join(dir, 'targets.db')}`;
    const c = cli([
      'run',
      '--db',
      db,
      '--instances',
      'web-1,web-2',
      '--count',
      '4',
      '--publish-rate',
      '0',
      '--restart-latency',
      '0',
      '--restart-failure-rate',
      '0',
      '--host-template',
      '{instance}.prod.example.com',
      '--log-format',
      'json',
    ]);
    expect((await c.exited).code).toBe(0);
    const pulled = c.lines.filter((l) => l.msg.startsWith('Pulled ')).map((l) => l.host);
    expect(pulled).toEqual([
      'web-1.prod.example.com',
      'web-2.prod.example.com',
      'web-1.prod.example.com',
      'web-2.prod.example.com',
    ]);
    const byInstance = await run(process.execPath, [MAIN, 'audit', '--db', db, '--host', 'web-1', '--json']);
    const rows = byInstance.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { host: string; instanceName: string; outcome: string });
    expect(rows).toHaveLength(2);
    expect(rows.every((r) => r.host === 'web-1.prod.example.com' && r.instanceName === 'web-1')).toBe(true);
    const byHost = await run(process.execPath, [MAIN, 'audit', '--db', db, '--host', 'web-2.prod.example.com']);
    expect(byHost.stdout.trim().split('\n')).toHaveLength(3); // the header and two rows
  });

  it('a bad --host-template is one line and exit 2', async () => {
    const err = await run(process.execPath, [
      MAIN,
      'run',
      '--db',
      'memory:',
      '--host-template',
      'web.example.com',
    ]).then(
      () => undefined,
      (e: { code: number; stderr: string }) => e,
    );
    expect(err?.code).toBe(2);
    expect(err?.stderr).toBe(
      'mayhem: --host-template "web.example.com" must contain {instance}, e.g. {instance}.prod.example.com\n',
    );
  });
});
