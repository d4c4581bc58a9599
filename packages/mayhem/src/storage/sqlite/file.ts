/**
 * Opening the SQLite file safely, before a byte of it is written:
 *
 * 1. the directory exists and is one;
 * 2. an existing file is ours (application_id, or a mayhem file from before it had one) or empty;
 *    anything else — another application's database, not a database at all — is refused untouched;
 * 3. a new file is created 0600 (a database of restart orders is nobody else's business; SQLite
 *    gives its -wal and -shm files the same mode);
 * 4. one process per file: an exclusive lock, held by this process until close (the kernel drops
 *    it if the process dies, even by SIGKILL). Two services on one file would each think they own
 *    every host (the host guard is in-process) and fight for the write lock; a fleet shares
 *    PostgreSQL instead.
 *
 * Every refusal is one line naming the path.
 */
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';

/** `PRAGMA application_id` of a mayhem database ("MAYH"). */
export const MAYHEM_APPLICATION_ID = 0x4d415948;

/** How a file is recognised as ours. */
export interface FileIdentity {
  /** Whether a file without our application_id is nevertheless ours (written before mayhem stamped one). */
  readonly legacy: (tables: readonly string[], userVersion: number) => boolean;
}

export interface OpenedFile {
  readonly db: Database.Database;
  /** Give up the one-process lock; call after closing `db`. */
  releaseLock(): void;
}

/** The lock file beside the database (SQLite's own companions are -wal and -shm). */
export function lockPathOf(path: string): string {
  return `${path}-lock`;
}

/** Mode of files this module creates. */
export const FILE_MODE = 0o600;

/**
 * Check, create (0600), lock and open the database at `path`; `:memory:` (or '') skips the file steps.
 * Throws one-line Errors naming the path.
 */
export function openDatabaseFile(path: string, identity: FileIdentity, busyTimeoutMs: number): OpenedFile {
  checkDriver(path);
  if (path === ':memory:' || path === '')
    return { db: new Database(path, { timeout: busyTimeoutMs }), releaseLock: () => undefined };
  const refuse = (why: string, cause?: unknown): Error =>
    new Error(
      `Cannot open SQLite database ${JSON.stringify(path)}: ${why}`,
      cause === undefined ? undefined : { cause },
    );

  const dir = dirname(resolve(path));
  if (!existsSync(dir)) throw refuse(`directory ${JSON.stringify(dir)} does not exist`);
  if (!statSync(dir).isDirectory()) throw refuse(`${JSON.stringify(dir)} is not a directory`);

  if (existsSync(path)) {
    const why = foreignReason(path, identity);
    if (why !== undefined) throw refuse(why);
  } else {
    try {
      closeSync(openSync(path, 'wx', FILE_MODE));
    } catch (err) {
      // Created by someone else meanwhile: inspect it like any existing file.
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw refuse(describe(err), err);
      const why = foreignReason(path, identity);
      if (why !== undefined) throw refuse(why);
    }
  }

  const lock = takeLock(path, refuse);
  try {
    return { db: new Database(path, { timeout: busyTimeoutMs, fileMustExist: true }), releaseLock: () => lock.close() };
  } catch (err) {
    lock.close();
    throw refuse(describe(err), err);
  }
}

/** Why an existing file is not ours to use, or undefined when it is ours or empty. Creates and writes nothing. */
function foreignReason(path: string, identity: FileIdentity): string | undefined {
  const st = statSync(path);
  if (!st.isFile()) return 'it is not a regular file';
  if (st.size === 0) return undefined;
  let seen: Identity | 'not-sqlite';
  try {
    // A WAL with content may hold a newer first page: ask SQLite (its -wal and -shm exist already,
    // so a read-only connection creates nothing). Otherwise read the first page ourselves: a
    // read-only connection to a WAL-mode file would leave empty -wal and -shm files beside it.
    seen = nonEmpty(`${path}-wal`) ? identityViaSqlite(path) : identityFromFirstPage(path);
  } catch (err) {
    return `cannot read it: ${describe(err)}`;
  }
  if (seen === 'not-sqlite') return 'it is not a SQLite database; refusing to change it — pass a new path';
  const { applicationId, userVersion, tables } = seen;
  if (applicationId === MAYHEM_APPLICATION_ID) return undefined;
  if (applicationId === 0 && userVersion === 0 && tables !== 'many' && tables.length === 0) return undefined;
  if (applicationId === 0 && tables !== 'many' && identity.legacy(tables, userVersion)) return undefined;
  const shown =
    tables === 'many'
      ? 'many'
      : tables.length > 8
        ? `${tables.slice(0, 8).join(', ')}, …`
        : tables.join(', ') || 'none';
  return `it is not a mayhem database (application_id ${applicationId}, user_version ${userVersion}, tables: ${shown}); refusing to change it — pass a new path`;
}

interface Identity {
  readonly applicationId: number;
  readonly userVersion: number;
  /** Table names, or 'many' when the schema does not fit on the first page (then it is not ours). */
  readonly tables: readonly string[] | 'many';
}

function nonEmpty(file: string): boolean {
  try {
    return statSync(file).size > 0;
  } catch {
    return false;
  }
}

