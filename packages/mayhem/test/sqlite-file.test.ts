/**
 * Opening the SQLite file: another application's file is refused untouched, a second process is
 * refused, new files are 0600. The second process is a real one (POSIX locks are per process), and
 * so is the one killed with SIGKILL while holding the lock.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { openSqliteStorage } from '../src/storage/sqlite/storage.js';
import { lockPathOf, MAYHEM_APPLICATION_ID } from '../src/storage/sqlite/file.js';
import { request } from './storage-contract.js';
import { readRecord, silent, tempDir } from './sqlite-helpers.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());
const here = dirname(fileURLToPath(import.meta.url));
const MAIN = resolve(here, '../dist/src/cli/main.js');
const STORAGE = pathToFileURL(resolve(here, '../dist/src/storage/sqlite/storage.js')).href;

const digest = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');
const listing = (): string[] => readdirSync(tmp.dir).sort();

function openError(path: string): string {
  try {
    openSqliteStorage({ path, logger: silent })
      .close()
      .catch(() => undefined);
  } catch (err) {
    return (err as Error).message;
  }
  return 'opened';
}

/** Another application's database, in WAL or rollback-journal mode, closed cleanly. */
function foreignDb(mode: 'wal' | 'delete', userVersion = 1): string {
  const path = tmp.file();
  const db = new Database(path);
  db.pragma(`journal_mode = ${mode}`);
  db.exec(
    `CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users (name) VALUES ('ada'), ('grace');`,
  );
  db.pragma(`user_version = ${userVersion}`);
  db.close();
  return path;
}

describe('a file that is not ours is refused untouched', () => {
  it.each(['wal', 'delete'] as const)(
    "another application's SQLite database (%s mode): one line naming the path, not a byte changed, no file created",
    (mode) => {
      const path = foreignDb(mode);
      const before = digest(path);
      const files = listing();
      const message = openError(path);
      expect(message).toBe(
        `Cannot open SQLite database ${JSON.stringify(path)}: it is not a mayhem database (application_id 0, user_version 1, tables: users); refusing to change it — pass a new path`,
      );
      expect(digest(path)).toBe(before);
      expect(listing()).toEqual(files);
    },
  );

  it('a file that is not SQLite at all', () => {
    const path = tmp.file();
    writeFileSync(path, 'name,host\nada,cattle-1\n'.repeat(20));
    const before = digest(path);
    expect(openError(path)).toMatch(
      /^Cannot open SQLite database ".*": it is not a SQLite database; refusing to change it — pass a new path$/,
    );
    expect(digest(path)).toBe(before);
  });

  it('a foreign database with a big schema and a live WAL (another process has it open)', () => {
    const path = tmp.file();
    const other = new Database(path);
    other.pragma('journal_mode = WAL');
    other.pragma('wal_autocheckpoint = 0');
    for (let i = 0; i < 200; i++) other.exec(`CREATE TABLE t_${i} (id INTEGER PRIMARY KEY, payload TEXT)`);
    try {
      expect(openError(path)).toMatch(
        /it is not a mayhem database \(application_id 0, user_version 0, tables: t_0, t_1, t_10, .*…\); refusing/,
      );
      expect(other.prepare(`SELECT count(*) FROM sqlite_schema`).pluck().get()).toBe(200);
    } finally {
      other.close();
    }
  });

  it('the CLI says it in one line and exits 1', () => {
    const path = foreignDb('wal');
    const before = digest(path);
    const r = spawnSync(process.execPath, [MAIN, 'run', '--count', '1', '--db', `sqlite:${path}`], {
      encoding: 'utf8',
    });
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual([
      `mayhem: Cannot open SQLite database ${JSON.stringify(path)}: it is not a mayhem database (application_id 0, user_version 1, tables: users); refusing to change it — pass a new path`,
    ]);
    expect(digest(path)).toBe(before);
  });

  it('an empty file, and a mayhem file written before files were stamped, are ours', async () => {
    const empty = tmp.file();
    writeFileSync(empty, '');
    const s = openSqliteStorage({ path: empty, logger: silent });
    await s.saveMessage(request(1), 1);
    await s.close();
    expect(readRecord(empty, 'm-1')?.saved).toBe(true);

    // Schema v1 exactly as earlier versions wrote it: no application_id.
    const legacy = tmp.file();
    const db = new Database(legacy);
    db.pragma('journal_mode = WAL');
    db.exec(`CREATE TABLE messages (message_id TEXT PRIMARY KEY NOT NULL, instance_name TEXT, hostname TEXT, published_at INTEGER,
      restarted INTEGER NOT NULL DEFAULT 0, restart_attempts INTEGER NOT NULL DEFAULT 0, saved INTEGER NOT NULL DEFAULT 0,
      acked INTEGER NOT NULL DEFAULT 0, extensions INTEGER NOT NULL DEFAULT 0, deliveries INTEGER NOT NULL DEFAULT 0,
      dead_lettered INTEGER NOT NULL DEFAULT 0, last_error TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
      restarted_at INTEGER, acked_at INTEGER) WITHOUT ROWID;
      CREATE TABLE dead_letters (id INTEGER PRIMARY KEY, message_id TEXT, payload TEXT NOT NULL, reason TEXT NOT NULL, deliveries INTEGER NOT NULL, created_at INTEGER NOT NULL);
      CREATE UNIQUE INDEX dead_letters_message_id ON dead_letters (message_id) WHERE message_id IS NOT NULL;
      INSERT INTO messages (message_id, restarted, created_at, updated_at) VALUES ('old-1', 1, 1, 1);`);
    db.pragma('user_version = 1');
    db.close();
    const l = openSqliteStorage({ path: legacy, logger: silent });
    expect(await l.claimRestart({ messageId: 'old-1', instanceName: 'cattle-old1', publishedAt: 1 }, 2, 'look')).toBe(
      'done',
    );
    await l.close();
    const check = new Database(legacy, { readonly: true });
    expect(check.pragma('application_id', { simple: true })).toBe(MAYHEM_APPLICATION_ID);
    check.close();
  });
});

