/**
 * A fresh PostgreSQL database for a test file.
 *
 * Uses the server at 127.0.0.1:5432 (database `test`, trust auth, user postgres or root) when it
 * answers, creating a uniquely named database that `close()` drops. Otherwise (or with
 * `{ ownServer: true }`, or env MAYHEM_TEST_PG=own) it starts a throwaway server with
 * initdb/pg_ctl in a temp dir on a free port, run as the `postgres` user when we are root; such a
 * server can also be stopped, started and restarted mid-test. Never skips: if neither works, the
 * test fails with the reason.
 *
 *   const pgt = await startTestPostgres();
 *   ... openPostgresStorage({ url: pgt.url, ... }) ...
 *   await pgt.terminateConnections();   // kill every session on the test database
 *   await pgt.close();                  // drop the database(s), stop the server if we started it
 */
import { execFile } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

const run = promisify(execFile);

export interface TestPostgres {
  /** Connection URL of the fresh database. */
  readonly url: string;
  readonly dbName: string;
  /** URL of the maintenance database on the same server (creating/dropping databases). */
  readonly adminUrl: string;
  readonly host: string;
  readonly port: number;
  /** True when this helper started the server (then stop/start/restart are available). */
  readonly selfStarted: boolean;
  /** Another fresh database on the same server, dropped by `close()`. Returns its URL. */
  createDatabase(): Promise<{ url: string; dbName: string }>;
  /** Run SQL on the test database (a short-lived connection). */
  query<T extends pg.QueryResultRow = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  /** pg_terminate_backend every session on `dbName` (default: the test database). Returns how many. */
  terminateConnections(dbName?: string): Promise<number>;
  /** Self-started server only: fast restart (waits until it accepts connections again). */
  restart?: () => Promise<void>;
  /** Self-started server only: fast stop / start, to hold it down for a while. */
  stop?: () => Promise<void>;
  start?: () => Promise<void>;
  /** Drop the databases created here; stop and delete a self-started server. Idempotent. */
  close(): Promise<void>;
}

export interface StartOptions {
  /** Always start a private server, even when 127.0.0.1:5432 answers (needed for restart()). */
  readonly ownServer?: boolean;
}

const SHARED = { host: '127.0.0.1', port: 5432, database: 'test' };

export async function startTestPostgres(opts: StartOptions = {}): Promise<TestPostgres> {
  const wantOwn = opts.ownServer === true || process.env.MAYHEM_TEST_PG === 'own';
  if (!wantOwn) {
    const adminUrl = await findSharedServer();
    if (adminUrl) return withDatabases(adminUrl, SHARED.host, SHARED.port, undefined);
  }
  const server = await startOwnServer();
  try {
    return await withDatabases(server.adminUrl, '127.0.0.1', server.port, server);
  } catch (error) {
    await server.destroy();
    throw error;
  }
}

async function findSharedServer(): Promise<string | undefined> {
  for (const user of ['postgres', 'root']) {
    const url = `postgres://${user}@${SHARED.host}:${SHARED.port}/${SHARED.database}`;
    const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
    c.on('error', () => undefined);
    try {
      await c.connect();
      const { rows } = await c.query<{ ok: boolean }>(
        `SELECT rolsuper OR rolcreatedb AS ok FROM pg_roles WHERE rolname = current_user`,
      );
      if (rows[0]?.ok) return url;
    } catch {
      // not answering, or not as this user: try the next one, then start our own
    } finally {
      await c.end().catch(() => undefined);
    }
  }
  return undefined;
}

async function withDatabases(
  adminUrl: string,
  host: string,
  port: number,
  server: OwnServer | undefined,
): Promise<TestPostgres> {
  const created: string[] = [];
  const urlOf = (db: string): string => {
    const u = new URL(adminUrl);
    u.pathname = `/${db}`;
    return u.toString();
  };
  const admin = async <T extends pg.QueryResultRow>(
    sql: string,
    params: unknown[] = [],
    url = adminUrl,
  ): Promise<T[]> => {
    const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
    c.on('error', () => undefined);
    await c.connect();
    try {
      return (await c.query<T>(sql, params)).rows;
    } finally {
      await c.end().catch(() => undefined);
    }
  };

  await sweepAbandoned(admin);

  const createDatabase = async (): Promise<{ url: string; dbName: string }> => {
    const dbName = `mayhem_t_${process.pid}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
    await admin(`CREATE DATABASE "${dbName}"`);
    created.push(dbName);
    return { url: urlOf(dbName), dbName };
  };

  const first = await createDatabase();
  let closed = false;
  const result: TestPostgres = {
    url: first.url,
    dbName: first.dbName,
    adminUrl,
    host,
    port,
    selfStarted: server !== undefined,
    createDatabase,
    query: <T extends pg.QueryResultRow>(sql: string, params?: unknown[]) => admin<T>(sql, params ?? [], first.url),
    async terminateConnections(dbName = first.dbName): Promise<number> {
      const rows = await admin<{ n: string }>(
        `SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`,
        [dbName],
      );
      return Number(rows[0]?.n ?? 0);
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      try {
        if (server) return; // the whole cluster goes away below
        for (const db of created) await admin(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`);
      } finally {
        await server?.destroy();
      }
    },
  };
  if (server) {
    Object.assign(result, { restart: server.restart, stop: server.stop, start: server.start });
  }
  return result;
}