function identityViaSqlite(path: string): Identity | 'not-sqlite' {
  let db: Database.Database | undefined;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
    return {
      applicationId: db.pragma('application_id', { simple: true }) as number,
      userVersion: db.pragma('user_version', { simple: true }) as number,
      tables: db
        .prepare<[], string>(
          `SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`,
        )
        .pluck()
        .all(),
    };
  } catch (err) {
    if ((err as { code?: string }).code === 'SQLITE_NOTADB') return 'not-sqlite';
    throw err;
  } finally {
    db?.close();
  }
}

const MAGIC = 'SQLite format 3\0';

/**
 * The file header (https://sqlite.org/fileformat2.html) and the table names in the schema table
 * rooted on page 1, when that page is a leaf (a schema small enough for one page, as ours is).
 */
function identityFromFirstPage(path: string): Identity | 'not-sqlite' {
  const fd = openSync(path, 'r');
  let page: Buffer;
  try {
    const header = Buffer.alloc(100);
    if (readSync(fd, header, 0, 100, 0) < 100 || header.toString('latin1', 0, 16) !== MAGIC) return 'not-sqlite';
    const size = header.readUInt16BE(16) === 1 ? 65536 : header.readUInt16BE(16);
    page = Buffer.alloc(size);
    readSync(fd, page, 0, size, 0);
  } finally {
    closeSync(fd);
  }
  const applicationId = page.readInt32BE(68);
  const userVersion = page.readInt32BE(60);
  const usable = page.length - page[20]!;
  const type = page[100];
  if (type !== 13) return { applicationId, userVersion, tables: type === 5 ? 'many' : [] };
  const cells = page.readUInt16BE(103);
  const tables: string[] = [];
  for (let c = 0; c < cells; c++) {
    let at = page.readUInt16BE(108 + 2 * c);
    const [payload, a] = varint(page, at);
    const [, b] = varint(page, a); // rowid
    at = b;
    if (payload > usable - 35) return { applicationId, userVersion, tables: 'many' }; // spills: not a schema of ours
    // The record: header size, serial types, then type, name, tbl_name, rootpage, sql.
    const [headerSize, h] = varint(page, at);
    let cursor = h;
    let body = at + headerSize;
    const values: (string | undefined)[] = [];
    while (cursor < at + headerSize && values.length < 2) {
      const [serial, next] = varint(page, cursor);
      cursor = next;
      const len = serialLength(serial);
      values.push(serial >= 13 && serial % 2 === 1 ? page.toString('utf8', body, body + len) : undefined);
      body += len;
    }
    if (values[0] === 'table' && values[1] !== undefined && !values[1].startsWith('sqlite_')) tables.push(values[1]);
  }
  return { applicationId, userVersion, tables: tables.sort() };
}

function varint(buf: Buffer, at: number): [number, number] {
  let value = 0;
  for (let i = 0; i < 9; i++) {
    const byte = buf[at + i] ?? 0;
    if (i === 8) return [value * 256 + byte, at + 9];
    value = value * 128 + (byte & 0x7f);
    if (byte < 0x80) return [value, at + i + 1];
  }
  return [value, at + 9];
}

function serialLength(serial: number): number {
  if (serial >= 12) return Math.floor((serial - (serial % 2 === 0 ? 12 : 13)) / 2);
  return [0, 1, 2, 3, 4, 6, 8, 8, 0, 0, 0, 0][serial] ?? 0;
}

/**
 * The one-process lock: a companion file held in SQLite's exclusive locking mode. A lock the kernel
 * keeps (POSIX advisory locks via SQLite), so a crashed holder never leaves a stale lock behind.
 */
function takeLock(path: string, refuse: (why: string, cause?: unknown) => Error): Database.Database {
  const lockPath = lockPathOf(path);
  let lock: Database.Database | undefined;
  try {
    if (!existsSync(lockPath)) {
      try {
        closeSync(openSync(lockPath, 'wx', FILE_MODE));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    }
    lock = new Database(lockPath, { timeout: 0, fileMustExist: true });
    lock.pragma('locking_mode = EXCLUSIVE');
    // In exclusive locking mode the lock taken here is kept after COMMIT, until the connection closes.
    lock.exec('BEGIN EXCLUSIVE; COMMIT');
    return lock;
  } catch (err) {
    lock?.close();
    if ((err as { code?: string }).code === 'SQLITE_BUSY') {
      throw refuse(
        'another process is using it (one mayhem process per SQLite file; for several instances, share a PostgreSQL database)',
        err,
      );
    }
    throw refuse(`cannot take its lock file ${JSON.stringify(lockPath)}: ${describe(err)}`, err);
  }
}

/**
 * better-sqlite3 is a native addon built for one Node.js ABI. Switching Node lines after `npm ci` (nvm,
 * another line's binary) leaves a binary that cannot load; say so in one line with the fix, before a
 * lock-file error hides it.
 */
function checkDriver(path: string): void {
  try {
    new Database(':memory:').close();
  } catch (err) {
    const text = describe(err);
    const built = /NODE_MODULE_VERSION (\d+)\. This version of Node\.js requires NODE_MODULE_VERSION (\d+)/.exec(text);
    if (built === null) throw err;
    throw new Error(
      `Cannot open SQLite database ${JSON.stringify(path)}: better-sqlite3 was built for another Node.js ` +
        `(ABI ${built[1]}; Node ${process.version} needs ${built[2]}): run \`npm rebuild better-sqlite3\` ` +
        `(or scripts/with-node.sh <major> … in this repository)`,
      { cause: err },
    );
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
