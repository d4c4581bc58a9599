/**
 * The column table (storage/columns.ts) against everything that must follow it: the fold of
 * record-patch.ts (rule by rule, column by column), the PostgreSQL row and write statement (built
 * from the table), and the SQL text of both adapters' schemas and SQLite's row writes (written out,
 * so checked here: a column added to the table fails this test until every place has it).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { neutralOf, RECORD_COLUMNS, type RecordColumn } from '../../src/storage/columns.js';
import { emptyPatch, foldPatch, type RecordPatch } from '../../src/storage/record-patch.js';
import { messageRow } from '../../src/storage/postgres/row.js';
import { WRITE_SQL } from '../../src/storage/postgres/sql.js';
import { ACK_FIELDS, FIRST_FIELDS, isAckShape, isFirstShape } from '../../src/storage/sqlite/rows.js';

const COLS: readonly RecordColumn[] = RECORD_COLUMNS;
const source = (rel: string): string => readFileSync(new URL(`../../src/storage/${rel}`, import.meta.url), 'utf8');

/** Two distinct non-neutral values of a column's kind, the second "later"/"higher". */
function valuesOf(c: RecordColumn): [unknown, unknown] {
  switch (c.kind) {
    case 'text':
      return ['earlier', 'later'];
    case 'time':
      return [1_000, 2_000];
    case 'flag':
      return [true, true];
    case 'count':
      return [2, 5];
  }
}

function patchWith(c: RecordColumn, value: unknown): RecordPatch {
  const p = emptyPatch('m');
  (p as unknown as Record<string, unknown>)[c.field] = value;
  return p;
}

const fieldOf = (p: RecordPatch, c: RecordColumn): unknown => (p as unknown as Record<string, unknown>)[c.field];

describe('the record column table', () => {
  it('names every field once and every column once', () => {
    expect(new Set(COLS.map((c) => c.field)).size).toBe(COLS.length);
    expect(new Set(COLS.map((c) => c.column)).size).toBe(COLS.length);
    expect(COLS.map((c) => c.field).sort()).toEqual(
      Object.keys(emptyPatch('m'))
        .filter((k) => k !== 'messageId')
        .sort(),
    );
  });

  for (const c of COLS) {
    it(`foldPatch keeps ${c.field} by its rule (${c.rule})`, () => {
      const [a, b] = valuesOf(c);
      const neutral = neutralOf(c.kind);
      // A neutral later write never changes a stored value.
      const kept = patchWith(c, a);
      foldPatch(kept, emptyPatch('m'));
      expect(fieldOf(kept, c)).toBe(a);
      // A value into a neutral one is taken, whatever the rule.
      const taken = emptyPatch('m');
      foldPatch(taken, patchWith(c, a));
      expect(fieldOf(taken, c)).toBe(a);
      // Two values: the rule decides.
      const both = patchWith(c, a);
      foldPatch(both, patchWith(c, b));
      const want = { first: a, once: true, highest: b, latest: b }[c.rule];
      expect(fieldOf(both, c)).toBe(want);
      if (c.rule === 'highest') {
        const lower = patchWith(c, b);
        foldPatch(lower, patchWith(c, a));
        expect(fieldOf(lower, c)).toBe(b);
      }
      expect(neutral).toBe(fieldOf(emptyPatch('m'), c));
    });
  }

  it('the PostgreSQL row carries a changed column under its name, and leaves neutral ones out', () => {
    const full = emptyPatch('m');
    for (const c of COLS) (full as unknown as Record<string, unknown>)[c.field] = valuesOf(c)[0];
    const row = messageRow(full) as unknown as Record<string, unknown>;
    expect(Object.keys(row).sort()).toEqual(['message_id', ...COLS.map((c) => c.column)].sort());
    expect(messageRow(emptyPatch('m'))).toEqual({ message_id: 'm' });
  });

  it('the PostgreSQL write statement inserts, reads and merges every column', () => {
    for (const c of COLS) {
      expect(WRITE_SQL).toMatch(new RegExp(`INSERT INTO messages AS m \\([^)]*\\b${c.column}\\b`));
      expect(WRITE_SQL).toMatch(new RegExp(`AS t\\([^)]*\\b${c.column} \\w+`));
      expect(WRITE_SQL).toMatch(new RegExp(`^  ${c.column} = `, 'm'));
    }
  });

  it('each column is in both schemas and in SQLite’s row writes (INSERT and UPDATE)', () => {
    const sqliteSchema = source('sqlite/schema.ts');
    const postgresSchema = source('postgres/schema.ts');
    const rows = source('sqlite/rows.ts');
    for (const c of COLS) {
      expect(sqliteSchema, `sqlite schema: ${c.column}`).toMatch(new RegExp(`\\b${c.column}\\b`));
      expect(postgresSchema, `postgres schema: ${c.column}`).toMatch(new RegExp(`\\b${c.column}\\b`));
      expect(rows, `sqlite INSERT: ${c.column}`).toMatch(
        new RegExp(`INSERT INTO message_rows \\([^)]*\\b${c.column}\\b`),
      );
      expect(rows, `sqlite UPDATE: ${c.column}`).toMatch(new RegExp(`^\\s+${c.column}\\s+= `, 'm'));
    }
  });

  it('SQLite’s fast row writes fit only patches whose other columns are neutral, whatever the table holds', () => {
    for (const [name, fits, bound] of [
      ['first write', isFirstShape, FIRST_FIELDS],
      ['ack', isAckShape, ACK_FIELDS],
    ] as const) {
      for (const c of COLS) {
        const p = emptyPatch('m') as unknown as Record<string, unknown>;
        p[c.field] = c.kind === 'flag' ? true : c.kind === 'count' ? 2 : c.kind === 'time' ? 5 : 'x';
        // A bound column set still fits; any other column set sends the patch to the general statement.
        expect(fits(p as unknown as RecordPatch), `${name}: ${c.field}`).toBe(bound.includes(c.field));
      }
      expect(fits(emptyPatch('m')), name).toBe(true);
    }
  });
});