/** Drop databases left by test processes that died before their cleanup. */
async function sweepAbandoned(
  admin: <T extends pg.QueryResultRow>(sql: string, params?: unknown[]) => Promise<T[]>,
): Promise<void> {
  try {
    const rows = await admin<{ datname: string }>(
      `SELECT datname FROM pg_database WHERE datname LIKE 'mayhem\\_t\\_%'`,
    );
    for (const { datname } of rows) {
      const pid = Number(/^mayhem_t_(\d+)_/.exec(datname)?.[1]);
      if (!Number.isInteger(pid) || pid === process.pid || alive(pid)) continue;
      await admin(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`).catch(() => undefined);
    }
  } catch {
    // best effort
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

// ---- a private server ---------------------------------------------------------------------

interface OwnServer {
  readonly adminUrl: string;
  readonly port: number;
  readonly restart: () => Promise<void>;
  readonly stop: () => Promise<void>;
  readonly start: () => Promise<void>;
  readonly destroy: () => Promise<void>;
}

async function startOwnServer(): Promise<OwnServer> {
  const dir = mkdtempSync(join(tmpdir(), 'mayhem-pg-'));
  const data = join(dir, 'data');
  const log = join(dir, 'server.log');
  const asRoot = process.getuid?.() === 0;
  let uid = -1;
  let gid = -1;
  if (asRoot) {
    // initdb refuses to run as root: the cluster belongs to the postgres user.
    const { stdout } = await run('id', ['-u', 'postgres']);
    uid = Number(stdout.trim());
    gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim());
    chownSync(dir, uid, gid);
  }
  writeFileSync(log, '');
  if (asRoot) chownSync(log, uid, gid);
  const as = async (cmd: string, args: string[]): Promise<void> => {
    const [file, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
    try {
      await run(file, argv, { timeout: 60_000 });
    } catch (error) {
      const e = error as { stderr?: string; message: string };
      throw new Error(`${cmd} failed: ${(e.stderr ?? '').trim() || e.message}`, { cause: error });
    }
  };
  let started = false;
  const pgCtl = (action: string, extra: string[] = []): Promise<void> =>
    as('pg_ctl', ['-D', data, '-l', log, '-w', '-t', '60', ...extra, action]);
  try {
    await as('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync', '--no-instructions']);
    const port = await freePort();
    // Settings live in the cluster's config so restart/start keep them.
    const conf = [
      `port = ${port}`,
      `listen_addresses = '127.0.0.1'`,
      `unix_socket_directories = '${dir}'`,
      'fsync = off',
      'synchronous_commit = off',
      'full_page_writes = off',
      'max_connections = 200',
    ].join('\n');
    writeFileSync(join(data, 'postgresql.auto.conf'), `${conf}\n`);
    if (asRoot) chownSync(join(data, 'postgresql.auto.conf'), uid, gid);
    await pgCtl('start');
    started = true;
    const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
    return {
      adminUrl,
      port,
      restart: () => pgCtl('restart', ['-m', 'fast']),
      stop: async () => {
        await pgCtl('stop', ['-m', 'fast']);
        started = false;
      },
      start: async () => {
        await pgCtl('start');
        started = true;
      },
      destroy: async () => {
        try {
          if (started) await pgCtl('stop', ['-m', 'immediate']);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      },
    };
  } catch (error) {
    if (started) await pgCtl('stop', ['-m', 'immediate']).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    throw new Error(
      `could not start a PostgreSQL server for tests (is initdb/pg_ctl on PATH?): ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
}

/** A loopback port nothing listens on (it was free a moment ago). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}
