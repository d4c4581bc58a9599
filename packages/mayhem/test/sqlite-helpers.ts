/** Test helpers for the SQLite adapter: temp files and a second, read-only connection to check rows. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import type { MessageRecord } from '../src/storage/record.js';

export const silent = pino({ level: 'silent' });

export function tempDir(): { dir: string; file(name?: string): string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'mayhem-sqlite-'));
  let n = 0;
  return {
    dir,
    file: (name?: string) => join(dir, name ?? `db-${n++}.sqlite`),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

interface Row {
  message_id: string;
  instance_name: string | null;
  hostname: string | null;
  published_at: number | null;
  restarted: number;
  restart_claimed: number;
  restart_released: number;
  restart_in_doubt: number;
  restart_attempts: number;
  saved: number;
  acked: number;
  extensions: number;
  deliveries: number;
  dead_lettered: number;
  last_error: string | null;
  created_at: number;
  updated_at: number;
  restarted_at: number | null;
  acked_at: number | null;
  http_calls: number;
  http_calls_failed: number;
}

/** Read one record through a separate connection, as an operator would. */
export function readRecord(path: string, messageId: string): MessageRecord | undefined {
  const db = new Database(path, { readonly: true });
  try {
    const row = db.prepare<[string], Row>('SELECT * FROM messages WHERE message_id = ?').get(messageId);
    return row === undefined ? undefined : toRecord(row);
  } finally {
    db.close();
  }
}

export function readDeadLetters(
  path: string,
): { messageId: string | null; payload: string; reason: string; deliveries: number }[] {
  const db = new Database(path, { readonly: true });
  try {
    return db
      .prepare<[], { message_id: string | null; payload: string; reason: string; deliveries: number }>(
        'SELECT message_id, payload, reason, deliveries FROM dead_letters ORDER BY id',
      )
      .all()
      .map((r) => ({ messageId: r.message_id, payload: r.payload, reason: r.reason, deliveries: r.deliveries }));
  } finally {
    db.close();
  }
}

export function query<T>(path: string, sql: string): T[] {
  const db = new Database(path, { readonly: true });
  try {
    return db.prepare<[], T>(sql).all();
  } finally {
    db.close();
  }
}

function toRecord(r: Row): MessageRecord {
  return {
    messageId: r.message_id,
    instanceName: r.instance_name,
    hostname: r.hostname,
    publishedAt: r.published_at,
    restarted: r.restarted === 1,
    restartClaimed: r.restart_claimed,
    restartReleased: r.restart_released,
    restartInDoubt: r.restart_in_doubt === 1,
    restartAudited: (r as { restart_audited?: number }).restart_audited === 1,
    inDoubtAudited: (r as { in_doubt_audited?: number }).in_doubt_audited === 1,
    skipReason: (r as { skip_reason?: string | null }).skip_reason ?? null,
    restartAttempts: r.restart_attempts,
    httpCalls: r.http_calls,
    httpCallsFailed: r.http_calls_failed,
    saved: r.saved === 1,
    acked: r.acked === 1,
    extensions: r.extensions,
    deliveries: r.deliveries,
    deadLettered: r.dead_lettered === 1,
    lastError: r.last_error,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    restartedAt: r.restarted_at,
    ackedAt: r.acked_at,
  };
}