describe('one process per file', () => {
  /** A child process that opens the storage, says "open", and waits to be killed (or prints the error). */
  function holder(path: string): { child: ReturnType<typeof spawn>; opened: Promise<string> } {
    const code = `
      import { pino } from 'pino';
      const { openSqliteStorage } = await import(${JSON.stringify(STORAGE)});
      try { openSqliteStorage({ path: ${JSON.stringify(path)}, logger: pino({ level: 'silent' }) }); process.stdout.write('open\\n'); }
      catch (err) { process.stdout.write(err.message + '\\n'); process.exit(1); }
      setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', code], {
      cwd: here,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const opened = new Promise<string>((res, rej) => {
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        if (out.includes('\n')) res(out.trim());
      });
      child.once('exit', (code) =>
        out.includes('\n') ? res(out.trim()) : rej(new Error(`holder exited ${code} before opening`)),
      );
    });
    return { child, opened };
  }

  it('a second process is refused with one line while the first has it; the lock goes with the first', async () => {
    const path = tmp.file();
    const s = openSqliteStorage({ path, logger: silent });
    await s.saveMessage(request(1), 1);
    const second = holder(path);
    expect(await second.opened).toBe(
      `Cannot open SQLite database ${JSON.stringify(path)}: another process is using it (one mayhem process per SQLite file; for several instances, share a PostgreSQL database)`,
    );
    // In this process too: a second storage on the same file.
    expect(openError(path)).toMatch(/another process is using it/);
    await s.close();
    const third = holder(path);
    try {
      expect(await third.opened).toBe('open');
    } finally {
      third.child.kill('SIGKILL');
    }
  });

  it('a holder killed with SIGKILL leaves no stale lock', async () => {
    const path = tmp.file();
    const first = holder(path);
    expect(await first.opened).toBe('open');
    const exited = new Promise((r) => first.child.once('exit', r));
    first.child.kill('SIGKILL');
    await exited;
    const s = openSqliteStorage({ path, logger: silent });
    await s.saveMessage(request(1), 1);
    await s.close();
    expect(readRecord(path, 'm-1')?.saved).toBe(true);
  });
});

describe('file mode', () => {
  it('creates the database, its -wal, -shm and lock files 0600', async () => {
    const path = tmp.file();
    const s = openSqliteStorage({ path, logger: silent });
    await s.saveMessage(request(1), 1);
    for (const f of [path, `${path}-wal`, `${path}-shm`, lockPathOf(path)])
      expect([f, statSync(f).mode & 0o777]).toEqual([f, 0o600]);
    await s.close();
  });
});
